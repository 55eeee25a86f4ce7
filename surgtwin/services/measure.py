"""Structure statistics: voxel count, volume and intensity per label (no Qt). Point measurements
are ``surgtwin.core.measure``."""

from __future__ import annotations

import numpy as np

from surgtwin.core.progress import check, report


def structure_stats(labelmap, volume, *, progress=None, cancel=None) -> dict[int, dict]:
    """Per label value: voxel count, volume (ml), mean and std of the image (HU for CT)."""
    report(progress, 0.05, "counting voxels")
    lab = labelmap.array.ravel()
    n = int(lab.max(initial=0)) + 1
    counts = np.bincount(lab, minlength=n)
    check(cancel)
    report(progress, 0.35, "summing intensities")
    img = volume.array.ravel().astype(np.float64)
    sums = np.bincount(lab, weights=img, minlength=n)
    check(cancel)
    report(progress, 0.7, "intensity spread")
    sq = np.bincount(lab, weights=img * img, minlength=n)
    out = {}
    for lb in labelmap.labels:
        c = int(counts[lb.value]) if lb.value < n else 0
        mean = float(sums[lb.value] / c) if c else float("nan")
        std = float(np.sqrt(max(0.0, sq[lb.value] / c - mean * mean))) if c else float("nan")
        out[lb.value] = {"name": lb.name, "voxels": c, "volume_ml": c * labelmap.voxel_volume_ml,
                         "mean_hu": mean, "std_hu": std}
    report(progress, 1.0, "statistics ready")
    return out
