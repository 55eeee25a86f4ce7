"""Trajectories on the sample cases: a plan to the head's tumour (suggestions clear the margins, a
bad path fails) and a pedicle path on the abdomen-pelvis case's lumbar spine."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def head():
    from surgtwin.core.plan.clearance import ClearanceMaps
    from surgtwin.services import pipeline

    case = pipeline.new_case(pipeline.sample_root() / "head")
    return case, ClearanceMaps.for_labels(case.labels, labels_hash=case.current_hash("labels"))


def test_head_suggestions_clear_margins_and_bad_path_fails(head):
    from surgtwin.core.plan.trajectory import evaluate
    from surgtwin.core.plan.trajectory_suggest import suggest

    case, maps = head
    s = suggest(maps, "tumour", "skull", k=3)
    assert s.summary()["candidates"] == 10_000 and 500 < s.scores.feasible.sum() < 10_000
    assert {"vessels", "ventricles", "brain_stem", "eyes"} <= set(s.scores.names)
    for m in s.top:
        assert m.passed and m.crossed[-1].structure == "tumour"
        for c in m.clearances:
            assert c.min_distance_mm >= c.margin_mm
        brute = _brute_vessels(case.labels, np.array(m.entry_lps), np.array(m.target_lps))
        assert m.clearance("vessels").min_distance_mm == pytest.approx(brute, abs=float(np.linalg.norm(
            case.labels.spacing_mm)))
    # a deliberately bad path: from the right temple through the ventricles to the tumour
    vent = maps.centroid("ventricles")
    d = vent - s.target_lps
    entry = s.target_lps + d * (1 + 60.0 / np.linalg.norm(d))
    bad = evaluate(maps, entry, s.target_lps, None, target_structure="tumour")
    assert not bad.passed and not bad.clearance("ventricles").passed
    assert bad.clearance("ventricles").min_distance_mm < 0.5  # grazes the ventricle wall


def _brute_vessels(labels, a, b):
    idx = np.argwhere(labels.array == labels.labels.by_name("vessels").value)
    p = labels.index_to_world(idx)
    d = b - a
    t = np.clip((p - a) @ d / (d @ d), 0.0, 1.0)
    return float(np.min(np.linalg.norm(p - (a + t[:, None] * d), axis=1))) - 0.5 * float(
        np.mean(labels.spacing_mm)) - 1.05


def test_pedicle_path_abdomen():
    from surgtwin.services import pipeline

    case = pipeline.new_case(pipeline.sample_root() / "abdomen-pelvis")
    out = pipeline.run_step(case, "trajectory", pedicle="L2:left")
    rec = out.summary["trajectory"]
    assert rec["method"] == "pedicle" and rec["instrument"]["name"] == "jamshidi-11g"
    assert rec["notes"]["level"] == "L2" and rec["notes"]["side"] == "left"
    m = out.result
    assert m.passed, m.reasons
    assert [c.structure for c in m.crossed] == ["vertebrae"]
    canal = m.clearance("spinal_canal")
    assert 2.0 <= canal.min_distance_mm < 10.0  # beside the canal, clear of it
    assert m.length_mm == pytest.approx(0.8 * rec["notes"]["bone_chord_mm"], abs=0.2)
