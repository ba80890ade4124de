"""One module per ``seedplan`` sub-command; see :mod:`app.cli`."""
