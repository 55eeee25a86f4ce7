#!/usr/bin/env python
"""DICOM export figures: time and size of each object for a sample case, against baselines run alongside.

    python scripts/bench/export_bench.py [--case abdomen-pelvis] [--repeats 3] [--json OUT.json]

Per object (median of ``--repeats`` runs, seconds):

* source: ``SourceSeries.open`` (scan + headers of the CT series);
* SEG: build (highdicom, BINARY, empty frames omitted) + save; baseline: plain ``pydicom.dcmread`` +
  ``dcmwrite`` of every file of the source series (the cost of merely copying the CT);
* RTSTRUCT: build + save as surgtwin does it (contour items encoded as bytes); baseline: the same
  structure set built the plain way (a pydicom Dataset per contour item, DS values as lists) + save;
* SEG / RTSTRUCT read back onto the case grid; RTSTRUCT read baseline: the same contours rasterised with
  ``skimage.draw.polygon`` (what surgtwin's scanline fill replaces);
* SC: one 900x700 RGB snapshot; the de-identified export as a whole (SEG + RTSTRUCT + CT copy).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mesh_bench import timed  # noqa: E402 - (median seconds, last result) of repeated runs


def naive_rtstruct(labels, source, values, ds_template):
    """The structure set built the plain pydicom way: a Dataset per contour, DS values as lists."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from surgtwin.core.dicom.rtstruct import slice_contours

    ds = ds_template
    A = labels.affine
    seq = []
    for value in values:
        lab = labels.labels[value]
        rc = Dataset()
        rc.ROIDisplayColor = list(lab.color)
        rc.ReferencedROINumber = value
        items = []
        mask = labels.array == value
        for k in np.flatnonzero(mask.any(axis=(1, 2))):
            for c in slice_contours(mask[k]):
                lps = np.c_[np.full(len(c), float(k)), c] @ A[:3, :3].T + A[:3, 3]
                img = Dataset()
                img.ReferencedSOPClassUID = source.sop_class_uids[k]
                img.ReferencedSOPInstanceUID = source.sop_instance_uids[k]
                it = Dataset()
                it.ContourImageSequence = Sequence([img])
                it.ContourGeometricType = "CLOSED_PLANAR"
                it.NumberOfContourPoints = len(lps)
                it.ContourNumber = len(items) + 1
                it.ContourData = [f"{v:.2f}" for v in lps.ravel()]
                items.append(it)
        rc.ContourSequence = Sequence(items)
        seq.append(rc)
    del ds[0x30060039]
    ds.ROIContourSequence = Sequence(seq)
    return ds


