"""Placement helpers on synthetic anatomy with known axes: the femoral canal axis, the femoral
head, the stem's start pose."""

from __future__ import annotations

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.plan import implants
from surgtwin.core.plan.anatomy import fit_axis, inside_along, propose_pose
from surgtwin.core.plan.femur import canal_axis, femoral_head, propose_stem_pose
from surgtwin.core.plan.generators import stem_head_centre
from surgtwin.core.types import Label, LabelMap, LabelTable


def unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


# the femur's shaft runs distally 8 degrees toward the midline (-L for a left femur) and 3 toward P
AXIS = unit([-np.tan(np.radians(8)), np.tan(np.radians(3)), -1.0])
TOP = np.array([120.0, 0.0, -20.0])  # the shaft's proximal end (greater trochanter region)
HEAD = np.array([82.0, -5.0, 10.0])
HEAD_R = 22.0


def seg_dist(p, a, b):
    ab = b - a
    t = np.clip((p - a) @ ab / (ab @ ab), 0, 1)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)


@pytest.fixture(scope="module")
def femur():
    spacing = np.array([2.0, 0.9, 0.9])  # slices S, rows P, columns L
    shape = (140, 110, 120)
    a = np.eye(4)
    a[:3, :3] = np.column_stack([[0, 0, spacing[0]], [0, spacing[1], 0], [spacing[2], 0, 0]])
    a[:3, 3] = [40.0, -50.0, -240.0]
    lm = LabelMap(np.zeros(shape, np.uint8), a,
                  labels=LabelTable([Label(24, "femur_left"), Label(26, "medullary_canal")]))
    p = lm.index_to_world(np.argwhere(np.ones(shape, bool))).reshape(*shape, 3)
    bottom = TOP + 240.0 * AXIS
    shaft = seg_dist(p, TOP, bottom) < 15.0
    neck = seg_dist(p, TOP + 15 * AXIS, HEAD) < 12.0
    head = np.linalg.norm(p - HEAD, axis=-1) < HEAD_R
    canal = seg_dist(p, TOP + 70 * AXIS, bottom) < 6.0
    arr = lm.array
    arr[shaft | neck | head] = 24
    arr[canal] = 26
    return lm


def test_fit_axis_of_points_on_a_line():
    t = np.linspace(-50, 50, 200)
    pts = np.outer(t, AXIS) + [1, 2, 3] + np.random.default_rng(0).normal(0, 0.1, (200, 3))
    ax = fit_axis(pts, toward=[0, 0, -1])
    assert np.degrees(np.arccos(ax.direction_lps @ AXIS)) < 0.5 and ax.rms_mm < 0.2


def test_canal_axis_of_a_tilted_canal_within_2_degrees(femur):
    axis, warnings = canal_axis(femur, "left")
    assert warnings == []
    assert np.degrees(np.arccos(np.clip(axis.direction_lps @ AXIS, -1, 1))) < 2.0
    assert np.linalg.norm(np.cross(axis.point_lps - TOP, AXIS)) < 1.0  # the fitted line is the true one


def test_femoral_head_centre_and_radius(femur):
    axis, _ = canal_axis(femur, "left")
    centre, radius = femoral_head(femur, "left", axis)
    assert np.linalg.norm(centre - HEAD) < 2.0 and radius == pytest.approx(HEAD_R, abs=2.0)


def test_stem_pose_keeps_the_head_height_and_turns_the_neck_to_the_head(femur):
    stem = implants.family("hip-stem").implant("3")
    prop = propose_pose(femur, stem, {"femur": "left"})
    axis, _ = canal_axis(femur, "left")
    d = axis.direction_lps
    np.testing.assert_allclose(prop.pose.axis_lps, d, atol=1e-9)
    head_world = prop.pose.apply(stem_head_centre(stem.params))
    native = np.array(prop.notes["head_centre_lps"])
    assert (head_world - native) @ d == pytest.approx(0.0, abs=0.05)  # leg length kept
    perp = lambda v: unit(v - (v @ d) * d)  # noqa: E731
    assert perp(head_world - axis.point_lps) @ perp(native - axis.point_lps) > np.cos(np.radians(1))
    assert prop.notes["offset_change_mm"] == pytest.approx(stem.params["offset_mm"] - prop.notes["native_offset_mm"])
    assert prop.target == {"femur": "left"}
    entry = np.array(prop.notes["entry_point_lps"])
    assert entry[2] > TOP[2] - 5  # the canal axis leaves the femur proximally at the shaft's top


def test_without_a_canal_label_the_shaft_is_used(femur):
    arr = np.where(femur.array == 26, 24, femur.array).astype(np.uint8)
    lm = LabelMap(arr, femur.affine, labels=LabelTable([Label(24, "femur_left")]))
    axis, warnings = canal_axis(lm, "left")
    assert "no medullary_canal" in warnings[0]
    assert np.degrees(np.arccos(abs(axis.direction_lps @ AXIS))) < 4.0


def test_helpers_refuse_wrong_inputs(femur):
    screw = implants.family("pedicle-screw").implant("6.5x45")
    with pytest.raises(SurgtwinError, match="for hip stems"):
        propose_stem_pose(femur, screw, "left")
    with pytest.raises(SurgtwinError, match="no structure 'femur_right'"):
        canal_axis(femur, "right")
    with pytest.raises(SurgtwinError, match="'left' or 'right'"):
        canal_axis(femur, "up")
    with pytest.raises(SurgtwinError, match="needs a target"):
        propose_pose(femur, screw, {})
    with pytest.raises(SurgtwinError, match="no structure 'vertebrae'"):
        propose_pose(femur, screw, {"vertebra": "L4", "side": "left"})


def test_inside_along_bridges_small_gaps():
    mask = np.zeros((1, 1, 40), bool)
    mask[0, 0, :10] = mask[0, 0, 12:20] = True
    aff = np.eye(4)
    assert inside_along(mask, aff, [0, 0, 0], [0, 0, 1], max_mm=40, gap_mm=2.5) == pytest.approx(19.0)
    assert inside_along(mask, aff, [0, 0, 0], [0, 0, 1], max_mm=40, gap_mm=1.0) == pytest.approx(9.0)  # 9.5 mm is voxel 10
    assert inside_along(mask, aff, [0, 0, 30], [0, 0, 1], max_mm=5) == 0.0
