"""The model path returns a label map on exactly the input grid, for any input orientation/spacing."""

from __future__ import annotations

import numpy as np
import pytest

from surgtwin.core.progress import Cancelled, CancelToken
from surgtwin.core.segmentation import load_bundle, segment
from surgtwin.core.segmentation.inference import model_grid, postprocess, to_source
from surgtwin.core.types import Volume
from tests.core.seg_helpers import ball_ct, make_tiny_bundle, oblique_affine


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_bundle(make_tiny_bundle(tmp_path_factory.mktemp("seg") / "tiny"))


@pytest.mark.parametrize("affine", [
    np.diag([2.0, 0.9, 0.9, 1.0]),
    oblique_affine(),
    np.array([[0, 0, -0.8, 10], [0, 1.1, 0, -5], [3.0, 0, 0, 40], [0, 0, 0, 1]], float),  # sagittal, flipped
])
def test_output_has_exactly_the_input_geometry(tiny, affine):
    vol = ball_ct(shape=(23, 57, 61), affine=affine)
    seen = []
    res = segment(vol, bundle=tiny, progress=lambda f, m: seen.append(f))
    assert res.labels.shape == vol.shape
    np.testing.assert_array_equal(res.labels.affine, vol.affine)
    assert res.labels.array.dtype == np.uint8
    assert set(np.unique(res.labels.array)) <= {0, 1, 2}
    assert seen and seen[-1] == 1.0 and all(b >= a for a, b in zip(seen, seen[1:], strict=False))


def test_model_grid_covers_oblique_input():
    vol = Volume(np.zeros((20, 30, 40), np.int16), oblique_affine())
    g = model_grid(vol, (3.0, 3.0, 3.0), "RAS")
    corners = np.array([[a, b, c] for a in (0, 19) for b in (0, 29) for c in (0, 39)], float)
    idx = g.world_to_index(vol.index_to_world(corners))
    assert np.all(idx > -0.51) and np.all(idx < np.asarray(g.shape) - 0.49)
    np.testing.assert_allclose(g.direction, np.diag([-1.0, -1.0, 1.0]), atol=1e-12)


def test_to_source_round_trip_of_a_ball():
    """A label drawn on the model grid comes back at the right place on an oblique, anisotropic grid."""
    import torch

    src = ball_ct(shape=(30, 70, 64), affine=oblique_affine(), radius_mm=18.0)
    g = model_grid(src, (3.0, 3.0, 3.0), "RAS")
    centre = src.index_to_world((np.asarray(src.shape) - 1) / 2.0)
    w = g.index_to_world(np.indices(g.shape).reshape(3, -1).T)
    d = np.linalg.norm(w - centre, axis=1).reshape(g.shape)
    p1 = torch.from_numpy(1.0 / (1.0 + np.exp((d - 18.0) / 1.5))).float()  # soft ball
    probs = torch.stack([1 - p1, p1])
    ch = (p1.numpy() > 0.5).astype(np.uint8)
    lab = to_source(ch, probs, g, src)
    truth = src.array > 0
    dice = 2 * np.sum((lab == 1) & truth) / (np.sum(lab == 1) + truth.sum())
    assert dice > 0.97, dice
    near = to_source(ch, probs, g, src, refine=False)
    dice_near = 2 * np.sum((near == 1) & truth) / (np.sum(near == 1) + truth.sum())
    assert dice >= dice_near  # trilinear refinement is not worse than nearest neighbour


def test_postprocess_keeps_one_component_and_fills_holes_but_not_other_structures():
    a = np.zeros((20, 20, 20), np.uint8)
    a[2:12, 2:12, 2:12] = 1
    a[5:8, 5:8, 5:8] = 0  # a hole
    a[6:8, 6:8, 6:8] = 2  # a structure inside (e.g. an 8-voxel tumour in the liver) stays
    a[15:18, 15:18, 15:18] = 1  # a stray island
    out = postprocess(a, ["bg", "liver", "tumour"], single_component=("liver",), fill_holes=("liver",))
    assert out[16, 16, 16] == 0
    assert out[5, 5, 5] == 1 and out[6, 6, 6] == 2


def test_postprocess_removes_a_structure_that_is_only_a_speck():
    a = np.zeros((20, 20, 20), np.uint8)
    a[2:12, 2:12, 2:12] = 1
    a[15, 15, 15:18] = 3  # 3 voxels of "skull" in an abdomen: not a finding
    out = postprocess(a, ["bg", "liver", "tumour", "skull"])
    assert not (out == 3).any() and (out == 1).sum() == 1000
    kept = postprocess(a, ["bg", "liver", "tumour", "skull"], min_voxels=3)
    assert (kept == 3).sum() == 3


def test_cancel(tiny):
    tok = CancelToken()
    tok.cancel()
    with pytest.raises(Cancelled):
        segment(ball_ct(), bundle=tiny, cancel=tok)


