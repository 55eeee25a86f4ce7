"""`surgtwin gui [PATH]`: open the desktop app (on the first sample case when no PATH is given)."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("gui", help="open the desktop app (default command)")
    p.add_argument("path", nargs="?", help="DICOM folder, image file or saved session to open")
    p.add_argument("--screenshot", metavar="OUT.png", help="save a screenshot of the window once loaded")
    p.add_argument("--quit-after", type=float, metavar="SECONDS", help="quit this many seconds after start")
    return p


def run(args) -> int:
    from surgtwin.ui.app import run_app

    return run_app(args.path, screenshot=args.screenshot, quit_after=args.quit_after)
