#!/usr/bin/env python
"""Desktop-app figures: cold start to first painted window, MPR slice change, 3D frame time.

    python scripts/bench/app_bench.py [--json OUT.json] [--case surgtwin/data/samples/<case>]

Needs an X server for the 3D view; without DISPLAY it re-runs itself under ``xvfb-run``.
Goals (issue 6): cold start <= 2.5 s; MPR slice change <= 30 ms on 512x512x300.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import sys, time
t_import = time.time()
from surgtwin.ui.app import create_app
app = create_app()
from PySide6.QtCore import QEvent, QObject, QTimer
from surgtwin.ui.main_window import MainWindow
win = MainWindow()
class F(QObject):
    def eventFilter(self, o, e):
        if e.type() == QEvent.Type.Paint and not getattr(self, "done", False):
            self.done = True
            t = time.time()  # the first paint of the window's views
            QTimer.singleShot(0, lambda: (print("PAINTED", t, flush=True), app.quit()))
        return False
f = F(); win.views.slices["axial"].installEventFilter(f)
win.show()
app.exec()
"""


def cold_start(n: int = 3) -> list[float]:
    out = []
    env = dict(os.environ, SURGTWIN_SETTINGS=str(Path("/tmp") / f"surgtwin-bench-{os.getpid()}.ini"),
               SURGTWIN_SAMPLES="/nonexistent")
    for _ in range(n):
        t0 = time.time()
        r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, cwd=ROOT,
                           timeout=120)
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("PAINTED")]
        if not line:
            raise SystemExit(f"cold start child failed:\n{r.stderr[-2000:]}")
        out.append(float(line[0].split()[1]) - t0)
    return out


def _settle(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)


class _PaintCounter:
    def __init__(self, widgets):
        from PySide6.QtCore import QEvent, QObject

        outer = self

        class F(QObject):
            def eventFilter(self, o, e):  # noqa: N802
                if e.type() == QEvent.Type.Paint:
                    outer.painted.add(o.objectName())
                return False

        self.painted: set[str] = set()
        self.filter = F()
        for w in widgets:
            w.installEventFilter(self.filter)


