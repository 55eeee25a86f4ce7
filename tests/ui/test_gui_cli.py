"""`surgtwin gui PATH --screenshot OUT --quit-after S` end to end, as the README and scripts use it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def test_gui_command_saves_a_screenshot_with_a_rendered_3d_view(phantom_dir, tmp_path):
    out = tmp_path / "shot.png"
    env = dict(os.environ, SURGTWIN_SETTINGS=str(tmp_path / "s.ini"))
    r = subprocess.run([sys.executable, "-m", "surgtwin", "gui", str(phantom_dir / "image.nii.gz"),
                        "--screenshot", str(out), "--quit-after", "60"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert out.is_file() and "screenshot saved" in r.stdout
    from PySide6.QtGui import QImage

    img = QImage(str(out))
    assert img.width() >= 1000
    # the 3D view (top right of the 2x2 layout) holds rendered meshes, not a flat background
    colours = {img.pixelColor(x, y).name() for x in range(int(img.width() * 0.45), int(img.width() * 0.7), 7)
               for y in range(int(img.height() * 0.12), int(img.height() * 0.45), 7)}
    assert len(colours) > 40


def test_gui_command_with_a_bad_path_fails_cleanly(tmp_path):
    env = dict(os.environ, SURGTWIN_SETTINGS=str(tmp_path / "s.ini"))
    r = subprocess.run([sys.executable, "-m", "surgtwin", "gui", str(tmp_path / "missing.nii"),
                        "--screenshot", str(tmp_path / "x.png"), "--quit-after", "30"],
                       capture_output=True, text=True, timeout=90, env=env)
    assert "Traceback" not in r.stderr
    assert r.returncode == 2 and "missing.nii" in r.stderr
