"""The Segment action's method choice: bundled model, a hospital's MONAI bundle, or classical."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from surgtwin.services import pipeline
from tests.ui.conftest import wait_jobs

pytestmark = pytest.mark.gui


def _restart(win):
    """A second window reading the same settings file, as after quitting and starting the app again."""
    from surgtwin.ui.main_window import MainWindow
    from surgtwin.ui.settings import app_settings

    win.settings.sync()
    return MainWindow(settings=app_settings())


def _messages(win) -> list[str]:
    seen: list[str] = []
    win.statusBar().messageChanged.connect(seen.append)
    return seen


def _copy_bundle(dst):
    src = pipeline.bundled_model_dir()
    for sub in ("configs", "models"):
        shutil.copytree(src / sub, dst / sub)
    return dst


needs_bundled = pytest.mark.skipif(not pipeline.bundled_model_available(),
                                   reason="the bundled model's weights are not installed")


def test_default_is_bundled_model_when_installed_else_classical(window, monkeypatch, tmp_path, qtbot):
    from surgtwin.ui.main_window import MainWindow

    expected = "bundled" if pipeline.bundled_model_available() else "classical"
    assert window.seg_choice.method == expected
    assert window.seg_choice.actions[expected].isChecked()
    assert window.segment_button.menu() is window.seg_choice.menu
    assert [a.text() for a in window.seg_choice.menu.actions()] == [
        "Bundled model (surgtwin_ct_multiorgan)", "Hospital MONAI bundle…",
        "Classical (bone + contrast vessels, no model)"]
    # without the bundled weights: classical, and the bundled entry is greyed out with the reason
    monkeypatch.setenv("SURGTWIN_MODEL_DIR", str(tmp_path / "no_model"))
    win = MainWindow()
    qtbot.addWidget(win)
    assert win.seg_choice.method == "classical"
    assert not win.seg_choice.actions["bundled"].isEnabled()
    assert "Not installed" in win.seg_choice.actions["bundled"].toolTip()


def test_choice_persists_across_a_restart(window, qtbot):
    window.seg_choice.actions["classical"].trigger()
    assert window.seg_choice.method == "classical"
    win2 = _restart(window)
    qtbot.addWidget(win2)
    assert win2.seg_choice.method == "classical" and win2.seg_choice.actions["classical"].isChecked()
    assert win2.seg_choice.segment_kwargs() == {"method": "classical"}
    assert "classical" in win2.act_segment.toolTip()


@needs_bundled
def test_hospital_bundle_is_validated_then_remembered(window, qtbot, tmp_path, monkeypatch):
    from surgtwin.ui import segmentation_choice

    folder = _copy_bundle(tmp_path / "hospital_bundle")
    asked = []
    monkeypatch.setattr(segmentation_choice.QFileDialog, "getExistingDirectory",
                        lambda parent, title, start: asked.append(start) or str(folder))
    window.seg_choice.actions["hospital"].trigger()
    wait_jobs(qtbot, window, timeout=120000)
    assert window.jobs.last_state == "done", window.jobs.last_error
    assert window.seg_choice.method == "hospital"
    assert window.seg_choice.segment_kwargs() == {"method": "model", "bundle": str(folder)}
    assert str(folder) in window.act_segment.toolTip()
    win2 = _restart(window)
    qtbot.addWidget(win2)
    assert win2.seg_choice.method == "hospital" and win2.seg_choice.hospital_folder == str(folder)
    # the dialog opens where the last hospital bundle was
    win2.seg_choice.actions["hospital"].trigger()
    assert asked[-1] == str(folder)
    wait_jobs(qtbot, win2, timeout=120000)


def test_hospital_folder_that_is_not_a_bundle_is_refused_in_a_message(window, qtbot, tmp_path, monkeypatch):
    from surgtwin.ui import segmentation_choice

    before = window.seg_choice.method
    folder = tmp_path / "not a bundle"
    folder.mkdir()
    (folder / "readme.txt").write_text("hello")
    monkeypatch.setattr(segmentation_choice.QFileDialog, "getExistingDirectory", lambda *a: str(folder))
    window.seg_choice.actions["hospital"].trigger()
    wait_jobs(qtbot, window)
    box = window.last_dialog
    assert box is not None and box.isVisible() and box.objectName() == "errorBox"
    text = box.informativeText()
    assert str(folder) in text and "not a usable MONAI bundle" in text and "metadata.json" in text
    assert "Traceback" not in text
    box.close()
    # nothing changed: same method checked, nothing remembered
    assert window.seg_choice.method == before and window.seg_choice.actions[before].isChecked()
    assert not window.settings.value("segmentation/hospital_bundle")
    # cancelling the folder dialog changes nothing either
    monkeypatch.setattr(segmentation_choice.QFileDialog, "getExistingDirectory", lambda *a: "")
    window.seg_choice.actions["hospital"].trigger()
    assert not window.jobs.busy and window.seg_choice.actions[before].isChecked()


@needs_bundled
def test_tampered_hospital_bundle_is_refused(window, qtbot, tmp_path):
    folder = _copy_bundle(tmp_path / "tampered")
    weights = folder / "models" / "model.pt"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    window.seg_choice.choose_hospital_bundle(folder)
    wait_jobs(qtbot, window, timeout=120000)
    text = window.last_dialog.informativeText()
    assert "checksum mismatch" in text and str(folder) in text
    window.last_dialog.close()
    assert window.seg_choice.method != "hospital"


def test_classical_still_segments(loaded, qtbot):
    win = loaded
    seen = _messages(win)
    win.seg_choice.actions["classical"].trigger()
    win.session.case.set_labels(None)
    win.act_segment.trigger()
    wait_jobs(qtbot, win)
    assert win.jobs.last_state == "done", win.jobs.last_error
    res = win.last_segmentation
    assert res is not None and res.method == "classical"
    assert win.session.labels is not None and win.session.labels.shape == win.session.volume.shape
    assert {s.name for s in res.structures} <= {lab.name for lab in win.session.labels.labels}
    assert any("Segmented with the classical method" in m and "not for clinical use" in m for m in seen)
    assert win.seg_info.text().startswith("Labels: classical")


@pytest.mark.slow  # ~15 s on CPU when it is the first test to import torch and MONAI
@needs_bundled
def test_bundled_model_segments_a_small_ct_end_to_end(window, qtbot):
    from surgtwin.core.case import Case
    from surgtwin.core.phantom import generate_case

    ct = generate_case("head", 9100, pixel_mm=3.0, slice_mm=3.0).ct
    window.session.set_case(Case(ct))
    seen = _messages(window)
    window.segment("bundled")
    wait_jobs(qtbot, window, timeout=180000)
    assert window.jobs.last_state == "done", window.jobs.last_error
    res = window.last_segmentation
    assert res.method == "model" and res.model.startswith("surgtwin_ct_multiorgan")
    lab = window.session.labels
    assert lab.shape == ct.shape and np.allclose(lab.affine, ct.affine)
    assert "brain" in {s.name for s in res.structures}
    assert all(s.confidence is not None and s.volume_ml > 0 for s in res.structures)
    msg = next(m for m in seen if m.startswith("Segmented with the bundled model"))
    assert "surgtwin_ct_multiorgan" in msg and "lowest confidence" in msg and "planning aid, not for clinical use" in msg
    assert "confidence" in window.seg_info.toolTip() and "brain" in window.seg_info.toolTip()
    # a new image clears the note of how the labels were made
    window.session.set_case(Case(ct))
    assert window.seg_info.text() == ""
