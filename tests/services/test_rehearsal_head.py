"""A scripted rehearsal of a plan to the tumour (label 48) on the head sample: recorded, saved, reloaded, replayed, scored."""

from __future__ import annotations

import numpy as np
import pytest

from surgtwin.core.plan.rehearsal import PlannedPath, straight_script
from surgtwin.services import pipeline
from surgtwin.services import rehearsal as svc
from tests.services.rehearsal_cases import add_trajectory

pytestmark = pytest.mark.slow


def skin_entry(maps, target, direction) -> np.ndarray:
    """The last labelled point going out from ``target`` along ``direction`` (1 mm inside the skin)."""
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    s = np.arange(0.0, 250.0, 0.5)
    lab = maps.label_at(target + s[:, None] * d)
    out = int(np.argmax(lab == 0))
    return target + (s[out] - 1.0) * d


@pytest.fixture(scope="module")
def head():
    from surgtwin import resources
    from surgtwin.core.plan.trajectory import resolve_target

    case = pipeline.new_case(resources.sample_root() / "head")
    maps = svc.case_maps(case)
    target, structure = resolve_target(maps, "tumour")
    assert structure == "tumour"
    entry = skin_entry(maps, target, (1.0, 0.0, 0.0))  # the short lateral path to the tumour
    add_trajectory(case, "T1", "tumour-lateral", entry, target, instrument="brain-biopsy-needle",
                   target_structure="tumour")
    return case, PlannedPath(tuple(entry), tuple(target)), maps


def test_head_rehearsal_recorded_saved_replayed_scored(head, tmp_path):
    case, plan, maps = head
    good = svc.rehearse_script(case, "T1", straight_script(plan, step_mm=1.0, speed_mm_s=2.0), trainee="resident")
    assert {"ventricles", "vessels", "brain_stem"} <= set(good["margins_mm"]) and "tumour" not in good["margins_mm"]
    assert good["recording"]["events"] == []
    assert good["score"]["total"] > 95
    assert good["final"]["tip_to_target_mm"] < 0.5
    assert good["timing"]["pose_update_ms_median"] <= 5.0
    # a second attempt aimed at the ventricles from the same entry: enters them, scores lower
    aim = maps.deepest_point("ventricles") - plan.entry
    bad_script = [{"t": 0, "cmd": "insert", "entry": list(plan.entry_lps), "direction": aim.tolist()}]
    bad_script += [{"t": 1 + k, "cmd": "advance", "mm": 2.0} for k in range(int(np.linalg.norm(aim) // 2))]
    bad = svc.rehearse_script(case, "T1", bad_script, trainee="resident")
    kinds = [(e["kind"], e["structure"]) for e in bad["recording"]["events"]]
    assert ("enter", "ventricles") in kinds
    assert kinds.count(("enter", "ventricles")) == 1
    assert bad["score"]["total"] < good["score"]["total"] - 20
    path = pipeline.save_case(case, tmp_path / "head")
    back = pipeline.load_case(path)
    assert [r["id"] for r in svc.rehearsals(back)] == ["R1", "R2"]
    rp = svc.replay(back, "R2", exact=True)
    ev = next(e for e in rp.timeline() if e.kind == "enter")
    at = rp.at(ev.t_s)
    assert at.distances_mm["ventricles"] < 0
    half = rp.at(rp.start_s + rp.duration_s / 2)
    assert 0 < half.depth_mm < bad["final"]["depth_mm"]
    table = svc.progress(back, "T1", "resident")
    assert [r["attempt"] for r in table["rows"]] == [1, 2] and table["trend"]["direction"] == "declining"


def test_head_pose_update_time(head):
    case, plan, _ = head
    run = svc.start(case, "T1")
    r = run.rehearsal
    r.advance(plan.length_mm * 0.6, t=0)
    for k in range(200):
        if k % 2:
            r.pivot(0.2 * ((k % 5) - 2), 0.1, t=1 + 0.02 * k)
        else:
            r.advance(0.2 if k % 4 else -0.2, t=1 + 0.02 * k)
    assert float(np.median(r.timings_ms)) <= 5.0
    assert float(np.percentile(r.timings_ms, 95)) <= 10.0