def skimage_rasterise(path, grid):
    """RTSTRUCT contours filled with skimage.draw.polygon (the baseline of the import)."""
    import pydicom
    from skimage.draw import polygon

    from surgtwin.core.dicom.rtstruct_import import contour_points

    ds = pydicom.dcmread(path)
    inv = np.linalg.inv(grid.affine)
    out = np.zeros(grid.shape, np.uint16)
    for rc in ds.ROIContourSequence:
        mask = np.zeros(grid.shape, bool)
        for c in rc.get("ContourSequence", []):
            kji = contour_points(c) @ inv[:3, :3].T + inv[:3, 3]
            k = int(np.rint(kji[0, 0]))
            rr, cc = polygon(kji[:, 1], kji[:, 2], shape=grid.shape[1:])
            fill = np.zeros(grid.shape[1:], bool)
            fill[rr, cc] = True
            mask[k] ^= fill
        out[mask] = int(rc.ReferencedROINumber)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="abdomen-pelvis")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args()

    import pydicom

    from surgtwin.core.dicom.rtstruct import build_rtstruct
    from surgtwin.core.dicom.rtstruct_import import read_rtstruct
    from surgtwin.core.dicom.seg_export import build_secondary_capture, build_seg, exported_values
    from surgtwin.core.dicom.seg_import import read_seg
    from surgtwin.core.dicom.source_series import SourceSeries
    from surgtwin.services import dicom_export, pipeline

    sample = next(s for s in pipeline.sample_cases() if s.name == args.case)
    case = pipeline.new_case(sample.folder)
    lab = case.labels
    values = exported_values(lab)
    r = args.repeats
    tmp = Path(tempfile.mkdtemp(prefix="export_bench-"))
    rows: list[tuple[str, float, int | None]] = []
    print(f"case {sample.name}: {'x'.join(map(str, case.volume.shape))} voxels, {len(values)} structures; "
          f"median of {r}")

    t_src, source = timed(lambda: SourceSeries.open(case.source.path, case.volume, series_uid=case.source.series_uid), r)
    rows.append(("source series: scan + headers", t_src, None))

    def copy_series():
        out = tmp / "copy"
        out.mkdir(exist_ok=True)
        for i, p in enumerate(source.paths):
            pydicom.dcmwrite(out / f"{i}.dcm", pydicom.dcmread(p), enforce_file_format=True)
        return sum(f.stat().st_size for f in out.iterdir())

    t_copy, copy_size = timed(copy_series, r)
    rows.append(("baseline: pydicom read+write of the CT series", t_copy, copy_size))

    def seg():
        ds = build_seg(lab, source, values=values)
        ds.save_as(tmp / "seg.dcm", enforce_file_format=True)
        return (tmp / "seg.dcm").stat().st_size

    t_seg, seg_size = timed(seg, r)
    rows.append(("SEG build + save", t_seg, seg_size))

    def rt(naive: bool):
        ds, _ = build_rtstruct(lab, source, values=values)
        if naive:
            ds = naive_rtstruct(lab, source, values, ds)
        path = tmp / ("rt_naive.dcm" if naive else "rt.dcm")
        ds.save_as(path, enforce_file_format=True)
        return path.stat().st_size

    t_rt, rt_size = timed(lambda: rt(False), r)
    rows.append(("RTSTRUCT build + save", t_rt, rt_size))
    t_rt_naive, rt_naive_size = timed(lambda: rt(True), r)
    rows.append(("baseline: RTSTRUCT as pydicom Datasets + save", t_rt_naive, rt_naive_size))

    t_seg_read, seg_back = timed(lambda: read_seg(tmp / "seg.dcm", case.volume), r)
    rows.append(("SEG read onto the grid", t_seg_read, None))
    t_rt_read, rt_back = timed(lambda: read_rtstruct(tmp / "rt.dcm", case.volume), r)
    rows.append(("RTSTRUCT read (scanline fill)", t_rt_read, None))
    t_rt_sk, sk_back = timed(lambda: skimage_rasterise(tmp / "rt.dcm", case.volume), r)
    rows.append(("baseline: RTSTRUCT read with skimage.draw.polygon", t_rt_sk, None))

    rgb = np.random.default_rng(0).integers(0, 255, (700, 900, 3), dtype=np.uint8)

    def sc():
        ds = build_secondary_capture(rgb, source, title="bench", series_uid="1.2.3.4", instance_number=1)
        ds.save_as(tmp / "sc.dcm", enforce_file_format=True)
        return (tmp / "sc.dcm").stat().st_size

    t_sc, sc_size = timed(sc, r)
    rows.append(("SC (900x700 RGB) build + save", t_sc, sc_size))

    def deid():
        out = tmp / f"deid{time.perf_counter_ns()}"
        res = dicom_export.export_dicom(case, out, deidentify=True, snapshots=[])
        return sum(p.stat().st_size for ps in res.files.values() for p in ps)

    t_deid, deid_size = timed(deid, r)
    rows.append(("de-identified export (SEG + RTSTRUCT + CT)", t_deid, deid_size))

    same_seg = bool(np.array_equal(seg_back.array, lab.array))
    same_rt = bool(np.array_equal(rt_back.array, lab.array))
    same_sk = bool(np.array_equal(sk_back, lab.array))
    print(f"{'object':<52} {'seconds':>8} {'MB':>8}")
    for name, t, size in rows:
        print(f"{name:<52} {t:8.2f} {'' if size is None else f'{size / 1e6:8.2f}':>8}")
    print(f"SEG write / CT series copy:               {t_seg / t_copy:.2f}x time, {seg_size / copy_size:.2f}x size")
    print(f"RTSTRUCT write / plain-pydicom RTSTRUCT:  {t_rt / t_rt_naive:.2f}x time, {rt_size / rt_naive_size:.2f}x size")
    print(f"RTSTRUCT read / skimage.draw.polygon:     {t_rt_read / t_rt_sk:.2f}x time")
    print(f"round trip identical: SEG {same_seg}, RTSTRUCT {same_rt} (skimage fill: {same_sk})")
    if args.json:
        Path(args.json).write_text(json.dumps({"case": sample.name, "repeats": r, "rows": [
            {"object": n, "seconds": round(t, 4), "bytes": s} for n, t, s in rows],
            "identical": {"seg": same_seg, "rtstruct": same_rt, "rtstruct_skimage": same_sk}}, indent=2) + "\n")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
