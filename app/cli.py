"""The ``seedplan`` command line (contract: ../shared/DESIGN.md, "Command line").

Each sub-command lives in ``app/commands/<name>_cmd.py`` and provides::

    def add_parser(subparsers) -> argparse.ArgumentParser   # registers itself
    def run(args: argparse.Namespace) -> int                 # exit status

Bad input raises :class:`dose.errors.InputError` (or ``FileNotFoundError``/``PermissionError``):
this module turns it into one line on stderr and exit status 2. Anything else is a bug and
keeps its traceback.

Output into a closed pipe (``seedplan info DIR | head``) ends quietly with status 141 (128 +
SIGPIPE, what the shell reports for a command stopped by a closed pipe), never a traceback:
every command's output goes through :func:`main`, which also flushes stdout before returning.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from app import __version__
from dose.errors import InputError

# Exit status after the reader of our stdout went away (128 + SIGPIPE).
EXIT_BROKEN_PIPE = 141

# Order is the order shown in --help.
COMMANDS = (
    "gui",
    "demo",
    "info",
    "plan",
    "dose",
    "dvh",
    "autoplan",
    "robustness",
    "detect",
    "verify",
    "export",
    "cohort",
    "bench",
)


class _Parser(argparse.ArgumentParser):
    """argparse that exits with status 2 and one line (its default prints usage too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"seedplan: {message}\n")
        raise SystemExit(2)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or with ``only`` just that sub-command (imports one command module:
    start-up time matters for ``seedplan gui``)."""
    parser = _Parser(
        prog="seedplan",
        description="SeedPlan: planning for CT-guided permanent I-125 seed implants.",
    )
    parser.add_argument("--version", action="version", version=f"seedplan {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    for name in (only,) if only in COMMANDS else COMMANDS:
        try:
            module = importlib.import_module(f"app.commands.{name}_cmd")
        except ModuleNotFoundError as exc:
            if exc.name != f"app.commands.{name}_cmd":
                raise
            continue  # command not implemented yet
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command; returns the exit status (0, 2 for bad input, 141 closed pipe)."""
    try:
        try:
            status = _run(argv)
        finally:
            # Inside the try (also after --help's SystemExit): a closed pipe must not fail
            # in the interpreter's final flush.
            sys.stdout.flush()
        return status
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE


def _discard_stdout() -> None:
    """Point stdout at /dev/null so Python's final flush cannot raise again (Python docs,
    "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _run(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        argv = ["gui"]
    parser = build_parser(only=argv[0])
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.run(args) or 0)
    except BrokenPipeError:
        raise
    except InputError as exc:
        sys.stderr.write(f"seedplan {args.command}: {exc}\n")
        return 2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        where = exc.filename if exc.filename else ""
        sys.stderr.write(f"seedplan {args.command}: {where}: {exc.strerror or exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("seedplan: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
