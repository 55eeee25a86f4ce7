"""Automatic placement on the abdomen-pelvis sample case (synthetic patient, real DICOM files): a hip
stem in the left femur, pedicle screws in L4, the spine's levels, and the live-check timing."""

from __future__ import annotations

import time

import numpy as np
import pytest

from surgtwin.core.plan import implants
from surgtwin.core.plan.anatomy import propose_pose
from surgtwin.core.plan.checks import CheckContext, default_spec, region_around
from surgtwin.core.plan.pose import PlacedImplant
from surgtwin.core.plan.spine import vertebra_levels
from surgtwin.core.plan.voxelise import sample_implant, voxelise

pytestmark = pytest.mark.slow

#: stated bounds for the automatic stem: breach volume and depth (its bed is femur + medullary canal)
STEM_MAX_BREACH_ML = 0.05
STEM_MAX_BREACH_DEPTH_MM = 1.0
#: live checks: median per pose
MAX_CHECK_MS = 50.0


@pytest.fixture(scope="module")
def sample():
    from surgtwin import resources
    from surgtwin.services import pipeline

    folder = resources.sample_root() / "abdomen-pelvis"
    if not (folder / "dicom").is_dir():
        pytest.skip("the abdomen-pelvis sample case is not installed")
    case = pipeline.new_case(folder)
    return case.labels, case.volume


def place(labels, ct, family, size, target):
    imp = implants.family(family).implant(size)
    prop = propose_pose(labels, imp, target)
    placed = PlacedImplant("1", f"{family} {size}", imp, prop.pose, prop.target, "auto")
    spec = default_spec(labels, prop.target)
    ctx = CheckContext(labels, spec, ct=ct, region=region_around(labels.shape, labels.affine,
                                                                 placed.world_mesh().vertices, 40.0))
    samples = sample_implant(imp)
    return placed, prop, ctx, samples, ctx.check(placed, samples)


def test_spine_levels_named_from_l5(sample):
    labels, _ = sample
    spine = vertebra_levels(labels)
    assert spine.names() == ["L5", "L4", "L3", "L2", "L1", "T12", "T11"]
    assert [lv.partial for lv in spine.levels] == [False] * 6 + [True]  # T11 is cut by the top of the scan
    assert all(70 < lv.volume_ml < 90 for lv in spine.levels[:6])
    assert "lowest vertebra in the image is L5" in spine.assumption
    heights = [lv.centroid_lps[2] for lv in spine.levels]
    assert heights == sorted(heights) and 35 < np.mean(np.diff(heights[:6])) < 45  # ~37 mm apart


def test_auto_hip_stem_sits_in_the_left_femur(sample):
    labels, ct = sample
    placed, prop, ctx, samples, r = place(labels, ct, "hip-stem", "1", {"femur": "left"})
    print("\nstem:", prop.notes, r.rows())
    assert 5 < prop.notes["axis_tilt_from_inferior_deg"] < 10
    assert 35 < prop.notes["native_offset_mm"] < 48 and 20 < prop.notes["head_radius_mm"] < 28
    assert r.breach.volume_ml <= STEM_MAX_BREACH_ML and r.breach.max_depth_mm <= STEM_MAX_BREACH_DEPTH_MM
    # independent of the checks: the voxelised stem below the resection lies in femur_left + canal
    mask = voxelise(placed, labels)
    local = placed.pose.inverse().apply(labels.index_to_world(np.argwhere(mask)))
    below = mask.copy()
    below[mask] = local[:, 2] >= 0
    bed = labels.mask("femur_left") | labels.mask("medullary_canal")
    assert (below & bed).sum() / below.sum() > 0.98
    assert r.passed


@pytest.mark.parametrize("side", ["left", "right"])
def test_auto_pedicle_screw_in_l4(sample, side):
    labels, ct = sample
    placed, prop, ctx, samples, r = place(labels, ct, "pedicle-screw", "6.5x45", {"vertebra": "L4", "side": side})
    n = prop.notes
    print(f"\nL4 {side}: width {n['pedicle_width_mm']} mm, medial {n['medial_angle_deg']} deg, "
          f"chord {n['bone_chord_mm']} mm, breach {r.breach.max_depth_mm:.2f} mm / {r.breach.volume_ml:.3f} ml "
          f"(grade {r.breach.grade}), canal {[d.min_distance_mm for d in r.distances if d.structure == 'spinal_canal']}")
    assert prop.target == {"vertebra": "L4", "side": side}
    assert 8 < n["pedicle_width_mm"] < 14 and 0 <= n["medial_angle_deg"] <= 30 and n["bone_chord_mm"] > 50
    assert r.breach.grade in ("A", "B") and r.breach.max_depth_mm < 2.0
    canal = next(d for d in r.distances if d.structure == "spinal_canal")
    assert canal.min_distance_mm >= 2.0
    # the shank is in the named vertebra
    level = vertebra_levels(labels).level("L4")
    l4 = np.zeros(labels.shape, bool)
    l4[tuple(level.voxels.T)] = True
    mask = voxelise(placed, labels)
    local = placed.pose.inverse().apply(labels.index_to_world(np.argwhere(mask)))
    shank = mask.copy()
    shank[mask] = local[:, 2] >= 0
    assert (shank & l4).sum() / shank.sum() > 0.95
    assert r.passed


@pytest.mark.parametrize("family, size, target", [("hip-stem", "4", {"femur": "left"}),
                                                  ("pedicle-screw", "6.5x45", {"vertebra": "L4", "side": "left"})])
def test_checks_per_pose_are_live_speed(sample, family, size, target):
    labels, ct = sample
    placed, _, ctx, samples, _ = place(labels, ct, family, size, target)
    rng = np.random.default_rng(1)
    times = []
    for _ in range(60):
        p = placed.with_pose(placed.pose.moved(translate_lps=rng.normal(0, 1.5, 3), rotate_deg_local=rng.normal(0, 2, 3)))
        t = time.perf_counter()
        ctx.check(p, samples)
        times.append((time.perf_counter() - t) * 1000)
    print(f"\n{family}: median {np.median(times):.1f} ms per pose")
    assert np.median(times) <= MAX_CHECK_MS
