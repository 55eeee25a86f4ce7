#!/usr/bin/env python
"""Segmentation figures: Dice on unseen phantoms and real CT, end-to-end time and peak RAM.

    .venv/bin/python scripts/bench/seg_bench.py [--bundle DIR] [--seeds 9000 9001 9002 9003 9004]

1. Dice per structure on phantoms of every kind generated with seeds never used in training
   (training uses 1000-1019, validation 500), at 2.5 mm (the model works at 3 mm).
2. Dice per structure on real CT never trained on: the hold-out slices 70-87 of TotalSegmentator's
   example_ct (whole scan as input; and the slab alone as input), the LiTS 117 liver crop of
   liver-ct-segmentation-package 1.6.0 (liver, tumour; voxel size not recorded: 1.4 mm assumed, with
   1.2 and 1.6 mm as a sensitivity check), tptbox's lumbar spine CT (vertebrae) and slicerio's CTChest4
   (vertebrae, ribs, lungs; segment names from the segmentation's header). One table per set.
3. End-to-end time and peak RAM on a 512x512x300 CT (example_ct resampled to 0.75 x 0.75 x 1.2 mm),
   surgtwin's path vs a plain MONAI ``sliding_window_inference`` of the same network at default
   settings (sw_batch_size 1, constant blending, no inference_mode, default threads) with the same
   resampling in and out; each in its own process so that peak RAM is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import seg_data  # noqa: E402

from surgtwin.resources import bundled_model_dir  # noqa: E402


def dice(a, b):
    s = int(a.sum()) + int(b.sum())
    return float("nan") if s == 0 else 2.0 * float(np.logical_and(a, b).sum()) / s


def channels_of_result(res, bundle):
    """Label values of a result -> model channels (inverse of the bundle's channel_values)."""
    inv = np.zeros(int(bundle.channel_values.max()) + 1, np.uint8)
    for c, v in enumerate(bundle.channel_values):
        if c:
            inv[v] = c
    return inv[res.labels.array]


def per_class(pred, truth, names, mask=None, only=None):
    out = {}
    if mask is not None:
        pred, truth = pred[mask], truth[mask]
    for c in range(1, len(names)):
        if only is not None and names[c] not in only:
            continue
        if (truth == c).sum() < 20:  # structure absent (or a handful of voxels) in the ground truth
            continue
        out[names[c]] = round(dice(pred == c, truth == c), 4)
    return out


def bench_case(kind, seed, pixel_mm, slice_mm):
    """(ct Volume, channel truth) of a benchmark phantom, cached on disk (generation is slow at fine grids)."""
    from surgtwin.core.phantom import GENERATOR_VERSION, generate_case
    from surgtwin.core.segmentation.classes import phantom_to_channels
    from surgtwin.core.types import Volume

    f = seg_data.CACHE / "bench" / GENERATOR_VERSION / f"{kind}_{seed}_{pixel_mm}_{slice_mm}.npz"
    if f.exists():
        z = np.load(f)
        return Volume(z["ct"], z["affine"], modality="CT"), z["truth"]
    case = generate_case(kind, seed, pixel_mm=pixel_mm, slice_mm=slice_mm)
    truth = phantom_to_channels(case.labels.array, case.labels.labels)
    f.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(f.with_suffix(".tmp.npz"), ct=case.ct.array, affine=case.ct.affine, truth=truth)
    f.with_suffix(".tmp.npz").replace(f)
    return case.ct, truth


def phantom_dice(bundle, seeds, pixel_mm, slice_mm):
    from surgtwin.core.phantom import CASE_KINDS
    from surgtwin.core.segmentation import segment

    rows = {}
    for kind in CASE_KINDS:
        for seed in seeds:
            try:
                t = time.time()
                ct, truth = bench_case(kind, seed, pixel_mm, slice_mm)
                tg = time.time() - t
            except Exception as exc:
                print(f"  {kind}: not available ({type(exc).__name__}: {exc})", flush=True)
                break
            case = type("C", (), {"ct": ct})
            t = time.time()
            res = segment(case.ct, bundle=bundle)
            d = per_class(channels_of_result(res, bundle), truth, bundle.channel_names)
            rows[f"{kind} seed {seed}"] = d
            print(f"  {kind} seed {seed} {case.ct.shape}: generated {tg:.0f} s, segmented {time.time() - t:.1f} s, "
                  f"mean Dice {np.mean(list(d.values())):.3f}", flush=True)
    return rows


def per_class_voxels(pred, truth, names, mask=None, only=None, merge=None):
    """{structure: {dice, truth_voxels, pred_voxels}}; ``merge``: {name: (pred channels, truth channels)}
    for structures scored as a union (e.g. LiTS liver = liver + tumour)."""
    if mask is not None:
        pred, truth = pred[mask], truth[mask]
    out = {}
    groups = dict(merge or {})
    for c in range(1, len(names)):
        if names[c] not in groups:
            groups[names[c]] = ((c,), (c,))
    for n, (pc, tc) in groups.items():
        if only is not None and n not in only:
            continue
        t, q = np.isin(truth, tc), np.isin(pred, pc)
        if t.sum() < 20:  # structure absent (or a handful of voxels) in the ground truth
            continue
        out[n] = {"dice": round(dice(q, t), 4), "truth_voxels": int(t.sum()), "pred_voxels": int(q.sum())}
    return out


def real_dice(bundle):
    """{set: {structure: {dice, truth_voxels, pred_voxels}}}, plus {set: note}; each input segmented by
    ``segment(volume, bundle=...)`` as ``surgtwin segment`` does (NIfTI/NRRD/MRC -> modality CT). Never the
    TotalSegmentator sdist's three report folders (reserved as the project's blind test)."""
    import SimpleITK as sitk

    from surgtwin.core.geometry import resample_to, volume_from_sitk
    from surgtwin.core.segmentation import segment

    data = seg_data.fetch_public_data()
    names = bundle.channel_names
    rows, notes = {}, {}

    def run(v):
        return channels_of_result(segment(v, bundle=bundle), bundle)

    ct, ch = seg_data.totalseg_volumes(data)
    k0, k1 = seg_data.HOLDOUT_K
    pred = run(ct)
    slab = np.zeros(ct.shape, bool)
    slab[k0:k1] = True
    key = f"TotalSeg example_ct slices {k0}-{k1 - 1} (whole scan as input)"
    rows[key] = per_class_voxels(pred, ch, names, mask=slab)
    notes[key] = "truth: TotalSegmentator's own prediction (not manual), 61 labels mapped to the model's channels"
    sub = seg_data.sub_volume(ct, k0, k1)
    rows[f"TotalSeg example_ct slices {k0}-{k1 - 1} (slab alone as input)"] = per_class_voxels(
        run(sub), ch[k0:k1], names)

    # LiTS 117 liver crop (liver-ct-segmentation-package wheel): 1 liver, 2 tumour; manual labels
    lit = data / "liver_ct" / "liver_ct_segmentation_package" / "data"
    if lit.exists():
        li, tu = names.index("liver"), names.index("tumour")
        for sp in (seg_data.LITS_SPACING_MM, 1.2, 1.6):
            v, lab, note = seg_data.lits_volumes(data, sp)
            truth = np.zeros(lab.shape, np.uint8)
            truth[lab == 1], truth[lab == 2] = li, tu
            key = f"LiTS 117 liver crop 128^3 (assumed {sp} mm isotropic)"
            rows[key] = per_class_voxels(run(v), truth, names, only=("liver", "tumour"),
                                         merge={"liver": ((li, tu), (li, tu))})
            notes[key] = note + "; liver = liver + tumour in both truth and prediction; the crop is the liver's " \
                "bounding box, so only liver and tumour are labelled"
            if sp != seg_data.LITS_SPACING_MM:
                notes[key] += " (spacing sensitivity check, not the headline figure)"

    # tptbox lumbar spine CT crop: vertebra masks (all vertebrae -> 'vertebrae'); other structures unlabelled
    tp = data / "tptbox" / "TPTBox" / "tests" / "sample_ct"
    if tp.exists():
        v = replace(volume_from_sitk(sitk.ReadImage(str(tp / "sub-ct_label-22_ct.nii.gz"))), modality="CT")
        m = sitk.GetArrayFromImage(sitk.ReadImage(str(tp / "sub-ct_seg-vert_label-22_msk.nii.gz")))
        truth = np.where(m > 0, names.index("vertebrae"), 0).astype(np.uint8)
        key = "tptbox sample_ct (lumbar spine crop)"
        rows[key] = per_class_voxels(run(v), truth, names, only=("vertebrae",))
        notes[key] = f"all vertebra labels -> vertebrae; CT {v.shape} at {np.round(v.spacing_mm, 2).tolist()} mm"

    # slicerio CTChest4 + Segmentation.seg.nrrd: segment names read from the segmentation's header
    sc = data / "slicerio" / "slicerio" / "data"
    if sc.exists():
        v = replace(volume_from_sitk(sitk.ReadImage(str(sc / "CTChest4.nrrd"))), modality="CT")
        seg = sitk.ReadImage(str(sc / "Segmentation.seg.nrrd"))
        to_channel = {"ribs": "ribs", "right lung": "lung_right", "left lung": "lung_left",
                      "cervical vertebral column": "vertebrae", "thoracic vertebral column": "vertebrae",
                      "lumbar vertebral column": "vertebrae"}  # 'tissue' and anything else: not scored
        lut = np.zeros(256, np.uint8)
        seen = []
        for k in seg.GetMetaDataKeys():
            if k.startswith("Segment") and k.endswith("_Name"):
                nm = seg.GetMetaData(k)
                val = int(seg.GetMetaData(k.replace("_Name", "_LabelValue")))
                seen.append(f"{val} {nm}")
                if nm in to_channel:
                    lut[val] = names.index(to_channel[nm])
        truth = resample_to(volume_from_sitk(seg).with_array(lut[sitk.GetArrayFromImage(seg)]), v,
                            interpolation="nearest").array
        key = "slicerio CTChest4 (chest CT, 10 mm slices)"
        rows[key] = per_class_voxels(run(v), truth, names, only=("ribs", "vertebrae", "lung_left", "lung_right"))
        notes[key] = f"segments in the header: {', '.join(sorted(seen))}; CT {v.shape} at " \
            f"{np.round(v.spacing_mm, 2).tolist()} mm"
    return rows, notes


# -- timing ---------------------------------------------------------------------------------------
def big_ct_path() -> Path:
    """example_ct resampled to a 512x512x300 grid at 0.75 x 0.75 x 1.2 mm (air outside), as NIfTI."""
    from surgtwin.core.geometry import resample_to
    from surgtwin.core.io import save_volume
    from surgtwin.core.types import Volume

    out = seg_data.CACHE / "bench" / "big_ct_512x512x300.nii.gz"
    if out.exists():
        return out
    data = seg_data.fetch_public_data()
    ct, _ = seg_data.totalseg_volumes(data)
    shape = (300, 512, 512)
    aff = np.diag([1.2, 0.75, 0.75, 1.0])
    centre = ct.index_to_world((np.asarray(ct.shape) - 1) / 2.0)
    aff[:3, :3] = ct.direction @ np.diag([1.2, 0.75, 0.75])
    aff[:3, 3] = centre - aff[:3, :3] @ ((np.asarray(shape) - 1) / 2.0)
    ref = Volume(np.zeros(shape, np.uint8), aff)
    big = resample_to(ct.with_array(ct.array.astype(np.int16)), ref, default_value=-1024)
    save_volume(replace(big, modality="CT"), out)
    return out


def time_one(mode: str, bundle_dir: str, threads: int | None):
    """Run in a child process: load the big CT, segment, save; print JSON with times and peak RSS."""
    import torch

    from surgtwin.core.io import load_volume, save_volume
    from surgtwin.core.segmentation import load_bundle, segment
    from surgtwin.core.segmentation.inference import model_grid, preprocess, to_source
    from surgtwin.core.types import LabelMap

    if threads:
        torch.set_num_threads(threads)
    path = big_ct_path()
    t0 = time.perf_counter()
    vol = replace(load_volume(path), modality="CT")
    t_load = time.perf_counter() - t0
    b = load_bundle(bundle_dir)
    t1 = time.perf_counter()
    if mode == "surgtwin":
        res = segment(vol, bundle=b)
        lab = res.labels
        detail = {k: round(v, 2) for k, v in res.timings_s.items()}
    else:  # plain MONAI sliding window, default settings, same network and resampling
        from monai.inferers import sliding_window_inference

        net = b.build_network("cpu")
        t_model = time.perf_counter() - t1
        grid = model_grid(vol, b.spacing_mm, b.axcodes)
        x = torch.from_numpy(preprocess(vol, grid, b.hu_window, b.value_range))[None, None]
        t_net = time.perf_counter()
        with torch.no_grad():
            y = sliding_window_inference(x, b.roi_size, 1, net)
        t_net = time.perf_counter() - t_net
        ch = y[0].argmax(0).numpy().astype(np.uint8)
        src = to_source(ch, None, grid, vol, refine=False)
        lab = LabelMap(b.channel_values[src].astype(np.uint8), vol.affine.copy(), labels=b.labels)
        detail = {"load_model": round(t_model, 2), "network": round(t_net, 2)}
    t_seg = time.perf_counter() - t1
    out = seg_data.CACHE / "bench" / f"labels_{mode}.nii.gz"
    t2 = time.perf_counter()
    save_volume(lab, out)
    t_save = time.perf_counter() - t2
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"mode": mode, "threads": torch.get_num_threads(), "shape": list(vol.shape),
                      "load_s": round(t_load, 2), "segment_s": round(t_seg, 2), "save_s": round(t_save, 2),
                      "end_to_end_s": round(t_load + t_seg + t_save, 2), "peak_rss_mb": round(peak),
                      "detail": detail}))


