"""Trajectory metrics on a small synthetic head: distances against brute force, anisotropic spacing,
crossings in order, entry angles, auto-suggest."""

from __future__ import annotations

import numpy as np
import pytest

from surgtwin.core.plan.clearance import ClearanceMaps, clear_cache, signed_distance
from surgtwin.core.plan.trajectory import evaluate, instrument, resolve_target
from surgtwin.core.plan.trajectory_suggest import score_entries, suggest
from surgtwin.core.types import Label, LabelMap, LabelTable, Volume

SPACING = (2.0, 0.8, 0.9)  # (slice, row, column) mm: anisotropic
SHAPE = (32, 70, 64)
CENTRE = np.array([0.0, 0.0, 0.0])
BALL_R = 24.0
TUMOUR = np.array([6.0, 0.0, 0.0])
VENTRICLE = np.array([-8.0, 0.0, 0.0])
VESSEL_Y = 6.0  # a vessel along L (x) at y = 6, z = 0, radius 1.5


def synthetic_labels() -> LabelMap:
    """A ball of brain under a 2 mm skin, a tumour, a ventricle ball and a vessel tube (LPS mm)."""
    aff = np.eye(4)
    aff[:3, :3] = np.array([[0, 0, SPACING[2]], [0, SPACING[1], 0], [SPACING[0], 0, 0]])
    aff[:3, 3] = -np.array([(SHAPE[2] - 1) * SPACING[2], (SHAPE[1] - 1) * SPACING[1], (SHAPE[0] - 1) * SPACING[0]]) / 2
    k, j, i = np.indices(SHAPE)
    w = np.stack([k, j, i], -1) @ aff[:3, :3].T + aff[:3, 3]
    r = np.linalg.norm(w - CENTRE, axis=-1)
    a = np.zeros(SHAPE, np.uint8)
    a[r <= BALL_R] = 1
    a[r <= BALL_R - 2.0] = 42
    a[np.linalg.norm(w - VENTRICLE, axis=-1) <= 4.0] = 43
    a[np.hypot(w[..., 1] - VESSEL_Y, w[..., 2]) <= 1.5] = 47
    a[r > BALL_R] = 0
    a[np.linalg.norm(w - TUMOUR, axis=-1) <= 3.0] = 48
    table = LabelTable([Label(1, "skin"), Label(42, "brain_white_matter"), Label(43, "ventricles"),
                        Label(47, "vessels"), Label(48, "tumour")])
    return LabelMap(a, aff, labels=table)


def synthetic_case():
    from surgtwin.core.case import Case

    labels = synthetic_labels()
    case = Case(Volume(np.zeros(SHAPE, np.int16), labels.affine, modality="CT"), name="ball")
    case.set_labels(labels)
    return case


@pytest.fixture(scope="module")
def maps():
    clear_cache()
    return ClearanceMaps.for_labels(synthetic_labels())


def brute_force_mm(labels, name, a, b) -> float:
    """Distance (mm) from the segment a-b to the nearest voxel centre of ``name`` (every voxel)."""
    idx = np.argwhere(labels.array == labels.labels.by_name(name).value)
    p = labels.index_to_world(idx)
    d = b - a
    t = np.clip((p - a) @ d / (d @ d), 0.0, 1.0)
    return float(np.min(np.linalg.norm(p - (a + t[:, None] * d), axis=1)))


def test_distance_matches_brute_force(maps):
    labels = maps.labels
    rng = np.random.default_rng(15)
    ins = instrument("biopsy-needle-14g")
    diag = float(np.linalg.norm(SPACING))
    h = 0.5 * float(np.mean(SPACING))
    for _ in range(12):
        a = rng.uniform(-20, 20, 3)
        b = rng.uniform(-20, 20, 3)
        m = evaluate(maps, a, b, ins, {"vessels": 2.0, "ventricles": 1.0})
        for name in ("vessels", "ventricles"):
            brute = brute_force_mm(labels, name, a, b) - h - ins.radius_mm
            got = m.clearance(name).min_distance_mm
            if brute > 0:  # outside: within a voxel diagonal of the brute-force distance
                assert abs(got - brute) <= diag, (name, a, b, got, brute)
            else:  # the axis passes through the structure's voxels: overlap reported
                assert got <= 0.5 * diag


def test_anisotropic_spacing_in_mm():
    sp = (3.0, 0.5, 1.0)
    mask = np.zeros((20, 20, 20), bool)
    mask[:2] = True  # slab: slices 0-1
    d = signed_distance(mask, sp)
    h = 0.5 * np.mean(sp)
    # slice 10 lies (10 - 1) * 3 mm above the slab's last voxel centre, not 9 voxels
    assert d[10, 10, 10] == pytest.approx(9 * 3.0 - h, abs=1e-4)
    mask2 = np.zeros((20, 20, 20), bool)
    mask2[:, :, :2] = True
    assert signed_distance(mask2, sp)[10, 10, 10] == pytest.approx(9 * 1.0 - h, abs=1e-4)
    assert d[0, 5, 5] < 0  # inside: negative


