"""`surgtwin` command line. Start-up stays light: no torch/VTK/Qt import until a command runs.

Each sub-command lives in ``surgtwin/cli/commands/<name>.py`` with two functions:
``add_parser(subparsers)`` (builds its argparse parser; no heavy imports) and ``run(args) -> int``.

Errors a user can cause (``SurgtwinError``) print one line, ``surgtwin: error: <file>: <reason>``,
and exit 2; anything else (a bug) prints one line too and exits 1 (``SURGTWIN_DEBUG=1`` re-raises it
with its traceback). Everything a command prints goes through a ``PhiGuard`` (see
``surgtwin.core.phi``): patient-identifying values of the DICOM input are redacted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

#: sub-command modules, in the order --help lists them
COMMANDS = ("gui", "info", "convert", "case", "mesh", "segment", "plan", "simulate", "rehearse", "report",
            "export", "pacs", "cohort", "selftest")
#: how many directory entries are looked at to find a DICOM file of an input folder (for its PHI values)
PHI_PROBE_ENTRIES = 200


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


class ScrubbedStream:
    """A text stream that passes what is written through ``guard.scrub`` (PHI redaction)."""

    def __init__(self, stream, guard):
        self._stream = stream
        self._guard = guard

    def write(self, text: str) -> int:
        self._stream.write(self._guard.scrub(text))
        return len(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def one_line(text: str) -> str:
    """A message on one line (library messages sometimes span several)."""
    return " ".join(text.split())


def note_inputs(guard, args) -> None:
    """Add the PHI values of the command's DICOM input to ``guard``: the input file itself, or the
    first DICOM file (with the standard preamble) among the first entries of an input folder."""
    from pathlib import Path

    for attr in ("input", "path"):
        value = getattr(args, attr, None)
        if not isinstance(value, str):
            continue
        p = Path(value)
        if p.is_file():
            guard.add_file(p)
        elif p.is_dir():
            seen = 0
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for f in sorted(files):
                    seen += 1
                    if seen > PHI_PROBE_ENTRIES:
                        return
                    before = len(guard.values)
                    guard.add_file(Path(root) / f)
                    if len(guard.values) > before:
                        return


def main(argv: list[str] | None = None) -> int:
    from surgtwin.core import phi

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if not argv:
        argv = ["gui"]
    args = parser.parse_args(argv)
    with phi.guarding() as guard:
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = ScrubbedStream(out, guard), ScrubbedStream(err, guard)
        try:
            return _run(args, guard)
        finally:
            sys.stdout, sys.stderr = out, err


def _run(args, guard) -> int:
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.core.progress import Cancelled

    try:
        note_inputs(guard, args)
        return int(args._run(args) or 0)
    except SurgtwinError as exc:
        if exc.path:
            guard.add_file(exc.path)
        print(f"surgtwin: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except Cancelled:
        print("surgtwin: cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("surgtwin: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("surgtwin: error: not enough memory for this input", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug, not the user's doing: one line, no traceback
        if os.environ.get("SURGTWIN_DEBUG"):
            raise
        print(f"surgtwin: internal error: {type(exc).__name__}: {one_line(str(exc))[:300]} "
              "(a bug in surgtwin; SURGTWIN_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
