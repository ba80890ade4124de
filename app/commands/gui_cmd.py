"""``seedplan gui [PATH] [--screenshot PNG] [--series UID] [--postop POSTOP_CT]``: the viewer.

Without PATH the demo case is opened (generated into the user cache on first use). With
``--screenshot`` the window loads PATH, renders, saves itself as PNG and exits (status 0, or 2
when PATH cannot be opened). ``--postop`` opens the post-op verification window on a post-op
CT once the plan is loaded; with ``--screenshot`` it runs *Detect & verify* and the PNG is of
the post-op window.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dose.errors import InputError

__all__ = ["add_parser", "open_gui", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "gui",
        help="open the viewer (default: the demo case)",
        description="Open the SeedPlan window on a DICOM folder, a CT image file "
        "(NIfTI/MHA/NRRD), a plan (.seedplan, with its CT) or, without PATH, the demo case.",
    )
    p.add_argument(
        "path", nargs="?", type=Path, metavar="PATH", help="DICOM folder, image file or plan"
    )
    p.add_argument(
        "--screenshot",
        type=Path,
        metavar="PNG",
        help="load PATH, render, save the main window to PNG and exit",
    )
    p.add_argument("--series", metavar="UID", help="series to open from a DICOM folder")
    p.add_argument(
        "--postop",
        type=Path,
        metavar="POSTOP_CT",
        help="open the post-op verification window on this post-op CT (DICOM folder or "
        "image); with --screenshot: detect & verify, and save the post-op window",
    )
    p.add_argument(
        "--size",
        metavar="WxH",
        help="window size in pixels, e.g. 1280x800 (default 1280x800 with --screenshot)",
    )
    p.set_defaults(run=run)
    return p


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--size must look like 1280x800, got {text!r}") from None
    if not (200 <= w <= 8000 and 200 <= h <= 8000):
        raise InputError(f"--size {text} is out of range (200–8000 pixels)")
    return w, h


def _check_display() -> None:
    """Fail with one line, not a Qt abort, when there is no screen to open a window on."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise InputError(
            "no display to open the window on (DISPLAY is not set); "
            'run it on a desktop or under xvfb-run -a -s "-screen 0 1280x1024x24"'
        )


def run(args: argparse.Namespace) -> int:
    path: Path | None = args.path
    if path is not None and not path.exists():
        raise InputError("no such file or folder", path)
    if args.postop is not None and not args.postop.exists():
        raise InputError("no such post-op CT", args.postop)
    _check_display()
    if args.screenshot is not None and args.screenshot.suffix.lower() != ".png":
        raise InputError("screenshot must be a .png file", args.screenshot)
    from app.gui.main import run_gui  # Qt and VTK are imported only here

    return run_gui(
        path,
        series_uid=args.series,
        screenshot=args.screenshot,
        size=_parse_size(args.size),
        postop=args.postop,
    )


def open_gui(path: Path | None) -> int:
    """Open the viewer on ``path`` (``None``: the demo case); used by ``seedplan demo --gui``."""
    _check_display()
    from app.gui.main import run_gui

    return run_gui(path)
