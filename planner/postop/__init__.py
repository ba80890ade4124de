"""Post-implant verification: seed detection on the post-op CT, registration, matching, post-plan
dosimetry.
"""
