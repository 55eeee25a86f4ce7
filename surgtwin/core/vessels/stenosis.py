"""Stenoses along a centerline: local radius minima well below the healthy vessel around them.

For a branch's clean cross-sections (radius ``r`` at arclength ``s``) the local healthy level is
a running upper quantile (80th percentile over a window of ``max(6 r_median, 30 mm)``). A run of
points narrower than ``1 - min_percent/100`` of it is a candidate; its throat is the smallest
radius. The narrowing's extent is where it is narrower than 95 % of that level; a straight line
through the healthy sections proximal and distal to it (up to ``3 max(2 r, 10 mm)`` on each side,
beyond a guard band of half the extent; sections 10 % below the line dropped once), evaluated at
the throat, is the reference radius, so a tapering vessel is compared with its own calibre at
that place. A side with too few clean sections (the narrowing near a junction or an end) is left
out and the line through the other side is extended to the throat (within +-20 % of its median). Percent diameter stenosis is
``100 (1 - d_min / d_ref)``; the length is the full width at half of the peak narrowing.
"""

from __future__ import annotations

import numpy as np

from surgtwin.core.vessels.graph import Branch, StenosisFinding

DEFAULT_MIN_PERCENT = 25.0
"""Narrowings of less diameter than this (percent) are not reported."""


def find_stenoses(branch: Branch, *, min_percent: float = DEFAULT_MIN_PERCENT) -> list[StenosisFinding]:
    """The stenoses of ``branch`` (uses only its clean cross-sections)."""
    from scipy.ndimage import percentile_filter

    idx = np.flatnonzero(branch.valid)
    if idx.size < 5:
        return []
    s_all = branch.arclength_mm
    s, r = s_all[idx], branch.radius_mm[idx]
    rmed = float(np.median(r))
    if s[-1] - s[0] < 3.0 * rmed:
        return []
    step = max(float(np.median(np.diff(s))), 1e-6)
    window = max(6.0 * rmed, 30.0)
    size = max(3, int(round(window / step)) | 1)
    level = percentile_filter(r, 80, size=size, mode="nearest")
    ratio = r / level
    cut = 1.0 - min_percent / 100.0
    below = ratio < cut
    found: list[StenosisFinding] = []
    i = 0
    while i < len(r):
        if not below[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(r) and below[j + 1]:
            j += 1
        throat = i + int(np.argmin(r[i:j + 1]))
        i = j + 1
        lo = throat
        while lo > 0 and ratio[lo - 1] < 0.95:
            lo -= 1
        hi = throat
        while hi + 1 < len(r) and ratio[hi + 1] < 0.95:
            hi += 1
        ref_here = float(level[throat])
        r_ref = _reference(s, r, lo, hi, throat, ref_here, step)
        rmin = float(r[throat])
        if r_ref <= 0 or rmin >= r_ref * cut:
            continue
        peak = 1.0 - rmin / r_ref
        half = (1.0 - r[lo:hi + 1] / r_ref) >= 0.5 * peak
        where = np.flatnonzero(half) + lo
        length = float(s[where[-1]] - s[where[0]]) + step if where.size else step
        p = int(idx[throat])
        found.append(StenosisFinding(branch.index, p, branch.points_lps[p].copy(), float(s_all[p]),
                                     2.0 * rmin, 2.0 * r_ref, length))
    return found


def _reference(s, r, lo, hi, throat, ref_here, step) -> float:
    """Healthy radius at the throat: a line through the healthy sections on both sides."""
    win = max(2.0 * ref_here, 10.0)
    guard = 0.5 * max(s[throat] - s[lo], s[hi] - s[throat], step)
    span = 3.0 * win
    prox = (s >= s[lo] - guard - span) & (s < s[lo] - guard)
    dist = (s > s[hi] + guard) & (s <= s[hi] + guard + span)
    enough = 0.4 * win / step
    use = np.zeros_like(prox)
    for w in (prox, dist):
        if w.sum() >= enough:
            use |= w
    if not use.any():
        return ref_here
    ss, rr = s[use], r[use]
    if np.ptp(ss) < 2.0 * step:
        return float(np.median(rr))
    for _ in range(2):  # one pass dropping sections well below the line (another narrowing)
        b, a = np.polyfit(ss, rr, 1)
        keep = rr >= 0.9 * (a + b * ss)
        if keep.all() or keep.sum() < 3:
            break
        ss, rr = ss[keep], rr[keep]
    est = float(a + b * s[throat])
    near = float(np.median(rr))
    return float(np.clip(est, 0.8 * near, 1.2 * near))
