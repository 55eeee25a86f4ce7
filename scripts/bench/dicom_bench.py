#!/usr/bin/env python
"""DICOM loading benchmark: surgtwin vs SimpleITK ImageSeriesReader on the same files, in one run.

1. A 512x512x400 uncompressed CT series (generated here, 12-bit unsigned + intercept -1024 as many
   scanners write it): wall time and peak RAM above the process's baseline, each load in a fresh
   subprocess, median of --repeats, alternating the two readers. Goals: time <= 1.0x SimpleITK, peak
   RAM <= 1.5x the volume's size.
2. Header scan of a 5,000-file folder (same headers, small pixel data): surgtwin's scan vs a plain
   pydicom dcmread(stop_before_pixels=True) loop. Goal: <= 3 s.

Usage: .venv/bin/python scripts/bench/dicom_bench.py [--dir /tmp/surgtwin-bench] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def write_ct(folder: Path, n: int, size: int, pixels: bool = True) -> None:
    import pydicom  # noqa: F401
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.dcm"))) == n:
        return
    rng = np.random.default_rng(0)
    series, study, frame = (generate_uid(entropy_srcs=[str(folder), s]) for s in ("se", "st", "for"))
    yy, xx = np.mgrid[:size, :size]
    body = ((yy - size / 2) ** 2 / (0.42 * size) ** 2 + (xx - size / 2) ** 2 / (0.48 * size) ** 2) < 1
    for k in range(n):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        sop = generate_uid(entropy_srcs=[str(folder), str(k)])
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientName, ds.PatientID, ds.Modality = "PHANTOM^BENCH", "BENCH", "CT"
        ds.StudyDate, ds.StudyTime, ds.SeriesNumber, ds.InstanceNumber = "20260101", "120000", 2, k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.Manufacturer, ds.ManufacturerModelName = "PHANTOM", "BENCH-CT"
        ds.StudyDescription, ds.SeriesDescription = "ABDOMEN", "PORTAL VENOUS 1.0 B30f"
        ds.BodyPartExamined, ds.ConvolutionKernel, ds.KVP = "ABDOMEN", "B30f", 120
        ds.SliceThickness, ds.PixelSpacing = 1.0, [0.78, 0.78]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-200.0, -200.0, -k * 1.0]
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        if pixels:
            img = np.where(body, 1064, 24) + rng.integers(0, 30, size=(size, size))
            ds.PixelData = img.astype(np.uint16).tobytes()
        else:
            ds.PixelData = np.zeros((size, size), np.uint16).tobytes()
        ds.save_as(folder / f"IM{k:05d}.dcm", enforce_file_format=True)


CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
which, folder = sys.argv[1], sys.argv[2]
import numpy as np, SimpleITK as sitk, pydicom
import surgtwin.core.dicom.load, surgtwin.core.dicom.scan, surgtwin.core.io

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
open("/proc/self/clear_refs", "w").write("5")  # reset the peak-RSS counter
base = rss("VmRSS:")
t = time.perf_counter()
if which == "surgtwin":
    arr = surgtwin.core.io.load_volume(folder).array
else:
    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(folder))
    img = r.Execute()
    arr = sitk.GetArrayViewFromImage(img)
dt = time.perf_counter() - t
print(json.dumps({{"s": dt, "peak": rss("VmHWM:") - base, "nbytes": arr.nbytes, "dtype": str(arr.dtype)}}))
"""


def run_child(which: str, folder: Path) -> dict:
    code = CHILD.format(root=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code, which, str(folder)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_load(folder: Path, repeats: int) -> None:
    res: dict[str, list[dict]] = {"surgtwin": [], "simpleitk": []}
    for _ in range(repeats):
        for which in ("simpleitk", "surgtwin"):
            res[which].append(run_child(which, folder))
    med = {w: statistics.median(r["s"] for r in rs) for w, rs in res.items()}
    peak = {w: statistics.median(r["peak"] for r in rs) for w, rs in res.items()}
    nbytes = res["surgtwin"][0]["nbytes"]
    print(f"load 512x512x400 CT ({nbytes / 2**20:.0f} MiB as {res['surgtwin'][0]['dtype']}), median of {repeats}:")
    for w in ("surgtwin", "simpleitk"):
        print(f"  {w:10s} {med[w]:6.2f} s   peak RAM {peak[w] / 2**20:7.0f} MiB = {peak[w] / nbytes:4.2f}x volume"
              f"   runs: {', '.join(format(r['s'], '.2f') for r in res[w])}")
    print(f"  time ratio surgtwin/SimpleITK = {med['surgtwin'] / med['simpleitk']:.2f}  (goal <= 1.0)")
    print(f"  peak RAM surgtwin / volume size = {peak['surgtwin'] / nbytes:.2f}  (goal <= 1.5)")


def bench_scan(folder: Path, repeats: int) -> None:
    import pydicom

    from surgtwin.core.dicom.scan import scan

    files = sorted(folder.glob("*.dcm"))
    ours, base = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        result = scan(folder)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        for f in files:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            _ = (ds.SeriesInstanceUID, ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing,
                 ds.Rows, ds.Columns, ds.RescaleSlope, ds.RescaleIntercept, ds.ImageType, ds.SOPInstanceUID)
        base.append(time.perf_counter() - t)
    assert result.candidates[0].shape[0] == len(files), "scan did not see every file"
    mo, mb = statistics.median(ours), statistics.median(base)
    print(f"header scan of {len(files)} files (warm page cache), median of {repeats}:")
    print(f"  surgtwin scan (grouping + sorting + checks) {mo:6.2f} s   runs: {', '.join(f'{x:.2f}' for x in ours)}")
    print(f"  pydicom dcmread(stop_before_pixels) loop     {mb:6.2f} s   runs: {', '.join(f'{x:.2f}' for x in base)}")
    print(f"  ratio surgtwin/pydicom = {mo / mb:.2f}; goal <= 3 s: {'met' if mo <= 3 else 'MISSED'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "surgtwin-bench")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--slices", type=int, default=400)
    ap.add_argument("--scan-files", type=int, default=5000)
    args = ap.parse_args()
    ct = args.dir / f"ct512x{args.slices}"
    many = args.dir / f"headers{args.scan_files}"
    t = time.perf_counter()
    write_ct(ct, args.slices, 512)
    write_ct(many, args.scan_files, 16)
    print(f"(test data ready in {time.perf_counter() - t:.1f} s under {args.dir})")
    bench_load(ct, args.repeats)
    bench_scan(many, args.repeats)


if __name__ == "__main__":
    main()