def test_trilinear_matches_scipy(maps):
    from scipy import ndimage as ndi

    m = maps.map("vessels")
    rng = np.random.default_rng(1)
    idx = rng.uniform(0, np.array(m.values.shape) - 1, (500, 3)).astype(np.float32)
    ref = ndi.map_coordinates(m.values, idx.T, order=1)
    assert np.allclose(m.sample_index(idx), ref, atol=1e-4)


def test_crossing_order_and_depths(maps):
    entry = np.array([-40.0, 0.0, 0.0])  # from the right (-L) through the ventricle to the tumour
    target, tname = resolve_target(maps, "tumour")
    m = evaluate(maps, entry, target, "dbs-lead", target_structure=tname)
    names = [c.structure for c in m.crossed]
    assert names == ["skin", "brain_white_matter", "ventricles", "brain_white_matter", "tumour"]
    skin, _, vent, _, tum = m.crossed
    assert skin.enter_mm == pytest.approx(40.0 - BALL_R, abs=1.0)
    assert vent.enter_mm == pytest.approx(40.0 - 8.0 - 4.0, abs=1.0)
    assert vent.exit_mm == pytest.approx(40.0 - 8.0 + 4.0, abs=1.0)
    assert vent.critical and not tum.critical
    assert not m.passed and m.clearance("ventricles").entered and m.clearance("ventricles").min_distance_mm < 0
    assert "tumour" not in {c.structure for c in m.clearances}


def test_entry_angle(maps):
    target = TUMOUR
    for tilt in (0.0, 30.0):
        # the entry on the ball's surface where the outward normal is +z; path tilted by ``tilt``
        surf = np.array([0.0, 0.0, BALL_R])
        d = np.array([np.sin(np.radians(tilt)), 0.0, -np.cos(np.radians(tilt))])
        entry = surf - 10.0 * d
        m = evaluate(maps, entry, surf + 15.0 * d, None, {"vessels": -1})
        a = m.entry_angles[0]
        assert a.surface == "body" and a.depth_mm == pytest.approx(10.0, abs=1.0)
        assert a.angle_deg == pytest.approx(tilt, abs=3.0)
    assert target is TUMOUR


def test_suggest_clears_margins(maps):
    s = suggest(maps, "tumour", "skin", k=4, instrument_="biopsy-needle-14g")
    assert s.summary()["candidates"] > 500 and s.scores.feasible.any()
    assert 0 < s.scores.feasible.sum() < len(s.candidates)  # the vessel side is unsafe
    assert len(s.top) == 4
    for m in s.top:
        assert m.passed, m.reasons
        for c in m.clearances:
            assert c.min_distance_mm >= c.margin_mm
    entries = np.array([m.entry_lps for m in s.top])
    gaps = np.linalg.norm(entries[:, None] - entries[None], axis=-1)
    assert gaps[np.triu_indices(4, 1)].min() >= 10.0  # spread apart
    # risk: 1 where infeasible, below 1 where feasible; carried to other points
    assert np.all(s.risk[~s.scores.feasible] == 1.0) and np.all(s.risk[s.scores.feasible] < 1.0)
    assert s.risk_at(s.candidates[:5]).tolist() == s.risk[:5].tolist()
    # the vectorised scores agree with the exact metrics of the top entries
    for i, m in zip(s.top_index, s.top, strict=True):
        for j, name in enumerate(s.scores.names):
            assert s.scores.clearance_mm[i, j] == pytest.approx(m.clearance(name).min_distance_mm, abs=0.5)


def test_scores_patch_and_bad_entry(maps):
    from surgtwin.core.plan.trajectory_suggest import entry_candidates

    patch = entry_candidates(maps, "skin", patch_centre_lps=[0, 0, BALL_R], patch_radius_mm=8.0)
    assert len(patch) > 10 and np.all(np.linalg.norm(patch - [0, 0, BALL_R], axis=1) <= 8.0)
    # along +y at z = 0: through the vessel -> infeasible
    sc = score_entries(maps, np.array([[6.0, 23.0, 0.0], [0.0, -6.0, BALL_R - 1.0]]), TUMOUR, None,
                       target_structure="tumour")
    assert not sc.feasible[0] and sc.risk[0] == 1.0


def test_evaluate_is_fast(maps):
    import time

    evaluate(maps, [-30, 5, 3], TUMOUR, None)
    t = time.perf_counter()
    for _ in range(20):
        evaluate(maps, [-30, 5, 3], TUMOUR, None)
    assert (time.perf_counter() - t) / 20 < 0.05  # a few ms; generous for a busy machine
