#!/usr/bin/env python
"""Regenerate the committed sample cases under surgtwin/data/samples/ (byte-identical for the same library
versions): a thin CLI over ``surgtwin.core.phantom``.

    python scripts/make_sample_cases.py                 # all three cases into surgtwin/data/samples/
    python scripts/make_sample_cases.py --out /tmp/x --case head
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: the committed cases: kind -> (seed, pixel_mm, slice_mm); sized to keep surgtwin/data/samples/ under 40 MB
SAMPLE_CASES = {
    "abdomen-pelvis": (11, 1.5, 3.0),
    "cardiac-cta": (7, 0.8, 1.25),
    "head": (3, 0.9, 2.0),
}


def main(argv=None) -> int:
    from surgtwin.core.phantom import generate_case, write_case

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    from surgtwin.resources import sample_root

    ap.add_argument("--out", type=Path, default=sample_root(), help="output folder (default surgtwin/data/samples/)")
    ap.add_argument("--case", action="append", choices=sorted(SAMPLE_CASES), help="only this case (repeatable)")
    args = ap.parse_args(argv)
    for kind in args.case or list(SAMPLE_CASES):
        seed, px, sz = SAMPLE_CASES[kind]
        t0 = time.perf_counter()
        case = generate_case(kind, seed, pixel_mm=px, slice_mm=sz)
        t1 = time.perf_counter()
        write_case(case, args.out / kind)
        print(f"{kind}: seed {seed}, {case.ct.shape[2]}x{case.ct.shape[1]}x{case.ct.shape[0]}, "
              f"generated in {t1 - t0:.1f} s, written in {time.perf_counter() - t1:.1f} s -> {args.out / kind}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
