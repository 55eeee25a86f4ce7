"""A synthetic CT phantom (torso with organs) for tests, benchmarks and demos when no case is at hand.

Not anatomy from a patient and not used by the pipeline: a few ellipsoids with CT-like HU values on
an axial LPS grid, plus the matching label map.
"""

from __future__ import annotations

import numpy as np

PHANTOM_LABELS = [
    (1, "liver", (221, 130, 101)),
    (2, "spleen", (157, 108, 162)),
    (3, "kidney_left", (185, 102, 83)),
    (4, "kidney_right", (185, 102, 83)),
    (5, "aorta", (224, 97, 76)),
    (6, "vertebrae", (241, 214, 145)),
    (7, "lung_left", (197, 165, 145)),
    (8, "lung_right", (197, 165, 145)),
]


def phantom(shape=(96, 160, 160), spacing_mm=(2.5, 2.0, 2.0), *, seed: int = 0, noise_hu: float = 12.0):
    """(Volume, LabelMap) of a synthetic torso; ``shape`` is (slices, rows, columns)."""
    from surgtwin.core.types import Label, LabelMap, LabelTable, Volume

    nk, nj, ni = shape
    sk, sj, si = spacing_mm
    z = (np.arange(nk) - nk / 2) * sk  # S
    y = (np.arange(nj) - nj / 2) * sj  # P
    x = (np.arange(ni) - ni / 2) * si  # L
    Z, Y, X = z[:, None, None], y[None, :, None], x[None, None, :]
    # scale anatomy to the field of view
    fx, fy, fz = ni * si / 320.0, nj * sj / 320.0, nk * sk / 240.0

    def ell(cx, cy, cz, rx, ry, rz):
        return ((X - cx * fx) / (rx * fx)) ** 2 + ((Y - cy * fy) / (ry * fy)) ** 2 + ((Z - cz * fz) / (rz * fz)) ** 2 <= 1

    rng = np.random.default_rng(seed)
    hu = np.full(shape, -1000.0, dtype=np.float32)
    lab = np.zeros(shape, dtype=np.uint8)
    body = ((X / (150 * fx)) ** 2 + ((Y - 5 * fy) / (105 * fy)) ** 2 <= 1) & (np.abs(Z) <= 118 * fz)
    inner = ((X / (138 * fx)) ** 2 + ((Y - 5 * fy) / (93 * fy)) ** 2 <= 1) & body
    hu[body] = -90.0  # subcutaneous fat
    hu[inner] = 35.0  # muscle / soft tissue
    organs = [
        (7, ell(60, -5, 60, 55, 70, 70), -850.0),
        (8, ell(-60, -5, 60, 55, 70, 70), -850.0),
        (1, ell(-55, -10, -10, 70, 62, 45), 62.0),
        (2, ell(70, 20, -5, 32, 38, 35), 50.0),
        (3, ell(52, 48, -55, 22, 26, 42), 140.0),
        (4, ell(-52, 48, -60, 22, 26, 42), 140.0),
        (5, ((X - 12 * fx) ** 2 + (Y - 32 * fy) ** 2 <= (11 * fx) ** 2) & (np.abs(Z) <= 115 * fz), 260.0),
        (6, ((X / (22 * fx)) ** 2 + ((Y - 62 * fy) / (18 * fy)) ** 2 <= 1)
         & (np.cos(Z / (14 * fz) * np.pi) > -0.7) & (np.abs(Z) <= 118 * fz), 650.0),
    ]
    for value, mask, h in organs:
        m = np.broadcast_to(mask, shape) & inner
        hu[m] = h
        lab[m] = value
    canal = ((X / (8 * fx)) ** 2 + ((Y - 84 * fy) / (7 * fy)) ** 2 <= 1) & np.broadcast_to(np.abs(Z) <= 118 * fz, shape)
    hu[canal] = 20.0
    hu += rng.normal(0.0, noise_hu, size=shape).astype(np.float32)
    affine = np.array([[0, 0, si, x[0]], [0, sj, 0, y[0]], [sk, 0, 0, z[0]], [0, 0, 0, 1]], dtype=float)
    volume = Volume(np.clip(hu, -1024, 3071).astype(np.int16), affine, "2.25.1", "CT",
                    {"description": "synthetic phantom"})
    table = LabelTable(Label(v, n, c) for v, n, c in PHANTOM_LABELS)
    return volume, LabelMap(lab, affine.copy(), "2.25.1", None, {}, labels=table)


def write_phantom(folder, **kw):
    """Write ``image.nii.gz`` + ``labels.nii.gz`` + ``labels.json`` into ``folder``; returns the image path."""
    from pathlib import Path

    import SimpleITK as sitk

    from surgtwin.core.geometry import volume_to_sitk

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vol, lab = phantom(**kw)
    sitk.WriteImage(volume_to_sitk(vol), str(folder / "image.nii.gz"), True)
    sitk.WriteImage(volume_to_sitk(lab), str(folder / "labels.nii.gz"), True)
    lab.labels.save(folder / "labels.json")
    return folder / "image.nii.gz"
