"""Errors that carry a message meant for the user (CLI: one line on stderr, exit status 2)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["InputError"]


class InputError(Exception):
    """Bad input from the user: a file or value SeedPlan cannot use.

    The message is one line naming the file (when there is one) and the problem, e.g.
    ``seeds.csv: line 4: x_mm is not a number ('abc')``.
    """

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)
