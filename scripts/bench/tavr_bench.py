#!/usr/bin/env python
"""TAVR measurement figures on the cardiac sample (issue 14: <= 2 s).

    python scripts/bench/tavr_bench.py [--runs 5] [--mask] [--json OUT.json]

Timed (median of ``--runs``, the case read once, untimed): ``measure_annulus`` from the sample's
multi-label map and CT (annulus plane, contour, calipers, root sections, coronary ostia, calcium),
then the chart/valve/gradient part (``size_valves`` + ``place_valve`` + ``mean_gradient``); with
``--mask`` also from a binary aorta (root + ascending) mask alone with the CT (root-end search,
coronaries from the CT). Plain baseline, same run: ``scipy.ndimage.distance_transform_edt`` of the
same aorta mask over the whole grid, and reading the sample's ``labels.nii.gz``. Printed: each time,
its ratio to the baseline, and the measured values against the sample's designed truth.

``run(runs=3, mask=False)`` returns the figures as a dict (for ``flow_bench``'s ``EXTRA_TIMINGS``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

TRUTH = {"perimeter_mm": 81.3765, "area_mm2": 518.6584, "coronary_height_left_mm": 11.0,
         "coronary_height_right_mm": 17.6}


def _median_time(fn, runs: int):
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def run(runs: int = 3, mask: bool = False) -> dict:
    import numpy as np
    from scipy.ndimage import distance_transform_edt

    from surgtwin.core.labels_io import read_labelmap
    from surgtwin.core.plan import tavr_devices as dev
    from surgtwin.core.plan.tavr import measure_annulus
    from surgtwin.core.types import LabelMap, LabelTable
    from surgtwin.services import pipeline

    folder = pipeline.sample_root() / "cardiac-cta"
    case = pipeline.new_case(folder)
    labels, ct = case.labels, case.volume
    vals = [labels.labels.by_name(n).value for n in ("aortic_root", "ascending_aorta")]
    aorta = np.isin(labels.array, vals)
    sp = labels.spacing_mm
    t_edt, _ = _median_time(lambda: distance_transform_edt(~aorta, sampling=sp), runs)
    t_read, _ = _median_time(lambda: read_labelmap(folder / "labels.nii.gz", reference=ct), runs)
    measure_annulus(labels, ct)  # warm-up (imports)
    t_labels, m = _median_time(lambda: measure_annulus(labels, ct), runs)

    def devices():
        sizing = dev.size_valves(m)
        rec = sizing["balloon-expandable"].recommended
        dev.place_valve(m, "balloon-expandable", rec)
        return dev.mean_gradient(dev.eoa_cm2("balloon-expandable", rec))

    t_dev, grad = _median_time(devices, runs)
    fig = {"runs": runs, "baseline_edt_s": t_edt, "baseline_read_labels_s": t_read,
           "measure_labels_s": t_labels, "measure_over_edt": t_labels / t_edt, "measure_over_read": t_labels / t_read,
           "sizing_valve_gradient_s": t_dev, "goal_s": 2.0,
           "measured": {"perimeter_mm": m.perimeter_mm, "area_mm2": m.area_mm2,
                        "coronary_height_left_mm": m.coronary_height_mm("left"),
                        "coronary_height_right_mm": m.coronary_height_mm("right")},
           "truth": TRUTH, "mean_gradient_mmhg": grad["mean_gradient_mmhg"]}
    if mask:
        binm = LabelMap(aorta.astype(np.uint8), labels.affine, labels=LabelTable())
        t_mask, mm = _median_time(lambda: measure_annulus(binm, ct), runs)
        fig.update({"measure_mask_s": t_mask, "mask_over_edt": t_mask / t_edt,
                    "measured_mask": {"perimeter_mm": mm.perimeter_mm, "area_mm2": mm.area_mm2,
                                      "coronary_height_left_mm": mm.coronary_height_mm("left"),
                                      "coronary_height_right_mm": mm.coronary_height_mm("right")}})
    return fig


def show(fig: dict) -> None:
    print(f"cardiac sample, median of {fig['runs']} runs")
    print(f"  baseline distance_transform_edt (aorta mask, whole grid): {fig['baseline_edt_s'] * 1e3:8.1f} ms")
    print(f"  baseline read labels.nii.gz:                               {fig['baseline_read_labels_s'] * 1e3:8.1f} ms")
    print(f"  TAVR measurement from the label map + CT:                  {fig['measure_labels_s'] * 1e3:8.1f} ms "
          f"= {fig['measure_over_edt']:.1f}x EDT, {fig['measure_over_read']:.1f}x label read (goal <= 2 s)")
    print(f"  sizing + valve + gradient:                                 {fig['sizing_valve_gradient_s'] * 1e3:8.1f} ms")
    if "measure_mask_s" in fig:
        print(f"  TAVR measurement from a binary aorta mask + CT:            {fig['measure_mask_s'] * 1e3:8.1f} ms "
              f"= {fig['mask_over_edt']:.1f}x EDT")
    for key in ("measured", "measured_mask"):
        if key in fig:
            print(f"  {key}: " + ", ".join(f"{k} {v:.2f} (truth {fig['truth'][k]:g})" for k, v in fig[key].items()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mask", action="store_true", help="also time the binary-mask path")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    fig = run(args.runs, args.mask)
    show(fig)
    if args.json:
        args.json.write_text(json.dumps(fig, indent=2))
    return 0 if fig["measure_labels_s"] <= fig["goal_s"] else 1


if __name__ == "__main__":
    sys.exit(main())