def _slice_change_ms(app, win, view, direction: int) -> float:
    """One mouse-wheel slice step as the user sees it: from the wheel event's delivery until every
    visible MPR view has repainted, the window's backing store was flushed, and the X server has
    processed it (a 1x1 grab of the window is a round trip that waits for all earlier requests)."""
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QGuiApplication, QWheelEvent

    views = [v for v in win.views.slices.values() if v.isVisible()]
    counter = getattr(win, "_bench_paints", None)
    if counter is None:
        counter = win._bench_paints = _PaintCounter(win.views.slices.values())
    _settle(app, 0.05)  # nothing pending from the previous step (3D frames included)
    counter.painted.clear()
    p = QPointF(view.width() / 2, view.height() / 2)
    ev = QWheelEvent(p, view.mapToGlobal(p), QPoint(), QPoint(0, 120 * direction), Qt.MouseButton.NoButton,
                     Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    t = time.perf_counter()
    QGuiApplication.sendEvent(view, ev)
    names = {v.objectName() for v in views}
    deadline = t + 5.0
    while not names <= counter.painted and time.perf_counter() < deadline:
        app.processEvents()
    QGuiApplication.primaryScreen().grabWindow(win.winId(), 0, 0, 1, 1)
    return (time.perf_counter() - t) * 1000


def big_volume(shape=(300, 512, 512)):
    import numpy as np

    from surgtwin.core.types import Label, LabelMap, LabelTable, Volume

    rng = np.random.default_rng(0)
    arr = rng.integers(-200, 300, size=shape, dtype=np.int16)
    lab = np.zeros(shape, np.uint8)
    lab[50:250, 100:300, 100:250] = 1
    lab[80:200, 250:400, 280:420] = 2
    aff = np.array([[0, 0, 0.7, -180], [0, 0.7, 0, -180], [1.0, 0, 0, -150], [0, 0, 0, 1]], float)
    table = LabelTable([Label(1, "liver", (221, 130, 101)), Label(2, "spleen", (157, 108, 162))])
    return Volume(arr, aff, None, "CT"), LabelMap(lab, aff.copy(), None, None, {}, labels=table)


def mpr_and_3d(case: str | None) -> dict:
    import numpy as np

    from surgtwin.ui.app import create_app

    app = create_app()
    from surgtwin.ui.main_window import MainWindow

    os.environ.setdefault("SURGTWIN_SETTINGS", f"/tmp/surgtwin-bench-{os.getpid()}.ini")
    win = MainWindow()
    win.resize(1500, 920)
    win.show()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    res = {}
    vol, lab = big_volume()
    win.session.set_volume(vol, source={})
    win.session.set_labels(lab)
    app.processEvents()
    prof = None
    if os.environ.get("BENCH_PROFILE"):
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    for layout in ("2x2", "1x3"):
        win.set_layout(layout)
        _settle(app, 0.3)
        for plane, view in win.views.slices.items():
            own = []
            for n in range(10):  # the slice's own extraction + windowing + overlay, no Qt
                view.step(1 if n % 2 == 0 else -1)
                view._image_key = None
                t1 = time.perf_counter()
                view.render_image()
                own.append((time.perf_counter() - t1) * 1000)
            _settle(app, 0.3)
            times = [_slice_change_ms(app, win, view, 1 if n % 2 == 0 else -1) for n in range(20)]
            res[f"mpr_{plane}_{layout}_ms"] = {"median": statistics.median(times),
                                               "p95": float(np.percentile(times, 95)),
                                               "slice_image_median": statistics.median(own)}
    win.set_layout("2x2")
    if prof is not None:
        import pstats

        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    # 3D: the sample case's meshes (or the synthetic phantom's)
    from surgtwin.services import pipeline

    if case is None:
        cases = pipeline.sample_cases()
        case = str(cases[0].folder) if cases else None
    if case is not None:
        v, lab3, _ = pipeline.open_case(case)
        source = Path(case).name
    else:
        from surgtwin.services.demo import phantom

        v, lab3 = phantom()
        source = "synthetic phantom 96x160x160 (no sample case found)"
    win.session.set_volume(v, source={})
    win.session.set_labels(lab3)
    v3 = win.views.view3d
    v3.ensure_plotter()
    variants = [("display", lambda: pipeline.display_meshes(lab3))] if hasattr(pipeline, "display_meshes") else []
    if not os.environ.get("BENCH_SKIP_FULL"):
        variants.insert(0, ("full", lambda: pipeline.build_meshes(lab3)))
    for kind, build in variants:  # full resolution (export) vs the decimated display meshes, same run
        t = time.perf_counter()
        meshes = build()
        build_s = time.perf_counter() - t
        win.session.set_meshes(meshes)
        v3.standard_view("A")
        v3.render_now()
        _settle(app, 0.3)
        cam = v3.plotter.camera
        times = []
        for _ in range(15):
            cam.Azimuth(9)
            t = time.perf_counter()
            v3.render_now()
            times.append((time.perf_counter() - t) * 1000)
        # slice steps with this scene on screen (the 3D crosshair follows once scrolling pauses)
        steps = [_slice_change_ms(app, win, win.views.slices["axial"], 1 if n % 2 == 0 else -1) for n in range(10)]
        w, h = v3.canvas.width(), v3.canvas.height()
        res[f"3d_{kind}"] = {"case": source, "structures": len(meshes), "build_s": build_s,
                             "triangles": int(sum(len(m.faces) for m in meshes.values())),
                             "viewport_px": f"{w}x{h}", "frame_ms_median": statistics.median(times),
                             "frame_ms_p95": float(np.percentile(times, 95)),
                             "slice_change_ms_median": statistics.median(steps),
                             "renderer": _renderer(v3.plotter)}
    win.close()
    return res


def _renderer(plotter) -> str:
    try:
        info = plotter.render_window.ReportCapabilities()
        for line in info.splitlines():
            if "OpenGL renderer string" in line:
                return line.split(":", 1)[1].strip()
    except Exception:  # noqa: BLE001
        pass
    return "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the figures as JSON here")
    ap.add_argument("--case", help="case folder whose meshes are drawn in 3D (default: first sample case)")
    args = ap.parse_args()
    if not os.environ.get("DISPLAY"):
        if shutil.which("xvfb-run") is None:
            raise SystemExit("no DISPLAY and no xvfb-run: the 3D view needs an X server")
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, *sys.argv]
        return subprocess.call(cmd)
    cs = cold_start(int(os.environ.get("BENCH_COLD_RUNS", "3")))
    res = {"cold_start_s": {"runs": cs, "median": statistics.median(cs)}}
    res.update(mpr_and_3d(args.case))
    print(f"surgtwin app bench  (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f})")
    ok = "OK " if res["cold_start_s"]["median"] <= 2.5 else "SLOW"
    print(f"  cold start to first painted window: median {res['cold_start_s']['median']:.2f} s "
          f"(runs {', '.join(f'{x:.2f}' for x in cs)})  goal <= 2.5 s  [{ok.strip()}]")
    for layout, note in (("2x2", "3D view on screen"), ("1x3", "MPR only")):
        for plane in ("axial", "coronal", "sagittal"):
            r = res[f"mpr_{plane}_{layout}_ms"]
            ok = "OK" if r["median"] <= 30 else "SLOW"
            print(f"  MPR slice change 512x512x300, {layout} ({note}), {plane:8s}: median {r['median']:.1f} ms, "
                  f"p95 {r['p95']:.1f} ms (slice image {r['slice_image_median']:.1f} ms)  goal <= 30 ms  [{ok}]")
    for kind in ("full", "display"):
        d = res.get(f"3d_{kind}")
        if d is None:
            continue
        print(f"  3D frame, {kind} meshes ({d['case']}: {d['structures']} structures, {d['triangles']:,} triangles, "
              f"{d['viewport_px']} px, {d['renderer']}): median {d['frame_ms_median']:.0f} ms, "
              f"p95 {d['frame_ms_p95']:.0f} ms; built in {d['build_s']:.1f} s; axial slice change with them on "
              f"screen: median {d['slice_change_ms_median']:.0f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
