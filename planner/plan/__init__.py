"""The plan document: immutable values with stable ids, commands, the undo history, plan files."""
