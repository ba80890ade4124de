"""Layer adapters: one per kind of thing drawn (CT, structures, needles, seeds, isodoses),
listening to model events.
"""
