"""`surgtwin rehearse`: rehearse a planned trajectory from a script, see a trainee's progress, replay.

    surgtwin rehearse CASE.stwin --trajectory ID --script poses.json [--trainee NAME] [--json OUT]
    surgtwin rehearse CASE.stwin --progress [--trajectory ID] [--trainee NAME] [--json OUT]
    surgtwin rehearse CASE.stwin --replay R1 [--fps 2] [--json OUT]
    surgtwin rehearse CASE.stwin --list

A script is a JSON list of timed steps (seconds from the start): ``{"t": 0, "cmd": "insert", "entry":
[x, y, z]}``, ``{"t": 2, "cmd": "advance", "mm": 5}``, ``{"t": 3, "cmd": "retract", "mm": 1}``,
``{"t": 4, "cmd": "pivot", "a_deg": 2, "b_deg": 0}`` or a pose ``{"t": 5, "tip": [x, y, z],
"direction": [dx, dy, dz]}`` (LPS mm). The rehearsal is stored in the case (its ``rehearsals``);
the command prints the collision events and the score with its breakdown. The score is a
planning/teaching aid, not a validated assessment. NOT FOR CLINICAL USE.
"""

from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("rehearse", help="rehearse a planned trajectory (scripted), progress across attempts, replay",
                       description="Rehearsal of a planned instrument trajectory on the patient's twin: events, "
                                   "score and progress. A teaching aid. NOT FOR CLINICAL USE.")
    p.add_argument("case", help="a .stwin case holding the trajectory")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--script", metavar="POSES.json", help="run this scripted rehearsal and store it")
    what.add_argument("--progress", action="store_true", help="the attempts on a trajectory and their trend")
    what.add_argument("--replay", metavar="ID", help="print the timeline of a stored rehearsal")
    what.add_argument("--list", action="store_true", help="list the stored rehearsals")
    p.add_argument("--trajectory", metavar="ID", help="trajectory id or name (required with --script)")
    p.add_argument("--trainee", metavar="NAME", help="who rehearses (stored with the attempt; filters --progress)")
    p.add_argument("--fps", type=float, default=0.0, help="with --replay: also print the pose at this rate")
    p.add_argument("--json", metavar="OUT", help="write the result as JSON")
    p.add_argument("--allow-stale", action="store_true", help="use stale labels/trajectories anyway")
    return p


def run(args) -> int:
    if args.script is not None:
        return _script(args)
    if args.progress:
        return _progress(args)
    if args.replay is not None:
        return _replay(args)
    return _list(args)


def _write(path: str | None, data: dict) -> None:
    import json

    if path is not None:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {out}")


def _open(args):
    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.services import pipeline

    if not pipeline.is_case_path(args.case):
        raise SurgtwinError("is not a saved case", path=args.case,
                            hint="plan a trajectory on a .stwin case first (surgtwin plan trajectory)")
    return pipeline.load_case(args.case, progress=ProgressBar("opening"))


def print_score(score: dict) -> None:
    comps, w, d = score["components"], score["weights"], score["details"]
    print(f"score {score['total']:.1f} / 100")
    for k in ("accuracy", "safety", "time", "smoothness"):
        print(f"  {k:<11} {comps[k]:6.1f}  x {w[k]:.2f}")
    print(f"  final: tip to target {d['tip_to_target_mm']:.1f} mm, entry error {d['entry_error_mm']:.1f} mm, "
          f"line misses target by {d['target_error_mm']:.1f} mm, angle {d['angle_deg']:.1f} deg")
    entered = f" ({', '.join(d['structures_entered'])})" if d["structures_entered"] else ""
    print(f"  safety: {d['n_enter']} structure entries{entered}, "
          f"{d['n_enter_margin']} margin entries, worst penetration {d['worst_penetration_mm']:.1f} mm, "
          f"{d['time_in_margin_s']:.1f} s inside margins")
    print(f"  time {d['duration_s']:.1f} s (reference {d['reference_time_s']:.0f} s); "
          f"{d['reversals']} reversals, {d['pivot_deg']:.1f} deg pivoted inside")
    print(f"  ({score['note']})")


def print_events(events: list) -> None:
    from surgtwin.core.plan.rehearsal import as_events

    evs = as_events(events)
    print(f"events ({len(evs)}):" if evs else "events: none (no structure or margin entered)")
    for e in evs:
        print("  " + e.describe())


