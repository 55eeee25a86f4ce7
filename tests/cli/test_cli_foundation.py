"""`surgtwin info`, `convert`, errors and start-up time of the command line."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import SimpleITK as sitk

from surgtwin.cli.main import main
from tests.dicom_factory import write_series


def test_info_lists_series_with_warnings(tmp_path, capsys):
    write_series(tmp_path / "d", shape=(6, 16, 16), name="a", positions_mm=[0, 2, 4, 8, 10, 12])
    write_series(tmp_path / "d", shape=(1, 16, 16), name="scout", image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    (tmp_path / "d" / "readme.txt").write_text("x")
    assert main(["info", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "2 series candidate(s)" in out and "NOT LOADABLE" in out and "localizer" in out
    assert "gap in the series" in out and "1 file(s) skipped" in out
    assert "PHANTOM" not in out  # patient-free summary
    assert main(["info", str(tmp_path / "d"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["shape_slices_rows_cols"][0] for s in data["series"]] == [7, 1]
    assert data["series"][0]["spacing_mm_slice_row_col"] == [2.0, 0.8, 0.7]


def test_convert_writes_nifti_with_same_geometry(tmp_path, capsys):
    t = write_series(tmp_path / "d", shape=(5, 12, 10), orientation=(0, 1, 0, 0, 0, -1))
    out = tmp_path / "out" / "ct.nii.gz"
    assert main(["convert", str(tmp_path / "d"), str(out)]) == 0
    img = sitk.ReadImage(str(out))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), t.hu)
    np.testing.assert_allclose(img.GetOrigin(), t.positions[0], atol=1e-4)
    assert "wrote" in capsys.readouterr().out


def test_user_errors_exit_2_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "surgtwin", "convert", str(tmp_path / "missing"), "x.nii.gz"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "no such file or folder" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "a.dcm").write_bytes(b"garbage" * 100)
    r = subprocess.run([sys.executable, "-m", "surgtwin", "convert", str(tmp_path / "g"), "x.nii.gz"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "a.dcm" in r.stderr and "Traceback" not in r.stderr


def test_help_is_fast_and_light():
    code = ("import sys, time; t=time.perf_counter(); from surgtwin.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit: pass\n"
            "print(time.perf_counter()-t, [m for m in ('torch','vtk','PySide6','SimpleITK') if m in sys.modules])")
    best = None
    for _ in range(3):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        best = wall if best is None else min(best, wall)
    last = r.stdout.strip().splitlines()[-1]
    assert last.endswith("[]"), last
    assert best < 1.5, f"`surgtwin --help` took {best:.2f} s including interpreter start"
