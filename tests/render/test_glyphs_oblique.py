"""Display geometry (tubes, slabs, markers) and the double-oblique reslice."""

import numpy as np
import pytest

from surgtwin.render import glyphs
from surgtwin.render import slices as S


def _closed_volume(verts, faces) -> float:
    v = verts[faces]
    return float(np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6.0)


def _edges_shared_twice(faces) -> bool:
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    return bool(np.all(counts == 2))


def test_open_tube_is_closed_and_has_the_cylinder_volume():
    pts = np.c_[np.zeros(21), np.zeros(21), np.linspace(0, 40, 21)]
    verts, faces, fp = glyphs.tube(pts, 5.0, sides=64)
    assert _edges_shared_twice(faces)
    vol = _closed_volume(verts, faces)
    # a 64-gon prism: area 0.5 n r^2 sin(2 pi / n)
    assert vol == pytest.approx(0.5 * 64 * 25 * np.sin(2 * np.pi / 64) * 40, rel=1e-6)
    assert fp.min() == 0 and fp.max() == len(pts) - 2 and len(fp) == len(faces)


def test_tube_radius_profile_and_bent_path():
    t = np.linspace(0, np.pi, 40)
    pts = np.c_[30 * np.cos(t), 30 * np.sin(t), np.zeros_like(t)]
    radii = np.linspace(2, 4, 40)
    verts, faces, _ = glyphs.tube(pts, radii, sides=12)
    ring = verts[: 40 * 12].reshape(40, 12, 3)
    dist = np.linalg.norm(ring - pts[:, None, :], axis=2)
    assert np.allclose(dist, radii[:, None])
    # each ring is perpendicular to the path's tangent (no twist or tilt)
    tan = np.gradient(pts, axis=0)
    tan /= np.linalg.norm(tan, axis=1, keepdims=True)
    assert np.abs(np.einsum("nsk,nk->ns", ring - pts[:, None, :], tan)).max() < 1e-6
    closed_v, closed_f, _ = glyphs.tube(pts, 1.0, closed=True)
    assert _edges_shared_twice(closed_f)


def test_slab_and_sphere_are_closed():
    a = np.linspace(0, 2 * np.pi, 50, endpoint=False)
    contour = np.c_[10 * np.cos(a), 10 * np.sin(a), np.zeros_like(a)]
    v, f = glyphs.slab(contour, (0, 0, 1), thickness_mm=2.0)
    assert _edges_shared_twice(f)
    assert abs(_closed_volume(v, f)) == pytest.approx(0.5 * 50 * 100 * np.sin(2 * np.pi / 50) * 2.0, rel=1e-9)
    v, f = glyphs.sphere((1, 2, 3), 2.0)
    assert _edges_shared_twice(f)
    assert np.allclose(np.linalg.norm(v - [1, 2, 3], axis=1), 2.0)


def test_oblique_reslice_samples_the_plane():
    # a volume whose value is its L coordinate in mm (grid 1 x 1 x 2 mm, origin (-20, -20, -20))
    k, j, i = np.mgrid[0:21, 0:41, 0:41]
    aff = np.array([[0, 0, 1.0, -20], [0, 1.0, 0, -20], [2.0, 0, 0, -20], [0, 0, 0, 1]])
    vol = (i * 1.0 - 20).astype(np.float32)
    u = np.array([1.0, 1.0, 0.0]) / np.sqrt(2)
    v = np.array([0.0, 0.0, 1.0])
    img = S.oblique(vol, aff, (0, 0, 0), u, v, half_size_mm=10, spacing_mm=0.5)
    assert img.shape == (41, 41)
    cols = (np.arange(41) * 0.5 - 10) / np.sqrt(2)  # L of each column
    assert np.allclose(img, cols[None, :], atol=1e-4)
    rc = S.oblique_pixel((0, 0, 0), u, v, [[np.sqrt(2), np.sqrt(2), 3.0]], half_size_mm=10, spacing_mm=0.5)
    assert np.allclose(rc, [[26.0, 24.0]])
    # outside the volume: the fill value
    far = S.oblique(vol, aff, (0, 0, 100), u, v, half_size_mm=2, spacing_mm=1.0)
    assert np.all(far == -1024)
