"""`surgtwin` command line. Start-up stays light: no torch/VTK/Qt import until a command runs.

Each sub-command lives in ``surgtwin/cli/commands/<name>.py`` with two functions:
``add_parser(subparsers)`` (builds its argparse parser; no heavy imports) and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: sub-command modules, in the order --help lists them
COMMANDS = ("gui", "info", "convert", "case", "mesh", "segment")


def build_parser() -> argparse.ArgumentParser:
    from surgtwin import __version__

    parser = argparse.ArgumentParser(
        prog="surgtwin",
        description="Surgical planning with 3D patient-specific anatomical twins. NOT FOR CLINICAL USE.",
    )
    parser.add_argument("--version", action="version", version=f"surgtwin {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        mod = importlib.import_module(f"surgtwin.cli.commands.{name}")
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.core.progress import Cancelled

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if not argv:
        argv = ["gui"]
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except SurgtwinError as exc:
        print(f"surgtwin: error: {exc}", file=sys.stderr)
        return 2
    except Cancelled:
        print("surgtwin: cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("surgtwin: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
