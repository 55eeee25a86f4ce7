"""The Trajectory and Rehearsal panels on the head sample case: suggest a path to the tumour, drag
its entry in an MPR view (metrics live, stored on release), a bad path fails, what-if, probe's eye;
then a rehearsal driven from the panel (keys and the drive pad), recorded, scored, replayed."""

from __future__ import annotations

import numpy as np
import pytest

from tests.ui.conftest import wait_jobs

pytestmark = [pytest.mark.gui, pytest.mark.slow]


@pytest.fixture(scope="module")
def head_case_path(tmp_path_factory):
    """The head sample as a saved case (loaded fresh by each test)."""
    from surgtwin.resources import sample_root
    from surgtwin.services.pipeline import new_case, save_case

    path = tmp_path_factory.mktemp("head") / "head.stwin"
    save_case(new_case(sample_root() / "head"), path)
    return path


def _open(window, path):
    from surgtwin.services.pipeline import load_case

    case = load_case(path)
    window.session.set_case(case)
    return case


def test_trajectory_panel_suggests_drags_compares(window, qtbot, head_case_path):
    case = _open(window, head_case_path)
    panel = window.panels["trajectory"]
    assert panel.target.currentText() == "tumour" and panel.region.currentText() == "skin"
    panel.suggest()
    wait_jobs(qtbot, window, timeout=180000)
    assert window.jobs.last_state == "done", window.jobs.last_error
    rec = panel.selected()
    assert rec is not None and rec["verdict"] == "pass" and rec["target_structure"] == "tumour"
    assert panel.table.rowCount() == len(rec["metrics"]["clearances"]) >= 3
    assert all(panel.table.item(r, 3).text() == "ok" for r in range(panel.table.rowCount()))
    assert panel.suggestions.count() == 3 and "PASS" in panel.summary.text()
    for name in ("instrument", "margin", "entry", "target"):
        assert ("trajectory", name) in window.session.overlays
    # probe's eye: across and along the path at the slider's depth
    panel.depth.setValue(500)
    assert panel.across.plane is not None and panel.along.plane is not None
    entry, target = np.asarray(rec["entry_lps"]), np.asarray(rec["target_lps"])
    mid = entry + 0.5 * (target - entry)
    assert np.allclose(panel.across.plane[0], mid, atol=1e-6)
    # drag the entry in the MPR views onto a path through the brain stem: live metrics fail, stored on release
    panel.drag_button.setChecked(True)
    assert window.tools.picker is not None
    stem = np.argwhere(case.labels.array == case.labels.labels.by_name("brain_stem").value).mean(axis=0)
    stem_lps = case.labels.index_to_world(stem[None])[0]
    bad_entry = target + 1.6 * (stem_lps - target)
    window.tools.picker(entry + 1.0)  # press near the entry: grabs it
    window.tools.picker_drag(bad_entry)
    assert panel.live is not None and not panel.metrics.passed
    assert "ENTERS" in [panel.table.item(r, 3).text() for r in range(panel.table.rowCount())]
    assert case.item("trajectories").value[0]["verdict"] == "pass"  # not stored while dragging
    window.tools.picker_release()
    stored = case.item("trajectories").value[0]
    assert stored["verdict"] == "fail" and np.allclose(stored["entry_lps"], bad_entry)
    assert window.session.overlays[("trajectory", "instrument")].color == (255, 90, 90)
    panel.drag_button.setChecked(False)
    assert window.tools.picker is None
    # a second plan from a suggestion and a what-if between the two
    panel.suggest()
    wait_jobs(qtbot, window, timeout=180000)
    assert len(panel.records()) == 2
    panel.other.setCurrentIndex(panel.other.findData(panel.records()[0]["id"]))
    assert panel.compare_table.rowCount() >= 3


