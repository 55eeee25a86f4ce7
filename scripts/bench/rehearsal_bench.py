"""Rehearsal in the app: frames per second of the 3D scene while the instrument is driven, on the head
sample case (its display meshes on screen), under whatever OpenGL the machine has (llvmpipe here).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/bench/rehearsal_bench.py [--frames 120]

Per frame: one drive command through the Rehearsal panel (the engine's readouts, the panel's tables,
the instrument's matrix) and a 3D render. Baseline, same run: the bare 3D frame (the camera turned,
nothing else). Goal (issue 15): >= 20 frames/s; a pose update with all readouts <= 5 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def settle(app, seconds: float) -> None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        app.processEvents()
        time.sleep(0.01)


def run(frames: int = 120) -> dict:
    os.environ.setdefault("SURGTWIN_SETTINGS", f"/tmp/surgtwin-bench-{os.getpid()}.ini")
    from surgtwin.resources import sample_root
    from surgtwin.services import pipeline
    from surgtwin.ui.app import create_app
    from surgtwin.ui.main_window import MainWindow

    app = create_app()
    win = MainWindow(ask_on_close=False)
    win.resize(1500, 920)
    win.show()
    win.open_path(sample_root() / "head")
    while win.session.volume is None or win.jobs.busy or win.views.view3d.plotter is None:
        settle(app, 0.05)
    settle(app, 1.0)
    case = win.session.case
    pipeline.run_step(case, "trajectory", target="tumour", entry_region="skin", suggest=1)
    panel = win.panels["rehearsal"]
    win.docks["rehearsal"].raise_()
    panel.refresh()
    panel.start()
    v3 = win.views.view3d
    v3.render_now()
    settle(app, 0.5)
    tris = sum(len(m.faces) for m in win.session.meshes.values())
    bare = []
    for _ in range(30):
        v3.plotter.camera.Azimuth(3)
        t = time.perf_counter()
        v3.render_now()
        bare.append(time.perf_counter() - t)
    frame, update = [], []
    length = float(panel.run.rehearsal.plan.length_mm)
    step = 2 * length / frames
    for n in range(frames):
        t = time.perf_counter()
        if n % 10 == 9:
            panel.command("pivot", 0.5 if n % 20 == 9 else -0.5, 0.0)
        else:
            panel.command("advance" if n < frames // 2 else "retract", step)
        t1 = time.perf_counter()
        app.processEvents()
        v3.render_now()
        frame.append(time.perf_counter() - t)
        update.append(t1 - t)
    engine = list(panel.run.rehearsal.timings_ms)
    renderer = "unknown"
    try:
        for line in v3.plotter.render_window.ReportCapabilities().splitlines():
            if "OpenGL renderer string" in line:
                renderer = line.split(":", 1)[1].strip()
    except Exception:  # noqa: BLE001
        pass
    win.close()
    fm, bm = statistics.median(frame), statistics.median(bare)
    return {"frames": frames, "triangles": tris, "renderer": renderer,
            "viewport_px": f"{v3.width()}x{v3.height()}",
            "frame_ms_median": fm * 1e3, "fps_median": 1.0 / fm, "bare_frame_ms_median": bm * 1e3,
            "frame_over_bare": fm / bm, "panel_update_ms_median": statistics.median(update) * 1e3,
            "engine_readouts_ms_median": statistics.median(engine), "engine_readouts_ms_max": max(engine)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=120)
    args = ap.parse_args(argv)
    f = run(args.frames)
    print(f"head sample, {f['triangles']:,} display triangles, {f['viewport_px']} px 3D view, {f['renderer']}")
    print(f"  rehearsal frame (command + readouts + panel + 3D render): median {f['frame_ms_median']:.1f} ms "
          f"= {f['fps_median']:.1f} frames/s (goal >= 20)")
    print(f"  bare 3D frame (camera turn only, same run):              median {f['bare_frame_ms_median']:.1f} ms "
          f"-> rehearsal frame = {f['frame_over_bare']:.2f}x bare")
    print(f"  panel update per command (engine + tables + matrix):     median {f['panel_update_ms_median']:.2f} ms")
    print(f"  engine readouts per pose:                                median {f['engine_readouts_ms_median']:.2f} ms, "
          f"max {f['engine_readouts_ms_max']:.2f} ms (goal <= 5)")
    return 0 if f["fps_median"] >= 20 else 1


if __name__ == "__main__":
    sys.exit(main())
