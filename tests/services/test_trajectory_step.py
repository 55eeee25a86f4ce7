"""The trajectory step: record fields, risk map item, round trip through the case file, what-if."""

from __future__ import annotations

import numpy as np
import pytest

from tests.core.test_trajectory import TUMOUR, synthetic_case


@pytest.fixture(scope="module")
def planned():
    from surgtwin.services import pipeline

    case = synthetic_case()
    out = pipeline.run_step(case, "trajectory", target="tumour", entry_region="skin", suggest=3)
    bad = pipeline.run_step(case, "trajectory", target="tumour", entry=[-40.0, 0.0, 0.0], trajectory_name="bad",
                            instrument="dbs-lead")
    return case, out, bad


def test_record_fields(planned):
    case, out, bad = planned
    from surgtwin.services import trajectory as svc

    recs = svc.trajectories(case)
    assert [r["id"] for r in recs] == ["1", "2"]
    r = recs[0]
    assert set(r) == {"id", "name", "method", "entry_lps", "target_lps", "target_structure", "instrument",
                      "margins_mm", "metrics", "verdict", "passed", "suggestion", "notes", "provenance"}
    assert r["method"] == "suggested" and r["passed"] and r["verdict"] == "pass"
    assert r["target_structure"] == "tumour" and r["instrument"]["name"] == "biopsy-needle-14g"
    assert set(r["margins_mm"]) == {"vessels", "ventricles"}
    assert len(r["suggestion"]["ranked"]) == 3 and r["suggestion"]["ranked"][0]["metrics"]["entry_lps"] == r["entry_lps"]
    risk = case.item(r["suggestion"]["risk_item"]).value
    assert risk["risk"].shape == (r["suggestion"]["candidates"],) and risk["entries_lps"].shape[1] == 3
    assert risk["clearance_mm"].shape[1] == len(r["suggestion"]["structures"])
    b = recs[1]
    assert b["name"] == "bad" and b["method"] == "manual" and not b["passed"]
    assert any("ventricles" in x for x in b["metrics"]["reasons"])
    assert not bad.summary["passed"]


def test_round_trip_and_stale(planned, tmp_path):
    from surgtwin.services import pipeline

    case, _, _ = planned
    path = pipeline.save_case(case, tmp_path / "ball.stwin")
    again = pipeline.load_case(path)
    assert again.item("trajectories").value == case.item("trajectories").value
    key = case.item("trajectories").value[0]["suggestion"]["risk_item"]
    assert np.array_equal(again.item(key).value["risk"], case.item(key).value["risk"])
    assert not again.is_stale("trajectories")
    lab = again.labels
    arr = lab.array.copy()
    arr[0, 0, 0] = 1
    again.set_labels(lab.with_array(arr))
    assert again.is_stale("trajectories")


def test_evaluate_update_what_if_remove(planned):
    from surgtwin.services import trajectory as svc

    case, _, _ = planned
    m = svc.evaluate(case, [-30.0, 0.0, 10.0], TUMOUR)
    assert m.length_mm == pytest.approx(np.linalg.norm(TUMOUR - [-30.0, 0.0, 10.0]), abs=1e-6)
    w = svc.what_if(case, "1", "2")
    assert w["names"] == ["Biopsy needle 14G to tumour", "bad"]
    assert ["verdict", "pass", "fail", "a"] in w["rows"]
    moved = svc.update_trajectory(case, "2", entry=[0.0, -23.0, 0.0])
    assert moved.passed and svc.trajectory(case, "2")["passed"] and svc.trajectory(case, "2")["method"] == "manual"
    svc.remove_trajectory(case, "1")
    assert [r["id"] for r in svc.trajectories(case)] == ["2"]
    assert case.item("trajectory_risk:1") is None


def test_user_errors():
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.services import pipeline

    case = synthetic_case()
    with pytest.raises(SurgtwinError, match="needs a target"):
        pipeline.run_step(case, "trajectory", entry=[0, 0, 0])
    with pytest.raises(SurgtwinError, match="no structure 'liver'"):
        pipeline.run_step(case, "trajectory", target="liver", entry=[0, 0, 30])
    with pytest.raises(SurgtwinError, match="no instrument"):
        pipeline.run_step(case, "trajectory", target="tumour", entry=[0, 0, 30], instrument="drill")
