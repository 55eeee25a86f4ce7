"""Placement checks on synthetic anatomy with known answers: breach volume and depth, distance to a
canal, cortical/cancellous contact, the voxelised baseline, default specs, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.plan import implants
from surgtwin.core.plan.checks import CheckContext, CheckSpec, default_spec, gertzbein_robbins, region_around
from surgtwin.core.plan.pose import PlacedImplant, Pose
from surgtwin.core.plan.voxelise import sample_implant
from surgtwin.core.types import Label, LabelMap, LabelTable
from tests.core.plan.synthetic import CANAL_R, CANAL_X, HALF, SPACING, spine_block


@pytest.fixture(scope="module")
def block():
    return spine_block()


def screw_at(centre, x_mm, *, size="6.5x40", pid="1"):
    imp = implants.family("pedicle-screw").implant(size)
    return PlacedImplant(pid, "s", imp, Pose.from_axis(centre + [x_mm, 0.0, -20.0], [0, 0, 1]), {"vertebra": "L4"})


def ctx_for(lm, ct=None, **kw):
    spec = CheckSpec(("vertebrae",), (), {"spinal_canal": 2.0}, **kw)  # (the aorta left out here)
    return CheckContext(lm, spec, ct=ct)


def segment_volume_mm3(x_axis, p):
    """Volume of the analytic screw shank+tip beyond the plane x = HALF[0] (dense sampling)."""
    r, L, tip = p["diameter_mm"] / 2, p["length_mm"], p["tip_length_factor"] * p["diameter_mm"]
    h = 0.05
    x, y, z = np.meshgrid(np.arange(-r, r, h) + h / 2, np.arange(-r, r, h) + h / 2, np.arange(0, L, h) + h / 2,
                          indexing="ij")
    rad = np.where(z < L - tip, r, r * (L - z) / tip)
    inside = (np.hypot(x, y) <= rad) & (x + x_axis > HALF[0])
    return inside.sum() * h ** 3


def test_screw_inside_bone_has_no_breach_and_3mm_out_has_depth_3(block):
    lm, ct, centre = block
    ctx = ctx_for(lm, ct)
    screw = screw_at(centre, 8.0)
    s = sample_implant(screw.implant)
    r = ctx.check(screw, s)
    assert r.breach.volume_ml == 0 and r.breach.max_depth_mm == 0 and r.breach.grade == "A" and r.passed
    # shifted so its side stands 3 mm out of the block's +L face
    x = HALF[0] - 3.25 + 3.0
    out = ctx.check(screw_at(centre, x), s)
    voxel = max(SPACING)
    assert out.breach.max_depth_mm == pytest.approx(3.0, abs=voxel)
    assert out.breach.grade == "C" and not out.breach.passed and not out.passed
    expected = segment_volume_mm3(x, screw.implant.params) / 1000
    assert out.breach.volume_ml == pytest.approx(expected, rel=0.15)
    deepest = np.array(out.breach.deepest_lps)
    assert deepest[0] - centre[0] == pytest.approx(HALF[0] + 3.0, abs=voxel)  # where: on the +L side


def test_distance_to_the_canal(block):
    lm, ct, centre = block
    ctx = ctx_for(lm, ct)
    s = sample_implant(implants.family("pedicle-screw").implant("6.5x40"))
    for gap in (4.0, 1.0):  # between the canal and the head (radius 5.5 mm), the widest part
        r = ctx.check(screw_at(centre, CANAL_X + CANAL_R + gap + 5.5), s)
        (dc,) = r.distances
        assert dc.structure == "spinal_canal" and dc.margin_mm == 2.0
        assert dc.min_distance_mm == pytest.approx(gap, abs=max(SPACING))
        assert dc.passed == (gap >= 2.0) and dc.inside_ml == 0
    into = ctx.check(screw_at(centre, CANAL_X + 2.0), s)
    assert into.distances[0].min_distance_mm == 0 and into.distances[0].inside_ml > 0.2 and not into.passed


def test_contact_cortical_versus_cancellous(block):
    lm, ct, centre = block
    s = sample_implant(implants.family("pedicle-screw").implant("6.5x40"))
    for context in (ctx_for(lm, ct), ctx_for(lm)):  # by HU, and by the 2 mm shell rule
        mid = context.check(screw_at(centre, 8.0), s).contact.fractions
        assert mid["cancellous"] > 0.99 and mid["cortical"] < 0.01
        edge = context.check(screw_at(centre, HALF[0] - 3.25 - 0.3), s).contact.fractions
        assert 0.2 < edge["cortical"] < 0.6  # the side facing the cortex
    strict = ctx_for(lm, ct, min_cortical_fraction=0.3)
    assert not strict.check(screw_at(centre, 8.0), s).contact.passed


def test_voxelised_baseline_agrees(block):
    lm, ct, centre = block
    ctx = ctx_for(lm, ct)
    s = sample_implant(implants.family("pedicle-screw").implant("6.5x40"))
    screw = screw_at(centre, HALF[0] - 3.25 + 3.0)
    fast, slow = ctx.check(screw, s), ctx.check_voxelised(screw)
    assert slow.breach.volume_ml == pytest.approx(fast.breach.volume_ml, rel=0.2)
    assert slow.breach.max_depth_mm == pytest.approx(fast.breach.max_depth_mm, abs=max(SPACING))
    assert slow.distances[0].min_distance_mm == pytest.approx(fast.distances[0].min_distance_mm, abs=max(SPACING))


def test_results_are_json_and_tabulated(block):
    lm, ct, centre = block
    ctx = ctx_for(lm, ct)
    r = ctx.check(screw_at(centre, 8.0), sample_implant(implants.family("pedicle-screw").implant("6.5x40")))
    d = json.loads(json.dumps(r.to_json(), allow_nan=False))
    assert d["passed"] is True and d["breach"]["grade"] == "A" and d["distances"][0]["structure"] == "spinal_canal"
    names = [row[0] for row in r.rows()]
    assert names[:2] == ["breach depth", "breach volume"] and "distance to spinal_canal" in names
    assert [gertzbein_robbins(x) for x in (0, 1.9, 2, 5, 7)] == ["A", "B", "C", "D", "E"]


def test_outside_the_region_and_the_image(block):
    lm, ct, centre = block
    screw = screw_at(centre, 8.0)
    s = sample_implant(screw.implant)
    small = region_around(lm.shape, lm.affine, centre[None], 5.0)
    r = CheckContext(lm, ctx_for(lm).spec, region=small).check(screw, s)
    assert r.outside_region_ml > 0.5 and "outside the checked region" in r.warnings[0]
    far = PlacedImplant("9", "far", screw.implant, Pose.from_axis(centre + [0, 0, 500], [0, 0, 1]))
    rf = ctx_for(lm).check(far, s)
    assert rf.breach.volume_ml == 0 and rf.breach.outside_image_ml == pytest.approx(rf.breach.engaging_volume_ml)


def test_default_spec_names_bone_and_critical_structures():
    names = ["vertebrae", "spinal_canal", "aorta", "inferior_vena_cava", "iliac_artery_left", "vessels",
             "femur_left", "medullary_canal", "liver"]
    lm = LabelMap(np.zeros((2, 2, 2), np.uint8), np.eye(4),
                  labels=LabelTable([Label(n + 1, name) for n, name in enumerate(names)]))
    spine = default_spec(lm, {"vertebra": "L4", "side": "left"})
    assert spine.bone == ("vertebrae",) and spine.marrow == ("medullary_canal",)
    assert spine.critical_mm == {"spinal_canal": 2.0, "aorta": 3.0, "inferior_vena_cava": 3.0,
                                 "iliac_artery_left": 3.0, "vessels": 2.0}
    hip = default_spec(lm, {"femur": "left"}, critical_mm={"vessels": 5.0})
    assert hip.bone == ("femur_left",) and hip.critical_mm["vessels"] == 5.0
    assert set(default_spec(lm).bone) == {"vertebrae", "femur_left"}
    with pytest.raises(SurgtwinError, match="no bone structure 'femur_right'"):
        default_spec(lm, {"femur": "right"})
    assert CheckSpec.from_json(spine.to_json()) == spine
