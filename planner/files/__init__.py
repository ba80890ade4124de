"""Files on disk: the CSV tables of the command line and the one safe-writing rule every writer
uses.

- :mod:`planner.files.csv_io`: seeds, needles, points (read) and dose (write) CSV tables.
- :mod:`planner.files.safe_write`: the output rule (regular file or absent, never an input,
  ``force`` to replace, the folder must exist, atomic temp + fsync + replace, errors naming the
  target). Every command, plan file, export and the demo case write through it.
"""