def test_rehearsal_panel_drives_records_scores_replays(window, qtbot, head_case_path):
    from PySide6.QtCore import Qt

    case = _open(window, head_case_path)
    from surgtwin.services import pipeline

    pipeline.run_step(case, "trajectory", target="tumour", entry_region="skin", suggest=1)
    panel = window.panels["rehearsal"]
    assert panel.trajectory.count() == 1
    panel.trainee.setText("Resident A")
    panel.start()
    assert panel.run is not None and panel.readouts.depth_mm == 0.0
    plan_len = float(np.linalg.norm(np.subtract(*[case.item("trajectories").value[0][k]
                                                  for k in ("target_lps", "entry_lps")])))
    # keyboard: W advances 1 mm, Shift+W 5 mm; the drive pad's signals pivot
    qtbot.keyClick(panel.pad, Qt.Key.Key_W)
    assert panel.readouts.depth_mm == pytest.approx(1.0)
    while panel.readouts.depth_mm < plan_len - 5.5:
        qtbot.keyClick(panel.pad, Qt.Key.Key_W, Qt.KeyboardModifier.ShiftModifier)
    panel.pad.pivot.emit(0.4, 0.0)
    assert panel.readouts.angle_deg == pytest.approx(0.4, abs=0.05)
    assert panel.values["depth_mm"].text().endswith("mm")
    inst = window.session.overlays[("rehearsal", "instrument")]
    assert np.allclose(inst.matrix[:3, 3] + inst.matrix[:3, 2], panel.readouts.tip_lps)  # drawn to the tip
    panel.finish()
    rec = case.item("rehearsals").value[-1]
    assert rec["trainee"] == "Resident A" and 0 <= rec["score"]["total"] <= 100
    assert "Score" in panel.score.text()
    assert rec["timing"]["pose_update_ms_median"] <= 5.0
    # replay: the timeline moves the instrument back through the recording
    panel.tabs.setCurrentIndex(1)
    assert panel.recorded.currentData() == rec["id"]
    assert panel.readouts.depth_mm == pytest.approx(rec["final"]["depth_mm"])
    panel.timeline.setValue(0)
    first = panel.readouts.depth_mm
    panel.timeline.setValue(1000)
    assert first == pytest.approx(0.0) and panel.readouts.depth_mm == pytest.approx(rec["final"]["depth_mm"])
    # a second attempt aimed at the brain stem: it runs into structures on the way; events logged, the
    # structure entered flashes, lower score
    panel.start()
    stem = np.argwhere(case.labels.array == case.labels.labels.by_name("brain_stem").value).mean(axis=0)
    stem_lps = case.labels.index_to_world(stem[None])[0]
    entry = np.asarray(panel.run.rehearsal.plan.entry)
    hits = []
    panel.run.rehearsal.collision.connect(lambda ev: hits.append(ev))
    panel.run.rehearsal.set_pose(stem_lps, stem_lps - entry, entry_lps=entry)
    panel.show_readouts(panel.run.rehearsal.readouts)
    entered = [ev.structure for ev in hits if ev.kind == "enter"]
    assert entered and panel.events.count() == len(hits)
    assert any("ENTERED" in panel.events.item(i).text() for i in range(panel.events.count()))
    value = case.labels.labels.by_name(entered[0]).value
    assert window.session.display[value].color == (255, 40, 40)  # flashing
    qtbot.waitUntil(lambda: window.session.display[value].color != (255, 40, 40), timeout=3000)
    panel.finish()
    second = case.item("rehearsals").value[-1]
    assert second["score"]["total"] < rec["score"]["total"]
    panel.tabs.setCurrentIndex(2)
    assert panel.progress.rowCount() == 2 and "2 attempt" in panel.trend.text()


@pytest.fixture(scope="module")
def abdomen_case_path(tmp_path_factory):
    from surgtwin.resources import sample_root
    from surgtwin.services.pipeline import new_case, save_case

    path = tmp_path_factory.mktemp("abdomen") / "abdomen.stwin"
    save_case(new_case(sample_root() / "abdomen-pelvis"), path)
    return path


def test_trajectory_panel_plans_a_pedicle_screw_path(window, qtbot, abdomen_case_path):
    _open(window, abdomen_case_path)
    panel = window.panels["trajectory"]
    assert panel.pedicle_button.isEnabled()
    panel.pedicle.setCurrentText("L2 left")
    panel.plan_pedicle()
    wait_jobs(qtbot, window, timeout=180000)
    assert window.jobs.last_state == "done", window.jobs.last_error
    rec = panel.selected()
    assert rec["method"] == "pedicle" and rec["notes"]["level"] == "L2" and rec["verdict"] == "pass"
    crossed = [c["structure"] for c in rec["metrics"]["crossed"]]
    assert crossed == ["vertebrae"]
    rows = {panel.table.item(r, 0).text(): panel.table.item(r, 3).text() for r in range(panel.table.rowCount())}
    assert rows["spinal_canal"] == "ok" and rows["aorta"] == "ok"