def timing(bundle_dir, threads):
    big_ct_path()
    out = {}
    for mode in ("surgtwin", "monai_default"):
        cmd = [sys.executable, __file__, "--time-one", mode, "--bundle", str(bundle_dir)]
        if threads and mode == "surgtwin":
            cmd += ["--threads", str(threads)]
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
        if r.returncode or not lines:
            print(r.stdout[-2000:], r.stderr[-3000:])
            raise SystemExit(f"timing run {mode} failed")
        out[mode] = json.loads(lines[-1])
        print(f"  {mode}: {out[mode]}", flush=True)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default=str(bundled_model_dir() / "surgtwin_ct_multiorgan"))
    p.add_argument("--seeds", type=int, nargs="+", default=[9000, 9001, 9002, 9003, 9004])
    p.add_argument("--pixel-mm", type=float, default=2.5)
    p.add_argument("--slice-mm", type=float, default=2.5)
    p.add_argument("--threads", type=int, default=None, help="torch threads for surgtwin's timing run")
    p.add_argument("--skip", nargs="*", default=[], choices=["phantom", "real", "timing"])
    p.add_argument("--json", help="write all figures here")
    p.add_argument("--time-one", help=argparse.SUPPRESS)
    p.add_argument("--prepare", action="store_true", help="only generate and cache the benchmark inputs")
    a = p.parse_args()
    if a.time_one:
        time_one(a.time_one, a.bundle, a.threads)
        return
    if a.prepare:
        from surgtwin.core.phantom import CASE_KINDS

        big_ct_path()
        for kind in CASE_KINDS:
            for seed in a.seeds:
                t = time.time()
                bench_case(kind, seed, a.pixel_mm, a.slice_mm)
                print(f"{kind} {seed}: {time.time() - t:.0f} s", flush=True)
        return
    from surgtwin.core.segmentation import load_bundle

    b = load_bundle(a.bundle)
    print(f"bundle {b.name} {b.version} ({b.out_channels} channels, {b.spacing_mm} mm), cpu cores {os.cpu_count()}, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    figures = {"bundle": f"{b.name} {b.version}", "sha256": b.weights_sha256}
    if "phantom" not in a.skip:
        print(f"phantoms (seeds {a.seeds}, {a.pixel_mm} mm pixels, {a.slice_mm} mm slices):", flush=True)
        figures["phantom"] = phantom_dice(b, a.seeds, a.pixel_mm, a.slice_mm)
    if "real" not in a.skip:
        print("real CT never trained on:", flush=True)
        detail, notes = real_dice(b)
        figures["real"] = {k: {n: c["dice"] for n, c in d.items()} for k, d in detail.items()}
        figures["real_detail"] = detail
        figures["real_notes"] = notes
    if "timing" not in a.skip:
        print("end-to-end on 512x512x300 (load NIfTI + segment + save NIfTI), each in its own process:", flush=True)
        figures["timing"] = timing(a.bundle, a.threads)
        s, m = figures["timing"]["surgtwin"], figures["timing"]["monai_default"]
        print(f"  surgtwin {s['end_to_end_s']:.1f} s (segment {s['segment_s']:.1f} s), peak RSS {s['peak_rss_mb']} MB; "
              f"plain MONAI {m['end_to_end_s']:.1f} s (segment {m['segment_s']:.1f} s), peak RSS {m['peak_rss_mb']} MB; "
              f"ratio plain/surgtwin (segment step) {m['segment_s'] / s['segment_s']:.2f}", flush=True)
        print(f"  network stage alone (sliding window): surgtwin {s['detail']['network']:.1f} s (Gaussian blending, "
              f"4 windows/batch, channels-last, inference_mode) vs plain MONAI {m['detail']['network']:.1f} s "
              f"(constant blending, 1 window/batch, no_grad): ratio plain/surgtwin "
              f"{m['detail']['network'] / s['detail']['network']:.2f}; surgtwin's extra steps: post-processing "
              f"{s['detail']['postprocess']:.1f} s, sub-voxel boundary refinement back to the source grid "
              f"{s['detail']['to_source']:.1f} s, per-structure volume and confidence", flush=True)
    if "phantom" in figures:
        print_table(figures["phantom"], "phantom")
    if "real" in figures:
        print_real(figures["real_detail"], figures["real_notes"])
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=1) + "\n")


