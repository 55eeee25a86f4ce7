"""A synthetic left proximal femur (shaft, neck, head) as a label map and CT, for the FE tests.

LPS mm on a 1.5 mm grid: the shaft is a vertical cylinder (radius 15 mm, 4 mm cortex of 1500 HU
around 250 HU cancellous bone) from z = -160 to z = 0; the neck runs from the shaft top medially
(-x: toward the patient's right, the midline, for a left femur) and up to the head, a sphere of
radius 22 mm centred at ``HEAD_CENTRE``. Optionally a cylindrical "implant" stem (label 2) along the
shaft axis from z = 0 down to z = -``stem_length``.
"""

from __future__ import annotations

import numpy as np

from surgtwin.core.types import Label, LabelMap, LabelTable, Volume

HEAD_CENTRE = np.array([-38.0, 0.0, 30.0])
HEAD_RADIUS = 22.0
SHAFT_RADIUS = 15.0
SPACING = 1.5


def _segment_distance(p, a, b):
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)


def femur(*, stem_length: float | None = None, stem_radius: float = 6.0, spacing: float = SPACING):
    """``(labels, ct)``: label 1 ``femur_left`` (and 2 ``implant`` when ``stem_length``)."""
    lo = np.array([-70.0, -30.0, -165.0])
    hi = np.array([25.0, 30.0, 60.0])
    shape = tuple(int(np.ceil(v)) + 1 for v in (hi - lo)[::-1] / spacing)  # (k: z, j: y, i: x)
    affine = np.eye(4)
    affine[:3, :3] = np.array([[0, 0, spacing], [0, spacing, 0], [spacing, 0, 0]], float)  # k->z, j->y, i->x
    affine[:3, 3] = lo
    k, j, i = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    p = np.stack([lo[0] + i * spacing, lo[1] + j * spacing, lo[2] + k * spacing], axis=-1)
    r_shaft = np.hypot(p[..., 0], p[..., 1])
    shaft = (r_shaft <= SHAFT_RADIUS) & (p[..., 2] >= -160.0) & (p[..., 2] <= 0.0)
    neck_a, neck_b = np.array([0.0, 0.0, -15.0]), HEAD_CENTRE
    neck = _segment_distance(p, neck_a, neck_b) <= 12.0
    head = np.linalg.norm(p - HEAD_CENTRE, axis=-1) <= HEAD_RADIUS
    bone = shaft | neck | head
    arr = np.zeros(shape, np.uint8)
    arr[bone] = 1
    from scipy.ndimage import distance_transform_edt

    depth = distance_transform_edt(bone, sampling=spacing)
    hu = np.where(bone, np.where(depth <= 4.0, 1500.0, 250.0), -50.0)
    names = [Label(1, "femur_left")]
    if stem_length is not None:
        stem = (r_shaft <= stem_radius) & (p[..., 2] <= 0.0) & (p[..., 2] >= -stem_length)
        arr[stem] = 2
        names.append(Label(2, "implant"))
    labels = LabelMap(arr, affine, labels=LabelTable(names))
    return labels, Volume(hu.astype(np.int16), affine, modality="CT")
