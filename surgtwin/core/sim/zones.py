"""Zones of bone for stress-shielding tables: Gruen zones around a femoral stem, thirds along an axis.

**Gruen zones** (``gruen_zones``), after Gruen, McNeice and Amstutz, Clin Orthop 141 (1979) 17-27,
as a geometric rule on element centroids. With the stem axis from its top ``top`` (the neck-resection
level on the axis, the stem's local origin) to its tip ``tip`` (length L), ``t = (c - top) . axis / L``
and ``s = (c - top) . lateral`` (``lateral``: the direction away from the neck, perpendicular to the axis):

* lateral side (s >= 0): zone 1 for t < 1/3 (including the greater trochanter above the resection),
  zone 2 for 1/3 <= t < 2/3, zone 3 for 2/3 <= t < 1;
* zone 4: 1 <= t <= 4/3 (the bone around and below the tip, a third of the stem length down);
* medial side (s < 0): zone 7 for t < 1/3 (the calcar), zone 6 for 1/3 <= t < 2/3, zone 5 for
  2/3 <= t < 1;
* zone 0 (in no zone): bone more than a third of the stem length below the tip, more than
  ``proximal_limit`` x L above the resection level, and elements flagged ``exclude`` (the implant
  itself, bone resected with the femoral head).

**Thirds** (``axial_thirds``): zone 1 (first third from ``start``), 2, 3 along an axis between two
points, 0 outside; for a vertebra along the superior axis (inferior, middle, superior third), for a
screw along its axis from the head (bone within ``radius_mm`` of the screw only).
"""

from __future__ import annotations

import numpy as np

from surgtwin.core.errors import SurgtwinError

GRUEN_NAMES = {1: "1 lateral proximal", 2: "2 lateral middle", 3: "3 lateral distal", 4: "4 tip",
               5: "5 medial distal", 6: "6 medial middle", 7: "7 medial proximal (calcar)"}
THIRDS_NAMES = {1: "first third", 2: "middle third", 3: "last third"}
VERTEBRA_NAMES = {1: "inferior third", 2: "middle third", 3: "superior third"}
SCREW_NAMES = {1: "head third", 2: "middle third", 3: "tip third"}


def _axis(start, end) -> tuple[np.ndarray, np.ndarray, float]:
    a, b = np.asarray(start, float).reshape(3), np.asarray(end, float).reshape(3)
    length = float(np.linalg.norm(b - a))
    if not np.isfinite(length) or length < 1e-6:
        raise SurgtwinError("the zone axis needs two distinct points")
    return a, (b - a) / length, length


def gruen_zones(centroids: np.ndarray, top_lps, tip_lps, lateral_lps, *, exclude=None,
                proximal_limit: float = 0.5) -> np.ndarray:
    """(M,) Gruen zone 1..7 of each centroid, 0 for none (see the module text)."""
    top, axis, length = _axis(top_lps, tip_lps)
    lat = np.asarray(lateral_lps, float).reshape(3)
    lat = lat - np.dot(lat, axis) * axis
    if np.linalg.norm(lat) < 1e-9:
        raise SurgtwinError("the lateral direction must not be parallel to the stem axis")
    lat /= np.linalg.norm(lat)
    rel = np.asarray(centroids, float) - top
    t = rel @ axis / length
    s = rel @ lat
    third = np.clip(np.floor(t * 3.0), 0, 2).astype(np.int64)  # 0, 1, 2 for t < 1 (t < 0 -> 0)
    zones = np.where(s >= 0, 1 + third, 7 - third)
    zones = np.where(t >= 1.0, 4, zones)
    zones = np.where((t > 4.0 / 3.0) | (t < -proximal_limit), 0, zones)
    if exclude is not None:
        zones = np.where(np.asarray(exclude, bool), 0, zones)
    return zones.astype(np.int8)


def axial_thirds(centroids: np.ndarray, start_lps, end_lps, *, radius_mm: float | None = None,
                 exclude=None) -> np.ndarray:
    """(M,) zone 1, 2, 3 by thirds of the segment ``start -> end`` (0 outside it, or farther than
    ``radius_mm`` from the axis when given)."""
    a, axis, length = _axis(start_lps, end_lps)
    rel = np.asarray(centroids, float) - a
    t = rel @ axis / length
    zones = (1 + np.clip(np.floor(t * 3.0), 0, 2)).astype(np.int64)
    out = (t < 0) | (t > 1)
    if radius_mm is not None:
        out |= np.linalg.norm(rel - np.outer(t * length, axis), axis=1) > radius_mm
    if exclude is not None:
        out |= np.asarray(exclude, bool)
    return np.where(out, 0, zones).astype(np.int8)


def principal_extent(points: np.ndarray, direction=None) -> tuple[np.ndarray, np.ndarray]:
    """``(start, end)``: the extreme points of ``points`` projected on their principal axis (or on
    ``direction``), on the axis through their centroid; ``start`` is the lower end along ``direction``."""
    p = np.asarray(points, float)
    c = p.mean(axis=0)
    if direction is None:
        _, _, vt = np.linalg.svd(p - c, full_matrices=False)
        d = vt[0]
    else:
        d = np.asarray(direction, float) / np.linalg.norm(direction)
    t = (p - c) @ d
    return c + t.min() * d, c + t.max() * d
