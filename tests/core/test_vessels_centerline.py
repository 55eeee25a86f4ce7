"""Centerlines on synthetic masks with known geometry: a straight tube, a Y bifurcation, a spur,
holes, a disconnected mask, a designed stenosis on a 1.5 x 1.5 x 3 mm grid; graph arrays."""

from __future__ import annotations

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.vessels import CenterlineGraph, extract_centerlines

SPACING = (3.0, 1.5, 1.5)  # slice, row, column (mm)


def grid(shape, spacing=SPACING):
    aff = np.eye(4)
    aff[:3, :3] = np.diag(spacing)
    k, j, i = np.indices(shape).astype(float)
    return aff, np.stack([k * spacing[0], j * spacing[1], i * spacing[2]], -1)


def tube(pts, a, b, radius_fn):
    """Voxels within radius_fn(t) of the segment a-b (t along it in [0, 1]): rounded ends, so the
    centerline (which runs to the mask's surface) is the segment plus one radius at each free end."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = b - a
    t = np.clip(((pts - a) @ d) / (d @ d), 0, 1)
    dist = np.linalg.norm(pts - (a + t[..., None] * d), axis=-1)
    return dist <= radius_fn(t)


def test_straight_tube_length_and_radius():
    aff, pts = grid((60, 40, 40))
    m = tube(pts, (15, 30, 30), (165, 30, 30), lambda t: 6.0 + 0 * t)
    g = extract_centerlines(m, aff)
    assert len(g.branches) == 1 and not g.stenoses
    b = g.branches[0]
    assert b.length_mm == pytest.approx(150.0 + 2 * 6.0, rel=0.03)
    assert b.mean_radius_mm == pytest.approx(6.0, rel=0.05)
    assert np.all(np.abs(b.points_lps[:, 1:] - 30.0) < 0.8)  # on the axis


def test_y_bifurcation_branches_lengths_radii():
    aff, pts = grid((70, 60, 80))
    top, fork = np.array([10, 45, 60]), np.array([100, 45, 60])
    left, right = np.array([200, 45, 20]), np.array([200, 45, 100])
    m = (tube(pts, top, fork, lambda t: 8.0 + 0 * t) | tube(pts, fork, left, lambda t: 5.0 + 0 * t)
         | tube(pts, fork, right, lambda t: 5.0 + 0 * t))
    g = extract_centerlines(m, aff)
    assert len(g.branches) == 3
    root = g.branches[0]
    assert root.parent == -1 and np.linalg.norm(root.points_lps[0] - top) < 8 + 1.5
    assert root.mean_radius_mm == pytest.approx(8.0, rel=0.08)
    kids = [b for b in g.branches if b.parent == 0]
    assert len(kids) == 2
    for k in kids:
        assert k.mean_radius_mm == pytest.approx(5.0, rel=0.1)
        assert k.length_mm == pytest.approx(np.linalg.norm(left - fork) + 5.0, rel=0.08)
    assert root.length_mm == pytest.approx(90.0 + 8.0, rel=0.08)
    assert sorted(g.node_degree.tolist()) == [1, 1, 1, 3]


def test_spur_is_removed():
    aff, pts = grid((60, 50, 50))
    m = tube(pts, (15, 37, 37), (165, 37, 37), lambda t: 7.0 + 0 * t)
    m |= tube(pts, (90, 37, 37), (90, 37, 49), lambda t: 2.0 + 0 * t)  # a short bump on the wall
    g = extract_centerlines(m, aff)
    assert len(g.branches) == 1


def test_holes_are_tolerated():
    aff, pts = grid((60, 40, 40))
    m = tube(pts, (15, 30, 30), (165, 30, 30), lambda t: 6.0 + 0 * t)
    rng = np.random.default_rng(0)
    inner = np.argwhere(tube(pts, (30, 30, 30), (150, 30, 30), lambda t: 3.0 + 0 * t))
    for k in rng.choice(len(inner), 40, replace=False):
        m[tuple(inner[k])] = False
    g = extract_centerlines(m, aff)
    assert len(g.branches) == 1 and g.branches[0].length_mm == pytest.approx(162.0, rel=0.03)


def test_disconnected_mask_names_the_pieces():
    aff, pts = grid((60, 40, 40))
    m = tube(pts, (15, 30, 30), (80, 30, 30), lambda t: 6.0 + 0 * t)
    m |= tube(pts, (110, 30, 30), (165, 30, 30), lambda t: 4.0 + 0 * t)
    with pytest.raises(SurgtwinError, match=r"2 disconnected pieces \(\d+\.\d\d ml, \d+\.\d\d ml\)"):
        extract_centerlines(m, aff)
    g = extract_centerlines(m, aff, components="largest")
    assert len(g.branches) == 1 and g.branches[0].length_mm == pytest.approx(65.0 + 12.0, rel=0.05)
    assert any("largest" in w for w in g.warnings)


def test_empty_mask_is_refused():
    aff, _ = grid((10, 10, 10))
    with pytest.raises(SurgtwinError, match="empty"):
        extract_centerlines(np.zeros((10, 10, 10), bool), aff)


@pytest.mark.parametrize("percent", [50.0, 70.0])
def test_stenosis_on_anisotropic_grid(percent):
    """A Gaussian narrowing (sigma 7 mm) of a 10 mm tapering tube, 1.5 x 1.5 x 3 mm voxels."""
    aff, pts = grid((80, 40, 40))
    a, b = np.array([10, 30, 30]), np.array([230, 30, 30])
    length = 220.0

    def radius(t):
        ref = 10.5 - 1.0 * t
        return ref * (1 - percent / 100 * np.exp(-0.5 * ((t - 0.55) * length / 7.0) ** 2))

    g = extract_centerlines(tube(pts, a, b, radius), aff)
    assert len(g.stenoses) == 1
    s = g.stenoses[0]
    assert s.diameter_percent == pytest.approx(percent, abs=5.0)
    assert s.reference_diameter_mm == pytest.approx(2 * (10.5 - 0.55), rel=0.06)
    assert abs(s.position_lps[0] - (10 + 0.55 * length)) < 4.0
    assert 8.0 < s.length_mm < 30.0


def test_graph_round_trips_through_arrays():
    aff, pts = grid((70, 60, 80))
    fork = np.array([100, 45, 60])
    m = (tube(pts, (10, 45, 60), fork, lambda t: 8.0 * (1 - 0.5 * np.exp(-0.5 * ((t - 0.5) * 90 / 6) ** 2)))
         | tube(pts, fork, (200, 45, 20), lambda t: 5.0 + 0 * t) | tube(pts, fork, (200, 45, 100), lambda t: 5.0 + 0 * t))
    g = extract_centerlines(m, aff)
    arrays = g.to_arrays()
    assert all(a.dtype.kind in "biuf" for a in arrays.values())
    back = CenterlineGraph.from_arrays(arrays)
    assert back.to_arrays().keys() == arrays.keys()
    for k, v in arrays.items():
        np.testing.assert_array_equal(back.to_arrays()[k], v)
    assert len(back.stenoses) == len(g.stenoses) >= 1
    with pytest.raises(SurgtwinError, match="missing"):
        CenterlineGraph.from_arrays({"points_lps": arrays["points_lps"]})
