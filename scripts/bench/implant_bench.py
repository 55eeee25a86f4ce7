#!/usr/bin/env python
"""Implant placement checks per pose: live (precomputed fields + point samples) vs naive (voxelise).

    python scripts/bench/implant_bench.py [--case DIR] [--poses 200] [--json OUT.json]

On the abdomen-pelvis sample case (its CT and reference labels), for a hip stem (size 4, automatic
pose in the left femur) and a pedicle screw (6.5x45, automatic pose in L4 left): the one-off costs
(automatic pose, the check fields of the case, the implant's point samples), then the checks of
``--poses`` random poses around the start pose (translations sd 1.5 mm, rotations sd 2 degrees, as
in a drag). Baseline, measured in the same run on the same poses: the naive check, voxelising the
posed implant on the label grid every time and reading the same fields at its voxels
(``CheckContext.check_voxelised``). Figures are medians (and 90th percentiles) over the poses.
Goal (issue 13): <= 50 ms per pose change.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

GOAL_MS = 50.0
CASES = (("hip-stem", "4", {"femur": "left"}), ("pedicle-screw", "6.5x45", {"vertebra": "L4", "side": "left"}))


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main(argv=None) -> int:
    import numpy as np

    from surgtwin import resources
    from surgtwin.core.plan import implants
    from surgtwin.core.plan.anatomy import propose_pose
    from surgtwin.core.plan.checks import CheckContext, default_spec, region_around
    from surgtwin.core.plan.pose import PlacedImplant
    from surgtwin.core.plan.voxelise import sample_implant
    from surgtwin.services import pipeline

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default=str(resources.sample_root() / "abdomen-pelvis"))
    ap.add_argument("--poses", type=int, default=200)
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args(argv)

    t = time.perf_counter()
    case = pipeline.new_case(args.case)
    print(f"case {case.name}: {'x'.join(map(str, case.volume.shape))} voxels, spacing "
          f"{'x'.join(f'{s:g}' for s in case.volume.spacing_mm)} mm, opened in {time.perf_counter() - t:.1f} s")
    labels, ct = case.labels, case.volume
    rng = np.random.default_rng(13)
    report = {"goal_ms": GOAL_MS, "poses": args.poses, "implants": {}}
    print(f"{'implant':<22} {'auto pose':>9} {'fields':>7} {'samples':>8} {'points':>7} | "
          f"{'live median':>11} {'p90':>6} | {'naive median':>12} {'p90':>7} | speed-up  goal")
    for family, size, target in CASES:
        imp = implants.family(family).implant(size)
        t = time.perf_counter()
        prop = propose_pose(labels, imp, target)
        t_pose = time.perf_counter() - t
        placed = PlacedImplant("1", f"{family} {size}", imp, prop.pose, prop.target, "auto")
        spec = default_spec(labels, prop.target)
        t = time.perf_counter()
        ctx = CheckContext(labels, spec, ct=ct,
                           region=region_around(labels.shape, labels.affine, placed.world_mesh().vertices,
                                                spec.region_margin_mm))
        t_fields = time.perf_counter() - t
        t = time.perf_counter()
        samples = sample_implant(imp)
        t_samples = time.perf_counter() - t
        poses = [placed.with_pose(placed.pose.moved(translate_lps=rng.normal(0, 1.5, 3),
                                                    rotate_deg_local=rng.normal(0, 2.0, 3)))
                 for _ in range(args.poses)]
        ctx.check(poses[0], samples)  # warm
        live, naive = [], []
        for p in poses:
            t = time.perf_counter()
            ctx.check(p, samples)
            live.append((time.perf_counter() - t) * 1000)
        for p in poses[: max(10, args.poses // 5)]:
            t = time.perf_counter()
            ctx.check_voxelised(p)
            naive.append((time.perf_counter() - t) * 1000)
        lm, nm = statistics.median(live), statistics.median(naive)
        n_pts = len(samples.volume_points) + 2 * len(samples.surface_points)
        ok = "ok" if lm <= GOAL_MS else "MISSED"
        print(f"{imp.label:<22} {t_pose:>8.2f}s {t_fields:>6.2f}s {t_samples:>7.2f}s {n_pts:>7} | "
              f"{lm:>8.2f} ms {pct(live, 0.9):>6.2f} | {nm:>9.1f} ms {pct(naive, 0.9):>7.1f} | {nm / lm:>6.0f}x  {ok}")
        report["implants"][imp.label] = {
            "auto_pose_s": round(t_pose, 3), "fields_s": round(t_fields, 3), "samples_s": round(t_samples, 3),
            "points": n_pts, "region_voxels": int(np.prod(ctx.shape)),
            "live_median_ms": round(lm, 3), "live_p90_ms": round(pct(live, 0.9), 3),
            "naive_median_ms": round(nm, 3), "naive_p90_ms": round(pct(naive, 0.9), 3), "naive_poses": len(naive)}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0 if all(v["live_median_ms"] <= GOAL_MS for v in report["implants"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
