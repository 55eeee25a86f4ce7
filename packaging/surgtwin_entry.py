"""Entry point of the frozen (PyInstaller) surgtwin app.

``surgtwin --selftest [--out DIR]`` runs the installation self-test (``surgtwin selftest``); anything
else goes to the ``surgtwin`` command line (``surgtwin.cli.main.main``), where no arguments open the
desktop app, so a double-click opens the GUI.
"""

import multiprocessing
import os
import sys


def frozen_argv(argv: list[str]) -> list[str]:
    """Map the installer's ``--selftest`` flag (anywhere on the line) to the ``selftest`` command."""
    if "--selftest" in argv:
        return ["selftest", *[a for a in argv if a != "--selftest"]]
    return list(argv)


def main() -> int:
    multiprocessing.freeze_support()  # a child process of a frozen app re-enters here
    for name in ("stdout", "stderr"):  # a windowed (no console) Windows build has no streams
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
    try:
        from surgtwin.cli.main import main as cli_main

        return cli_main(frozen_argv(sys.argv[1:]))
    except Exception as exc:  # the CLI handles its commands' errors; this is a broken build: one line
        if os.environ.get("SURGTWIN_DEBUG"):
            raise
        text = " ".join(str(exc).split())[:300]
        print(f"surgtwin: internal error: {type(exc).__name__}: {text} (SURGTWIN_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
