"""NIfTI/NRRD/MHA round trips keep LPS geometry; Volume/LabelMap basics; layering of core."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import surgtwin
from surgtwin.core.geometry import orientation_code, resample_to_spacing
from surgtwin.core.types import Label, LabelMap, LabelTable, Volume


def _oblique_volume():
    rng = np.random.default_rng(1)
    arr = rng.integers(-1000, 1000, size=(7, 9, 11)).astype(np.int16)
    th = np.radians(20)
    rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    a = np.eye(4)
    a[:3, :3] = np.column_stack([[0, 0, 2.5], rot @ [0, 0.8, 0], rot @ [0.6, 0, 0]])
    a[:3, 3] = [-12.5, 30.0, 101.0]
    return Volume(arr, a, modality="CT")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_round_trip_keeps_array_and_lps_affine(tmp_path, suffix):
    vol = _oblique_volume()
    out = surgtwin.save_volume(vol, tmp_path / f"v{suffix}")
    back = surgtwin.load_volume(out)
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-4)


def test_nifti_on_disk_is_ras(tmp_path):
    nib = pytest.importorskip("nibabel")
    vol = _oblique_volume()
    out = surgtwin.save_volume(vol, tmp_path / "v.nii.gz")
    img = nib.load(out)
    # nibabel's affine maps (i, j, k) = (col, row, slice) to RAS
    ras = img.affine @ np.array([3, 2, 1, 1.0])
    lps = vol.index_to_world([1, 2, 3])
    np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-4)


def test_volume_validation_and_geometry():
    with pytest.raises(surgtwin.SurgtwinError):
        Volume(np.zeros((2, 2)), np.eye(4))
    with pytest.raises(surgtwin.SurgtwinError):
        Volume(np.zeros((2, 2, 2)), np.zeros((4, 4)))
    v = _oblique_volume()
    np.testing.assert_allclose(v.spacing_mm, [2.5, 0.8, 0.6])
    axial = np.eye(4)
    axial[:3, :3] = np.column_stack([[0, 0, 1], [0, 1, 0], [1, 0, 0]])  # slices S, rows P, columns L
    assert orientation_code(axial) == "LPS"
    assert orientation_code(np.eye(4)) == "SPL"
    r = resample_to_spacing(v, [1.25, 0.8, 0.6])
    assert r.shape[0] == 13 and r.shape[1:] == v.shape[1:]
    np.testing.assert_allclose(r.array[::2], v.array, atol=1)


def test_labelmap_and_table(tmp_path):
    table = LabelTable([Label(1, "liver", (200, 100, 50), "SCT:10200004"), Label(2, "spleen")])
    arr = np.zeros((4, 4, 4), np.uint8)
    arr[1:3, 1:3, 1:3] = 1
    lm = LabelMap(arr, np.diag([2.0, 1.0, 1.0, 1.0]), labels=table)
    assert lm.volume_ml("liver") == pytest.approx(8 * 2 / 1000)
    table.save(tmp_path / "t.json")
    assert LabelTable.load(tmp_path / "t.json").names() == ["liver", "spleen"]
    with pytest.raises(surgtwin.SurgtwinError, match="no structure named"):
        lm.mask("kidney")
    with pytest.raises(surgtwin.SurgtwinError):
        LabelMap(arr.astype(float), np.eye(4), labels=table)
    (tmp_path / "bad.json").write_text('{"labels": [{"name": "x"}]}')
    with pytest.raises(surgtwin.SurgtwinError, match="bad.json"):
        LabelTable.load(tmp_path / "bad.json")


def test_core_imports_no_qt_vtk_torch():
    code = (
        "import sys, surgtwin, surgtwin.core.io, surgtwin.core.dicom, surgtwin.core.dicom.load, "
        "surgtwin.core.geometry, surgtwin.core.types, surgtwin.cli.main;"
        "surgtwin.cli.main.build_parser();"
        "bad=[m for m in ('PySide6','vtk','torch','monai','pyvista') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_core_package_has_no_qt_or_vtk_imports():
    """Layering: surgtwin.core never imports Qt, and VTK only inside functions (filters, no windows)."""
    from pathlib import Path

    root = Path(surgtwin.__file__).parent / "core"
    for py in root.rglob("*.py"):
        text = py.read_text()
        assert "PySide6" not in text and "pyvistaqt" not in text, py
        for line in text.splitlines():
            if line.startswith(("import vtk", "from vtk", "import torch", "import pyvista")):
                raise AssertionError(f"{py}: heavy import at module level: {line}")
