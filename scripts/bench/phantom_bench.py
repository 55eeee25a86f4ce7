#!/usr/bin/env python
"""Sample-patient generator speed: a new patient from an unseen seed at 1.5 mm, per case kind.

Goal (issue "Sample patient cases"): under 10 s. Prints CPU time (this process; the generator is
single-threaded numpy/scipy, so CPU time is what other jobs on a shared machine disturb least) and wall
time, medians over --repeats seeds, and the ratio to the goal.

Usage: .venv/bin/python scripts/bench/phantom_bench.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from surgtwin.core.phantom import generate_case  # noqa: E402

KINDS = ("abdomen-pelvis", "cardiac-cta", "head")
GOAL_S = 10.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    generate_case("head", 1, pixel_mm=3.0, slice_mm=3.0)  # warm imports
    print(f"new patient at 1.5 x 1.5 x 1.5 mm, seeds 12345.., median of {args.repeats}:")
    for kind in KINDS:
        cpu, wall, shape = [], [], None
        for r in range(args.repeats):
            t0, w0 = time.process_time(), time.perf_counter()
            case = generate_case(kind, 12345 + r, pixel_mm=1.5, slice_mm=1.5)
            cpu.append(time.process_time() - t0)
            wall.append(time.perf_counter() - w0)
            shape = case.ct.shape
        c, w = statistics.median(cpu), statistics.median(wall)
        print(f"  {kind:15s} {shape[0]}x{shape[1]}x{shape[2]}: CPU {c:5.1f} s, wall {w:5.1f} s "
              f"(= {c / GOAL_S:.2f}x the 10 s goal, {'met' if c < GOAL_S else 'MISSED'})")


if __name__ == "__main__":
    main()
