"""The rehearsal service: a case's trajectory rehearsed over its clearance maps, stored, replayed, progress."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.plan.rehearsal import ManualClock, PlannedPath, run_script, straight_script
from surgtwin.services import pipeline
from surgtwin.services import rehearsal as svc
from tests.services.rehearsal_cases import (
    ENTRY_LPS,
    TUMOUR_LPS,
    VESSEL_LPS,
    add_trajectory,
    crossing_script,
    synthetic_case,
)

RECORD_FIELDS = {"schema", "id", "trajectory_id", "trajectory_name", "trainee", "started", "duration_s", "source",
                 "instrument", "plan", "margins_mm", "final", "recording", "score", "timing", "provenance"}
PLAN = PlannedPath(ENTRY_LPS, TUMOUR_LPS)


@pytest.fixture
def case():
    return synthetic_case()


def test_readouts_on_the_maps_match_the_geometry(case):
    run = svc.start(case, "T1", trainee="ann", clock=ManualClock())
    r = run.rehearsal
    assert set(r.margins_mm) == {"vessels"}  # the target's structure and the skin are not critical
    assert r.instrument.name == "biopsy-needle-14g"
    out = r.advance(25.0, t=1)  # the tip at z=30, beside the vessel (8 mm off the axis, radius 3)
    # the maps put a structure's surface half a (mean) voxel beyond its outermost voxel centres
    surface = 3.0 + np.mean([2.0, 1.0, 1.0]) / 2
    assert out.distances_mm["vessels"] == pytest.approx(8.0 - surface - r.instrument.radius_mm, abs=0.1)
    assert out.violations == [] and out.elapsed_ms < 5.0
    aim = np.array(VESSEL_LPS) - ENTRY_LPS
    r.insert_at(ENTRY_LPS, aim, t=2)
    out = r.advance(float(np.linalg.norm(aim)), t=3)
    assert out.collisions == ["vessels"] and out.distances_mm["vessels"] < -2.0
    assert [e.kind for e in r.events] == ["enter_margin", "enter"]


def test_scripted_rehearsals_are_stored_scored_and_compared(case):
    good = svc.rehearse_script(case, "T1", straight_script(PLAN, step_mm=2.0, speed_mm_s=4.0), trainee="ann")
    assert set(good) == RECORD_FIELDS
    assert good["id"] == "R1" and good["trajectory_name"] == "to-tumour" and good["source"] == "script"
    assert good["recording"]["events"] == []
    assert good["score"]["total"] == pytest.approx(100.0)
    assert good["final"]["tip_to_target_mm"] == pytest.approx(0.0, abs=1e-6)
    assert good["timing"]["pose_update_ms_median"] < 5.0
    assert good["provenance"]["method"] == "rehearsal" and "labels" in good["provenance"]["inputs"]
    bad = svc.rehearse_script(case, "to-tumour", crossing_script(), trainee="ann")
    kinds = [(e["kind"], e["structure"]) for e in bad["recording"]["events"]]
    assert kinds[:2] == [("enter_margin", "vessels"), ("enter", "vessels")]
    assert ("exit", "vessels") in kinds
    assert bad["score"]["total"] < good["score"]["total"] - 20
    assert bad["score"]["details"]["structures_entered"] == ["vessels"]
    json.dumps(case.item("rehearsals").value)  # plain JSON
    assert [r["id"] for r in svc.rehearsals(case)] == ["R1", "R2"]
    svc.rehearse_script(case, "T1", straight_script(PLAN), trainee="bob")
    table = svc.progress(case, "T1", "ann")
    assert [r["id"] for r in table["rows"]] == ["R1", "R2"]
    assert table["trend"]["direction"] == "declining" and table["trend"]["best_attempt"] == 1
    assert len(svc.progress(case, "T1")["rows"]) == 3
    assert svc.progress(case)["trajectory_id"] == "T1"
    svc.remove_rehearsal(case, "R3")
    assert [r["id"] for r in svc.rehearsals(case)] == ["R1", "R2"]


def test_interactive_run_finish_and_signals(case):
    run = svc.start(case, "T1", trainee="cy", clock=ManualClock())
    flashes = []
    run.rehearsal.collision.connect(lambda ev: flashes.append(ev.structure))
    run_script(run.rehearsal, crossing_script())
    rec = svc.finish(case, run)
    assert rec["source"] == "interactive" and flashes.count("vessels") == 4
    assert svc.rehearsal(case, rec["id"])["trainee"] == "cy"


def test_save_reload_and_replay(case, tmp_path):
    svc.rehearse_script(case, "T1", crossing_script(), trainee="ann")
    path = pipeline.save_case(case, tmp_path / "syn")
    back = pipeline.load_case(path)
    rec = svc.rehearsal(back, "R1")
    assert rec == svc.rehearsal(case, "R1")
    rp = svc.replay(back, "R1")
    exact = svc.replay(back, "R1", exact=True)
    assert rp.duration_s == pytest.approx(32.0)
    for t in (0.5, 5.5, 17.25, 30.0):
        a, b = rp.at(t), exact.at(t)
        assert a.depth_mm == pytest.approx(b.depth_mm)
        assert a.distances_mm["vessels"] == pytest.approx(b.distances_mm["vessels"], abs=1.5)
    assert [e.kind for e in rp.timeline()][:2] == ["enter_margin", "enter"]
    assert not back.is_stale("rehearsals")
    add_trajectory(back, "T2", "another", ENTRY_LPS, VESSEL_LPS)  # planning another path keeps it current
    assert not back.is_stale("rehearsals")
    assert svc.rehearsal(back, "R1")["provenance"]["parameters"]["trajectory_hash"]


def test_the_pipeline_step(case):
    out = pipeline.run_step(case, "rehearsal", trajectory="T1", script=straight_script(PLAN), trainee="dee")
    assert out.summary["id"] == "R1" and out.summary["events"] == 0
    assert svc.rehearsals(case, trainee="dee")[0]["score"]["total"] == pytest.approx(100.0)
    with pytest.raises(SurgtwinError, match="no trajectory"):
        pipeline.run_step(case, "rehearsal", trajectory="T9", script=straight_script(PLAN))
    with pytest.raises(SurgtwinError, match="script"):
        pipeline.run_step(case, "rehearsal", trajectory="T1", script=[])


def test_errors_a_user_can_cause(case):
    with pytest.raises(SurgtwinError, match="no trajectory 'nope'"):
        svc.start(case, "nope")
    with pytest.raises(SurgtwinError, match="no rehearsal"):
        svc.replay(case, "R7")
    add_trajectory(case, "T2", "bad-instrument", ENTRY_LPS, TUMOUR_LPS, instrument="spoon")
    with pytest.raises(SurgtwinError, match="no instrument 'spoon'"):
        svc.start(case, "T2")
