"""`surgtwin mesh`: files per structure, meshes.json, tet mesh, and clean errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surgtwin.cli.main import main
from surgtwin.core.types import Label, LabelTable, Volume
from tests.core.test_mesh_surfaces import ellipsoids_labelmap, oblique_affine


@pytest.fixture()
def case(tmp_path):
    import SimpleITK as sitk

    from surgtwin.core.geometry import volume_to_sitk

    lm = ellipsoids_labelmap(oblique_affine(), shape=(50, 60, 84))
    d = tmp_path / "case"
    d.mkdir()
    sitk.WriteImage(volume_to_sitk(Volume(lm.array, lm.affine)), str(d / "labels.nii.gz"))
    ct = np.where(lm.array > 0, 60, -80).astype(np.int16)
    sitk.WriteImage(volume_to_sitk(Volume(ct, lm.affine)), str(d / "ct.nii.gz"))
    LabelTable([Label(1, "liver", (200, 80, 60)), Label(2, "kidney"), Label(3, "spleen")]).save(d / "labels.json")
    return d, lm


def test_mesh_command_writes_files_and_report(case, tmp_path, capsys):
    d, lm = case
    out = tmp_path / "out"
    rc = main(["mesh", str(d / "ct.nii.gz"), "--labels", str(d / "labels.nii.gz"), "--out", str(out),
               "--format", "ply", "--tet", "kidney", "--tet-size-mm", "3"])
    assert rc == 0
    report = json.loads((out / "meshes.json").read_text())
    assert set(report["structures"]) == {"liver", "kidney", "spleen"}
    for name, e in report["structures"].items():
        assert (out / e["file"]).is_file() and e["file"].endswith(".ply")
        assert e["watertight"] is True and e["triangles"] > 0
        assert e["voxel_volume_ml"] == pytest.approx(lm.volume_ml(name), rel=1e-3)
        assert len(e["centroid_lps"]) == 3
    assert report["structures"]["liver"]["volume_ml"] == pytest.approx(lm.volume_ml("liver"), rel=0.03)
    tet = report["tet"]
    assert tet["inverted"] == 0 and tet["elements"] > 100
    assert tet["mean_hu"]["kidney"] == pytest.approx(60, abs=20)
    assert all((out / f).is_file() for f in tet["files"])
    assert "wrote" in capsys.readouterr().out


def test_mesh_command_case_folder_defaults_to_stl(case, tmp_path):
    d, _ = case
    out = tmp_path / "o2"
    assert main(["mesh", str(d), "--out", str(out), "--structures", "liver"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["liver.stl", "meshes.json"]


def test_mesh_command_bad_input_is_a_clean_error(case, tmp_path, capsys):
    d, _ = case
    assert main(["mesh", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert main(["mesh", str(d), "--out", str(tmp_path / "o"), "--structures", "heart"]) == 2
    assert main(["mesh", str(tmp_path), "--out", str(tmp_path / "o")]) == 2  # no labels in folder
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "no such file" in err and "heart" in err and "--labels" in err
