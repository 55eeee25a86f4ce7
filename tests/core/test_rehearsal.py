"""The rehearsal engine against an analytic stand-in: geometry, readouts, events, deviation, recording, replay, score."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.plan.rehearsal import (
    AnalyticClearance,
    ManualClock,
    PlannedPath,
    Rehearsal,
    parse_script,
    pivot_axes,
    run_script,
    straight_script,
)
from surgtwin.core.plan.rehearsal_record import Recording, Replay
from surgtwin.core.plan.rehearsal_score import COMPONENTS, ScoreSettings, progress_table, score_recording
from surgtwin.core.plan.trajectory import Instrument

PLAN = PlannedPath((0.0, 0.0, 0.0), (0.0, 0.0, 60.0))
NEEDLE = Instrument("needle", "test needle", 2.0, 150.0)


def clearance():
    # a vessel (sphere r=3) beside the path at z=30, 5 mm off axis; a ventricle (box) off to the side
    return AnalyticClearance(spheres={"vessel": ((5.0, 0.0, 30.0), 3.0)},
                             boxes={"ventricle": ((-20.0, -5.0, 40.0), (-10.0, 5.0, 50.0))})


def rehearsal(**kw):
    return Rehearsal(PLAN, clearance(), instrument=NEEDLE, margins_mm={"vessel": 2.0, "ventricle": 1.0},
                     clock=ManualClock(), **kw)


def test_advance_retract_depth_and_tip():
    r = rehearsal()
    out = r.advance(10, t=1)
    assert out.depth_mm == pytest.approx(10)
    np.testing.assert_allclose(out.tip_lps, [0, 0, 10])
    assert out.tip_to_target_mm == pytest.approx(50)
    assert out.depth_to_target_mm == pytest.approx(50)
    assert r.retract(25, t=2).depth_mm == 0.0  # not past the entry
    assert r.advance(500, t=3).depth_mm == pytest.approx(150)  # not past the instrument's length


def test_pivot_about_entry_keeps_depth_and_entry():
    r = rehearsal()
    r.advance(20, t=1)
    a, b = pivot_axes(r.direction)
    assert abs(np.dot(a, r.direction)) < 1e-12 and abs(np.dot(b, r.direction)) < 1e-12
    out = r.pivot(10, 0, t=2)
    np.testing.assert_allclose(out.entry_lps, [0, 0, 0], atol=1e-12)
    assert out.depth_mm == pytest.approx(20)
    assert np.linalg.norm(out.tip_lps) == pytest.approx(20)
    assert out.angle_deg == pytest.approx(10, abs=1e-9)
    # the tip moved on a circle about the entry: chord 2 * 20 * sin(5 deg)
    assert np.linalg.norm(out.tip_lps - [0, 0, 20]) == pytest.approx(40 * math.sin(math.radians(5)))
    back = r.pivot(-10, 0, t=3)
    np.testing.assert_allclose(back.direction, [0, 0, 1], atol=1e-12)
    both = r.pivot(3, 4, t=4)
    assert both.angle_deg == pytest.approx(math.degrees(math.acos(math.cos(math.radians(3)) *
                                                                  math.cos(math.radians(4)))), abs=1e-9)


def test_readouts_match_the_analytic_distances():
    r = rehearsal()
    out = r.advance(30, t=1)
    # segment (0,0,0)-(0,0,30) to the sphere centre (5,0,30): 5 mm; minus r=3 and the needle's 1 mm
    assert out.distances_mm["vessel"] == pytest.approx(1.0)
    # box x in [-20,-10], z from 40: nearest point of the segment is (0,0,30): dx=10, dz=10
    assert out.distances_mm["ventricle"] == pytest.approx(math.hypot(10, 10) - 1.0, abs=1e-9)
    assert out.violations == ["vessel"] and out.collisions == []
    out = r.set_pose((4.0, 0.0, 30.0), (4.0, 0.0, 30.0), t=2)  # the tip inside the vessel
    assert out.distances_mm["vessel"] == pytest.approx(1.0 - 3.0 - 1.0)
    assert out.collisions == ["vessel"]
    assert out.elapsed_ms < 5.0


def test_events_once_per_entry_and_exit():
    r = rehearsal()
    seen = []
    r.collision.connect(seen.append)
    r.insert_at((0, 0, 0), (5.0, 0.0, 30.0), t=0)  # aimed at the vessel's centre
    for k in range(40):
        r.advance(1, t=1 + k)  # 40 frames, many of them inside
    kinds = [(e.kind, e.structure) for e in r.events]
    assert kinds == [("enter_margin", "vessel"), ("enter", "vessel")]
    ev = r.events[1]
    assert ev.depth_mm == pytest.approx(math.hypot(5, 30) - 4.0, abs=1.0)  # surface (r 3 + needle 1) reached
    for k in range(40):
        r.retract(1, t=50 + k)
    kinds = [(e.kind, e.structure) for e in r.events]
    assert kinds[2:] == [("exit", "vessel"), ("exit_margin", "vessel")]
    assert seen == r.events  # the signal carried each event once


def test_a_large_pivot_does_not_jump_over_a_structure():
    cl = AnalyticClearance(spheres={"thin": ((0.0, 6.0, 20.0), 0.8)})
    r = Rehearsal(PLAN, cl, instrument={"name": "n", "diameter_mm": 0.5, "length_mm": 100}, margins_mm={"thin": 0.5}, clock=ManualClock())
    r.advance(25, t=1)
    r.pivot(-35, 0, t=2)  # the shaft sweeps across the sphere
    r.pivot(0, 0, t=3)
    kinds = [e.kind for e in r.events]
    assert "enter" in kinds and "exit" in kinds


def test_deviation_numbers_for_known_poses():
    r = rehearsal()
    out = r.insert_at((3.0, 4.0, 0.0), (0, 0, 1), t=0)  # 5 mm off the planned entry, parallel to the path
    assert out.entry_error_mm == pytest.approx(5)
    assert out.target_error_mm == pytest.approx(5)  # the line misses the target by 5 mm
    assert out.angle_deg == pytest.approx(0, abs=1e-9)
    out = r.advance(60, t=1)
    assert out.tip_to_target_mm == pytest.approx(5)
    assert out.depth_to_target_mm == pytest.approx(0)
    # aimed through the target from a wrong entry: line error 0, angle atan(5/60)
    out = r.insert_at((3.0, 4.0, 0.0), t=2)
    assert out.target_error_mm == pytest.approx(0, abs=1e-9)
    assert out.angle_deg == pytest.approx(math.degrees(math.atan2(5, 60)))
    # a pose: entry projected onto the new axis, depth to the tip
    out = r.set_pose((0, 0, 40), (0, 0, 1), t=3)
    np.testing.assert_allclose(out.entry_lps, [0, 0, 0], atol=1e-9)
    assert out.depth_mm == pytest.approx(40)


def test_the_clock_stamps_commands():
    clock = ManualClock(100.0)
    r = Rehearsal(PLAN, clearance(), instrument=NEEDLE, clock=clock)
    clock.advance(2.5)
    assert r.advance(1).t_s == pytest.approx(2.5)
    clock.advance(1.0)
    assert r.pivot(1, 0).t_s == pytest.approx(3.5)


def test_script_parsing_and_errors():
    steps = parse_script(json.dumps([{"t": 0, "cmd": "advance", "mm": 5},
                                     {"t": 1, "tip": [0, 0, 9], "direction": [0, 0, 1]}]))
    assert [s["cmd"] for s in steps] == ["advance", "pose"]
    with pytest.raises(SurgtwinError, match="goes back"):
        parse_script([{"t": 2, "cmd": "advance", "mm": 1}, {"t": 1, "cmd": "advance", "mm": 1}])
    with pytest.raises(SurgtwinError, match="unknown command"):
        parse_script([{"t": 0, "cmd": "jump"}])
    with pytest.raises(SurgtwinError, match="missing mm"):
        parse_script([{"t": 0, "cmd": "advance"}])
    with pytest.raises(SurgtwinError, match="not valid JSON"):
        parse_script("[{")


def test_run_script_drives_the_instrument():
    r = rehearsal()
    outs = run_script(r, [{"t": 0, "cmd": "advance", "mm": 5}, {"t": 1, "cmd": "pivot", "a_deg": 2},
                          {"t": 2, "cmd": "retract", "mm": 1}, {"t": 3, "tip": [0, 0, 12], "direction": [0, 0, 1]}])
    assert [round(o.depth_mm, 6) for o in outs] == [5, 5, 4, 12]
    assert [o.t_s for o in outs] == [0, 1, 2, 3]


def perfect():
    r = rehearsal()
    run_script(r, straight_script(PLAN, step_mm=2.0, speed_mm_s=4.0))
    return r


def crossing():
    """Aimed through the vessel, then corrected: enters the vessel, pivots, reverses."""
    r = rehearsal()
    run_script(r, [{"t": 0, "cmd": "insert", "entry": [0, 0, 0], "direction": [5, 0, 30]},
                   *({"t": 1 + k, "cmd": "advance", "mm": 3} for k in range(11)),
                   *({"t": 12 + k, "cmd": "retract", "mm": 3} for k in range(11)),
                   {"t": 24, "cmd": "pivot", "a_deg": 0, "b_deg": 0},
                   {"t": 25, "tip": [0, 0, 0], "direction": [0, 0, 1]},
                   *({"t": 26 + k, "cmd": "advance", "mm": 6} for k in range(10))])
    return r


def test_recording_round_trip_through_json():
    rec = crossing().recording()
    d = json.loads(json.dumps(rec.to_record()))
    back = Recording.from_record(d)
    assert len(back) == len(rec) and back.commands == rec.commands
    np.testing.assert_allclose(back.tip_lps, rec.tip_lps, atol=1e-3)
    for k in rec.distances_mm:
        np.testing.assert_allclose(back.distances_mm[k], rec.distances_mm[k], atol=1e-3)
    assert [e.to_record() for e in back.events] == [e.to_record() for e in rec.events]
    assert back.to_record() == d
    with pytest.raises(SurgtwinError):
        Recording.from_record({"schema": 99})


def test_replay_interpolates_between_samples():
    rec = perfect().recording()
    rp = Replay(rec)
    assert rp.duration_s == pytest.approx(15.0)  # 60 mm at 4 mm/s
    mid = rp.at(0.25)  # halfway through the first 2 mm step (0 -> 0.5 s)
    assert mid.depth_mm == pytest.approx(1.0)
    np.testing.assert_allclose(mid.tip_lps, [0, 0, 1])
    assert rp.at(-5).depth_mm == 0 and rp.at(99).depth_mm == pytest.approx(60)
    exact = Replay(rec, clearance()).at(7.3)
    interp = rp.at(7.3)
    assert exact.depth_mm == pytest.approx(interp.depth_mm)
    assert exact.distances_mm["vessel"] == pytest.approx(interp.distances_mm["vessel"], abs=0.2)
    # directions interpolate on the unit sphere
    pr = rehearsal()
    pr.advance(10, t=0)
    pr.pivot(20, 0, t=1)
    half = Replay(pr.recording()).at(0.5)
    assert np.linalg.norm(half.direction) == pytest.approx(1)
    assert half.angle_deg == pytest.approx(10, abs=1e-6)
    assert [e.kind for e in Replay(crossing().recording()).timeline()][:2] == ["enter_margin", "enter"]
    assert len(rp.frames(2.0)) == 31


def test_score_perfect_beats_crossing_and_sums_as_documented():
    good, bad = score_recording(perfect().recording()), score_recording(crossing().recording())
    assert good.total > bad.total + 20
    assert good.components["accuracy"] == pytest.approx(100)
    assert good.components["smoothness"] == pytest.approx(100)
    assert bad.details["n_enter"] >= 1 and "vessel" in bad.details["structures_entered"]
    assert bad.details["worst_penetration_mm"] > 0 and bad.details["reversals"] >= 2
    assert bad.components["safety"] < good.components["safety"]
    for s in (good, bad):
        assert sum(s.weights.values()) == pytest.approx(1)
        assert s.total == pytest.approx(sum(s.weights[k] * s.components[k] for k in COMPONENTS))
        assert all(0 <= s.components[k] <= 100 for k in COMPONENTS)
    rec = good.to_record()
    assert set(rec) == {"total", "components", "weights", "details", "settings", "note"}


def test_score_formulas_on_known_numbers():
    r = rehearsal()
    run_script(r, [{"t": 0, "cmd": "insert", "entry": [3, 4, 0], "direction": [0, 0, 1]},
                   {"t": 120, "cmd": "advance", "mm": 60}])
    s = score_recording(r.recording(), ScoreSettings(reference_time_s=60.0))
    # tip 5 mm from the target, entry 5 mm off, parallel: 100 * (0.6 * 0.5 + 0.2 * 0.5 + 0.2 * 1)
    assert s.components["accuracy"] == pytest.approx(60.0)
    assert s.components["time"] == pytest.approx(50.0)  # 60 s reference / 120 s


def test_progress_table_and_trend():
    recs = [{"id": f"R{k}", "started": f"2026-01-0{k}T10:00:00+00:00",
             "score": {"total": t, "components": dict.fromkeys(COMPONENTS, t)}}
            for k, t in ((3, 80.0), (1, 40.0), (2, 60.0))]
    table = progress_table(recs)
    assert [r["id"] for r in table["rows"]] == ["R1", "R2", "R3"]
    assert [r["attempt"] for r in table["rows"]] == [1, 2, 3]
    assert table["trend"]["slope_per_attempt"] == pytest.approx(20)
    assert table["trend"]["direction"] == "improving" and table["trend"]["best_attempt"] == 3
    assert progress_table([])["trend"]["direction"] == "n/a"


def test_pose_update_time_under_5_ms():
    r = rehearsal()
    r.advance(20, t=0)
    times = []
    for k in range(300):
        out = r.pivot(0.05 * ((k % 7) - 3), 0.05, t=1 + k * 0.02) if k % 2 else r.advance(0.1, t=1 + k * 0.02)
        times.append(out.elapsed_ms)
    assert float(np.median(times)) < 5.0