def test_single_component_keeps_a_structure_cut_in_two_by_the_field_of_view():
    a = np.zeros((30, 20, 20), np.uint8)
    a[2:12, 5:9, 5:9] = 1  # ascending aorta ...
    a[16:28, 11:15, 11:15] = 1  # ... and descending aorta, the arch outside the scan
    a[0:2, 0:2, 0:2] = 1  # a false-positive island (8 voxels, < 20 % of the largest piece)
    out = postprocess(a, ["bg", "aorta"], single_component=("aorta",), tubular=("aorta",))
    assert (out[2:12, 5:9, 5:9] == 1).all() and (out[16:28, 11:15, 11:15] == 1).all()
    assert not out[0:2, 0:2, 0:2].any()
    organ = postprocess(a, ["bg", "aorta"], single_component=("aorta",))  # a compact organ: one piece
    assert (organ[16:28, 11:15, 11:15] == 1).all() and not organ[2:12, 5:9, 5:9].any()


def _tube_case(lumen_hu):
    """A 2.5 mm-radius tube along the slice axis on a 1 mm source grid, and the 3 mm model grid's view."""
    from scipy import ndimage

    from surgtwin.core.segmentation.vessels import refine_contrast_vessels

    shape = (30, 48, 48)
    jj, ii = np.mgrid[0:48, 0:48]
    disc = (jj - 23.3) ** 2 + (ii - 24.6) ** 2 <= 2.5 ** 2
    truth = np.broadcast_to(disc, shape).copy()
    hu = np.where(truth, lumen_hu, 40.0).astype(np.float32)
    hu = ndimage.gaussian_filter(hu, 0.6).astype(np.int16)  # partial volume at the wall
    src_vol = Volume(hu, np.eye(4))
    grid = model_grid(src_vol, (3.0, 3.0, 3.0), "LPS")
    from surgtwin.core.geometry import resample_to

    coarse = (resample_to(src_vol.with_array(truth.astype(np.uint8)), grid, interpolation="linear").array > 0.4)
    ch_grid = coarse.astype(np.uint8)  # channel 1 = the vessel, as a 3 mm network would draw it
    src = to_source(ch_grid, None, grid, src_vol, refine=False)
    before = src.copy()
    after = refine_contrast_vessels(src, src_vol, grid, ch_grid, [1])
    return truth, before, after


def _d(a, b):
    return 2 * np.sum(a & b) / (a.sum() + b.sum())


def test_contrast_vessel_refinement_follows_the_lumen_below_the_model_voxel():
    truth, before, after = _tube_case(350.0)
    d0, d1 = _d(before == 1, truth), _d(after == 1, truth)
    assert d1 > d0 + 0.05 and d1 > 0.85, (d0, d1)


def test_contrast_vessel_refinement_leaves_a_non_contrast_scan_alone():
    truth, before, after = _tube_case(60.0)  # lumen 20 HU above the tissue: no contrast
    np.testing.assert_array_equal(before, after)


def _two_organ_case():
    """Two soft-tissue organs (60 and 160 HU) meeting between source columns 29 and 30 on a 1 mm grid.
    The 3 mm model voxels next to the boundary sit at columns 28 (organ a) and 31 (organ b), and the
    network is unsure at 31 (p_b 0.55): interpolated probabilities alone put column 30 in organ a."""
    import torch

    shape = (24, 24, 60)
    organ_b = np.broadcast_to(np.arange(shape[2]) >= 30, shape)
    rng = np.random.default_rng(0)
    hu = (np.where(organ_b, 160.0, 60.0) + rng.normal(0, 8, shape)).astype(np.int16)
    src = Volume(hu, np.eye(4))
    g = model_grid(src, (3.0, 3.0, 3.0), "LPS")
    m = np.linalg.inv(src.affine) @ g.affine  # model index -> source index
    pts = np.indices(g.shape).reshape(3, -1).T
    xs = np.round((pts @ m[:3, :3].T + m[:3, 3])[:, 2].reshape(g.shape), 3)  # source column of each
    assert 28.0 in xs and 31.0 in xs
    ch = np.where(xs >= 30, 2, 1).astype(np.uint8)
    p_b = np.where(ch == 2, np.where(xs == 31.0, 0.55, 0.9), 0.1)
    probs = torch.from_numpy(np.stack([np.full(g.shape, 1e-3), 1 - p_b, p_b - 1e-3])).float()
    return src, g, ch, probs, organ_b


def test_hu_weighted_refinement_moves_a_boundary_to_the_intensity_edge():
    src, g, ch, probs, organ_b = _two_organ_case()
    plain = to_source(ch, probs, g, src)
    weighted = to_source(ch, probs, g, src, hu_weight=0.6)
    err_plain = np.sum((plain == 2) != organ_b)
    err_weighted = np.sum((weighted == 2) != organ_b)
    assert err_weighted < 0.5 * err_plain, (err_plain, err_weighted)
    assert set(np.unique(weighted)) <= {1, 2}  # background (no voxels on the model grid) is never chosen


