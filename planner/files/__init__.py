"""Files on disk: the CSV tables of the command line and the one safe-writing rule every writer
uses.
"""