def print_real(detail, notes):
    """One table per real set: structure, Dice, truth voxels, predicted voxels."""
    print("\nDice per structure (real CT, held out / never trained on):")
    for k, d in detail.items():
        print(f"\n  {k}" + (f"\n    ({notes[k]})" if k in notes else ""))
        print(f"    {'structure':<22}{'Dice':>8}{'truth voxels':>14}{'pred voxels':>13}")
        for n, c in d.items():
            print(f"    {n:<22}{c['dice']:>8.3f}{c['truth_voxels']:>14}{c['pred_voxels']:>13}")


def print_table(rows, title):
    names = []
    for d in rows.values():
        for k in d:
            if k not in names:
                names.append(k)
    # phantom rows: mean and min over seeds per kind
    print(f"\nDice per structure ({title}):")
    if title == "phantom":
        kinds = sorted({k.split(" seed")[0] for k in rows})
        print(f"{'structure':<22}" + "".join(f"{k[:14]:>16}" for k in kinds) + "   (mean [min] over seeds)")
        for n in names:
            cells = []
            for kind in kinds:
                vals = [d[n] for k, d in rows.items() if k.startswith(kind) and n in d]
                cells.append(f"{np.mean(vals):.3f} [{np.min(vals):.3f}]" if vals else "-")
            print(f"{n:<22}" + "".join(f"{c:>16}" for c in cells))
    else:
        for k, d in rows.items():
            print(f"  {k}: " + ", ".join(f"{n} {v:.3f}" for n, v in d.items()))


if __name__ == "__main__":
    main()
