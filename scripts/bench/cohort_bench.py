#!/usr/bin/env python
"""Cohort throughput: cases per hour for segment+mesh over a folder of DICOM studies, run in this process
(the sequential baseline) and on local Dask clusters of 1, 2 and 4 worker processes, in the same run.

    python scripts/bench/cohort_bench.py [--cases 6] [--kind abdomen-pelvis] [--pixel-mm 1.5]
                                         [--slice-mm 1.5] [--workers 1,2,4] [--json OUT.json]

The studies are virtual patients written as real DICOM series first (untimed), one folder per study, so
each case costs what a hospital's folder of studies costs: reading the series, the bundled model, the
surfaces, saving the case. Every configuration runs the same cases into a fresh output folder; the
figures are the wall time of ``run_cohort`` (cluster start-up included), cases per hour, and the ratio
to the sequential run. From the 1-worker Dask run and the sequential run the script derives Dask's
overhead per case and states the throughput to expect on a cluster of W such workers (W x the
single-worker rate, less that overhead): an extrapolation, printed as one, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def make_studies(folder: Path, kind: str, n: int, pixel_mm: float, slice_mm: float):
    from surgtwin.core.phantom import generate_case, write_case
    from surgtwin.services.cohort import CohortCase

    entries = []
    for seed in range(n):
        pc = generate_case(kind, 100 + seed, pixel_mm=pixel_mm, slice_mm=slice_mm)
        study = folder / f"study-{seed:02d}"
        write_case(pc, study)
        entries.append(CohortCase(f"study-{seed:02d}", {"kind": "dicom", "path": str(study / "dicom")}))
    return entries, pc.ct.array.shape


def run_config(entries, out: Path, workers):
    from surgtwin.services.cohort import run_cohort

    t = time.perf_counter()
    run = run_cohort(entries, ["segment", "mesh"], out, workers=workers)
    wall = time.perf_counter() - t
    bad = [r["case_id"] + ": " + str(r.get("error")) for r in run.failed]
    if bad:
        raise SystemExit("cases failed:\n" + "\n".join(bad))
    recs = run.records
    return {
        "wall_s": round(wall, 2), "cases_per_hour": round(3600 * len(entries) / wall, 1),
        "case_s_median": round(statistics.median(r["seconds"] for r in recs), 2),
        "segment_s_median": round(statistics.median(r["steps"]["segment"]["seconds"] for r in recs), 2),
        "mesh_s_median": round(statistics.median(r["steps"]["mesh"]["seconds"] for r in recs), 2),
        "peak_rss_mb_max": max((r.get("peak_rss_mb") or 0) for r in recs),
        "processes": len({r["pid"] for r in recs}),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=6)
    ap.add_argument("--kind", default="abdomen-pelvis")
    ap.add_argument("--pixel-mm", type=float, default=1.5)
    ap.add_argument("--slice-mm", type=float, default=1.5)
    ap.add_argument("--workers", default="1,2,4", help="local Dask cluster sizes to measure")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    workers = [int(w) for w in args.workers.split(",") if w.strip()]

    with tempfile.TemporaryDirectory(prefix="cohort-bench-") as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        entries, shape = make_studies(tmp / "studies", args.kind, args.cases, args.pixel_mm, args.slice_mm)
        print(f"cohort: {args.cases} {args.kind} DICOM studies, {shape[0]}x{shape[1]}x{shape[2]} voxels at "
              f"{args.pixel_mm}/{args.slice_mm} mm (written in {time.perf_counter() - t:.0f} s, untimed); "
              f"steps segment+mesh; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}")
        results = {"sequential": run_config(entries, tmp / "out-seq", 0)}
        for w in workers:
            results[f"dask {w} worker{'s' if w > 1 else ''}"] = run_config(entries, tmp / f"out-{w}", w)

    base = results["sequential"]
    print(f"{'configuration':<18}{'wall s':>9}{'cases/h':>10}{'vs seq':>9}{'case s':>9}{'segment s':>11}"
          f"{'mesh s':>9}{'peak MB':>9}{'procs':>7}")
    for name, r in results.items():
        print(f"{name:<18}{r['wall_s']:>9.1f}{r['cases_per_hour']:>10.1f}{r['cases_per_hour'] / base['cases_per_hour']:>8.2f}x"
              f"{r['case_s_median']:>9.1f}{r['segment_s_median']:>11.1f}{r['mesh_s_median']:>9.1f}"
              f"{r['peak_rss_mb_max']:>9.0f}{r['processes']:>7}")
    if "dask 1 worker" in results:
        one = results["dask 1 worker"]
        overhead = (one["wall_s"] - base["wall_s"]) / args.cases
        per_case = base["wall_s"] / args.cases
        print(f"Dask overhead per case (1 worker vs sequential, start-up included): {overhead:+.1f} s "
              f"on {per_case:.1f} s per case")
        print("expected on a cluster (extrapolated, not measured): W workers of this machine's size give "
              f"about W x {3600 / (per_case + max(0.0, overhead)):.0f} cases/h while the scheduler and the "
              "shared file system keep up (each case is independent; only records and cases are written)")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
