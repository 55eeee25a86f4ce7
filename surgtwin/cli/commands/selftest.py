"""`surgtwin selftest [--out DIR]`: check this installation headless (the frozen app: `surgtwin --selftest`).

Opens the smallest bundled sample case, segments it with the bundled model, builds its surfaces,
renders one offscreen frame and writes the report (``surgtwin.services.selftest``), printing one
timed line per stage. Exit status 0 when every stage passed; 1 with one line on stderr naming the
failed stage and why.
"""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("selftest", help="check this installation: sample case -> segment -> mesh -> render -> report",
                       description="Check this installation headless on a bundled sample case (no network). "
                                   "NOT FOR CLINICAL USE.")
    p.add_argument("--out", metavar="DIR", help="folder for the frame and report (default: a new temporary folder)")
    return p


def run(args) -> int:
    import sys

    from surgtwin.services.selftest import run_selftest

    print("surgtwin self-test: sample case -> segment (bundled model) -> mesh -> offscreen render -> report",
          flush=True)
    result = run_selftest(args.out, progress=lambda line: print(line, flush=True))
    if not result.ok:
        print(f"surgtwin: selftest failed: {result.failure}", file=sys.stderr)
        return 1
    print(f"self-test passed in {result.seconds:.1f} s; outputs in {result.out_dir}")
    return 0
