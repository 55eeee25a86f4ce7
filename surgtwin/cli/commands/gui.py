"""`surgtwin gui [PATH]`: open the desktop app (on the first sample case when no PATH is given).

``--screenshot OUT.png`` saves a picture of the whole window (3D view included) once the image is
loaded, meshed and rendered, then quits; ``--quit-after SECONDS`` closes the app after that long at
the latest (with ``--screenshot``, the picture is taken a second before that deadline if loading has
not finished by then). The 3D view
inside Qt renders only under an X server (use ``xvfb-run`` on a headless machine).
"""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("gui", help="open the desktop app (default command)",
                       description="Open the surgtwin desktop app. NOT FOR CLINICAL USE.")
    p.add_argument("path", nargs="?", help="case (.stwin), DICOM folder, image file or sample case to open")
    p.add_argument("--screenshot", metavar="OUT.png", help="save a screenshot of the window once loaded, then quit")
    p.add_argument("--quit-after", type=float, metavar="SECONDS", help="quit this many seconds after start")
    p.add_argument("--size", metavar="WxH", default=None, help="window size in pixels, e.g. 1500x920")
    p.add_argument("--panel", metavar="ID", help="bring this side panel to the front (e.g. case, tools)")
    return p


def run(args) -> int:
    from pathlib import Path

    from surgtwin.core.errors import SurgtwinError

    if args.path and not Path(args.path).exists():
        raise SurgtwinError("no such file or folder", path=args.path, hint="check the path")
    if args.quit_after is not None and args.quit_after <= 0:
        raise SurgtwinError(f"--quit-after must be positive, got {args.quit_after}")
    size = None
    if args.size:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
            size = (w, h)
        except ValueError:
            raise SurgtwinError(f"--size must look like 1500x920, got {args.size!r}") from None
    from surgtwin.ui.app import run_app

    return run_app(args.path, screenshot=args.screenshot, quit_after=args.quit_after, window_size=size,
                   panel=args.panel)