def test_hu_log_likelihood_of_an_absent_structure_is_prohibitive():
    from surgtwin.core.segmentation.inference import hu_log_likelihood

    hu = np.full((8, 8, 8), 40, np.int16)
    labels = np.ones((8, 8, 8), np.uint8)
    ll = hu_log_likelihood(hu, labels, np.zeros_like(labels), 3, step=1)
    assert ll.shape[1] == 3
    assert ll[:, 0].max() < -1000 and ll[:, 2].max() < -1000  # channels 0 and 2 have no voxels
    b40 = int((40 + 1024) // 8)
    assert ll[b40, 1] == ll[:, 1].max()  # channel 1's density peaks at its HU


def test_thin_vessel_grows_along_the_lumen_into_soft_tissue_but_not_bone():
    """The network saw the first 10 mm of a 60 mm contrast tube running through an organ (channel 2,
    40 HU); growth follows the lumen 12 mm further, taking the organ's bright voxels, and stops there.
    A bone (1200 HU) touching the tube is never taken."""
    from surgtwin.core.segmentation.vessels import refine_contrast_vessels

    shape = (60, 30, 30)  # 1 mm grid, the tube along axis 0
    jj, ii = np.mgrid[0:30, 0:30]
    disc = (jj - 14.5) ** 2 + (ii - 14.5) ** 2 <= 3.0 ** 2
    tube = np.broadcast_to(disc, shape).copy()
    bone = np.zeros(shape, bool)
    bone[:, 14:16, 18:22] = True
    bone &= ~tube
    hu = np.where(tube, 350.0, np.where(bone, 1200.0, 40.0)).astype(np.int16)
    src_vol = Volume(hu, np.eye(4))
    grid = model_grid(src_vol, (3.0, 3.0, 3.0), "LPS")
    m = np.linalg.inv(src_vol.affine) @ grid.affine
    pts = np.indices(grid.shape).reshape(3, -1).T
    q = (pts @ m[:3, :3].T + m[:3, 3]).reshape(*grid.shape, 3)  # source index of each model voxel
    seen = (q[..., 0] < 10) & ((q[..., 1] - 14.5) ** 2 + (q[..., 2] - 14.5) ** 2 <= 9.0)
    ch_grid = np.where(seen, 1, 2).astype(np.uint8)  # 1 = vessel, 2 = the organ around it
    src = to_source(ch_grid, None, grid, src_vol, refine=False)
    src[bone] = 3  # a bone structure
    out = refine_contrast_vessels(src.copy(), src_vol, grid, ch_grid, [1], grow_channels=[1], grow_mm=12.0)
    reach = np.nonzero((out == 1).any(axis=(1, 2)))[0].max()
    assert 18 <= reach <= 26, reach  # ~10 mm seen (+ one model voxel of band) + 12 mm grown
    assert not (out[bone] == 1).any()
    assert (out[:reach][tube[:reach]] == 1).mean() > 0.95
    none = refine_contrast_vessels(src.copy(), src_vol, grid, ch_grid, [1])
    assert np.nonzero((none == 1).any(axis=(1, 2)))[0].max() < reach


def test_lone_voxels_left_by_the_hu_refinement_take_their_neighbours_label():
    from surgtwin.core.segmentation.inference import _fill_isolated

    lab = np.ones((6, 6, 6), np.uint8)
    lab[2, 2, 2] = 2  # a speck
    lab[4, 4, 1] = 3  # a lone voxel of a thin vessel (kept)
    lab[1, 4, 4] = lab[1, 4, 3] = 2  # two voxels together: not a speck
    lab[0, 0, 0] = 0  # a one-voxel hole at the corner
    pts = np.argwhere(lab != 1).astype(np.int32)
    _fill_isolated(lab, pts, keep=(3,))
    assert lab[2, 2, 2] == 1 and lab[0, 0, 0] == 1
    assert lab[4, 4, 1] == 3 and lab[1, 4, 4] == 2 and lab[1, 4, 3] == 2


def test_a_bright_piece_enclosed_by_soft_tissue_becomes_the_vessel_one_touching_bone_does_not():
    from surgtwin.core.segmentation.vessels import _enclosed_bright

    lab = np.full((20, 20, 20), 2, np.uint8)  # a soft structure (e.g. brain), 30 HU
    hu = np.full(lab.shape, 30, np.int16)
    hu[5:7, 5:7, 3:12] = 300  # a vessel segment the network missed (36 voxels)
    lab[14:18, 14:18, 14:18] = 3  # bone
    hu[14:18, 14:18, 14:18] = 1000
    hu[12:14, 15, 15] = 300  # partial volume next to the bone (2 voxels, touches it)
    hu[15:17, 3:5, 3:11] = 300  # another piece, touching nothing but structure 2 (32 voxels)
    hu[10, 10, 10] = 300  # a one-voxel bright speck: too small
    # vessel channels above every label present (channel 29 here) must not break it
    _enclosed_bright(lab, hu, 1, takeable=[2], vch=[1, 29], lo=160.0, hi=600.0, min_voxels=5)
    assert (lab[5:7, 5:7, 3:12] == 1).all() and (lab[15:17, 3:5, 3:11] == 1).all()
    assert (lab[12:14, 15, 15] == 2).all() and lab[10, 10, 10] == 2
    assert (lab[14:18, 14:18, 14:18] == 3).all()