def _script(args) -> int:
    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.core.plan.rehearsal import parse_script
    from surgtwin.services import pipeline

    if args.trajectory is None:
        raise SurgtwinError("--script needs --trajectory ID", hint="see the case's trajectories: surgtwin case show")
    path = Path(args.script)
    if not path.is_file():
        raise SurgtwinError("does not exist", path=path, hint="give a JSON list of timed steps")
    try:
        script = parse_script(path.read_text())
    except SurgtwinError as exc:
        raise SurgtwinError(exc.reason, path=path, hint=exc.hint) from None
    case = _open(args)
    out = pipeline.run_step(case, "rehearsal", allow_stale=args.allow_stale, progress=ProgressBar("rehearsal"),
                            trajectory=args.trajectory, script=script, trainee=args.trainee or "")
    rec = out.result
    pipeline.save_case(case, args.case, progress=ProgressBar("saving"))
    f = rec["final"]
    print(f"rehearsal {rec['id']} of trajectory {rec['trajectory_name']} ({rec['trajectory_id']})"
          f"{' by ' + rec['trainee'] if rec['trainee'] else ''}: {len(rec['recording']['samples']['t_s'])} poses, "
          f"{rec['duration_s']:.1f} s, instrument {rec['instrument']['name']}")
    print(f"final: depth {f['depth_mm']:.1f} mm, tip to target {f['tip_to_target_mm']:.1f} mm, "
          f"entry error {f['entry_error_mm']:.1f} mm, angle {f['angle_deg']:.1f} deg")
    print_events(rec["recording"]["events"])
    print_score(rec["score"])
    t = rec["timing"]
    print(f"pose update: median {t['pose_update_ms_median']:.2f} ms, max {t['pose_update_ms_max']:.2f} ms")
    _write(args.json, {"case": str(args.case), "rehearsal": rec})
    print("NOT FOR CLINICAL USE")
    return 0


def _progress(args) -> int:
    from surgtwin.services import rehearsal as svc

    case = _open(args)
    table = svc.progress(case, args.trajectory, args.trainee)
    who = f" by {args.trainee}" if args.trainee else ""
    if not table["rows"]:
        print(f"no rehearsals{who} of {table['trajectory_id'] or 'any trajectory'} yet")
    else:
        print(f"attempts on trajectory {table['trajectory_id']}{who}:")
        print(f"  {'#':>3}  {'id':<5} {'date':<26} {'total':>6} {'accur.':>7} {'safety':>7} {'time':>6} {'smooth':>7}")
        for r in table["rows"]:
            print(f"  {r['attempt']:>3}  {r['id']:<5} {r['date']:<26} {r['total']:6.1f} {r['accuracy']:7.1f} "
                  f"{r['safety']:7.1f} {r['time']:6.1f} {r['smoothness']:7.1f}")
        tr = table["trend"]
        slope = "n/a" if tr["slope_per_attempt"] is None else f"{tr['slope_per_attempt']:+.1f} points/attempt"
        print(f"trend: {tr['direction']} ({slope}); best attempt {tr['best_attempt']} ({tr.get('best_total', 0):.1f})")
    _write(args.json, {"case": str(args.case), "progress": table})
    return 0


def _replay(args) -> int:
    from surgtwin.services import rehearsal as svc

    case = _open(args)
    rec = svc.rehearsal(case, args.replay)
    rp = svc.replay(case, args.replay)
    print(f"replay of {rec['id']} (trajectory {rec['trajectory_name']}, {rec['trainee'] or 'no trainee'}, "
          f"{rec['started']}): {rp.duration_s:.1f} s")
    print_events([e.to_record() for e in rp.timeline()])
    frames = []
    if args.fps and args.fps > 0:
        for r in rp.frames(args.fps):
            frames.append(r.to_record())
            close = min(r.distances_mm.values(), default=float("inf"))
            print(f"  {r.t_s:7.2f} s  depth {r.depth_mm:6.1f} mm  to target {r.tip_to_target_mm:6.1f} mm  "
                  f"closest {close:+6.1f} mm  {','.join(r.violations)}")
    print_score(rec["score"])
    _write(args.json, {"case": str(args.case), "id": rec["id"], "duration_s": rp.duration_s,
                       "timeline": [e.to_record() for e in rp.timeline()], "frames": frames, "score": rec["score"]})
    return 0


def _list(args) -> int:
    from surgtwin.services import rehearsal as svc

    case = _open(args)
    recs = svc.rehearsals(case)
    if not recs:
        print("no rehearsals recorded yet")
    for r in recs:
        print(f"{r['id']:<5} {r['trajectory_id']:<8} {r['trainee'] or '-':<16} {r['started']}  "
              f"{r['duration_s']:6.1f} s  score {r['score']['total']:5.1f}  "
              f"{len(r['recording']['events'])} events")
    _write(args.json, {"case": str(args.case), "rehearsals": [
        {k: r[k] for k in ("id", "trajectory_id", "trainee", "started", "duration_s")} | {"score": r["score"]["total"]}
        for r in recs]})
    return 0
