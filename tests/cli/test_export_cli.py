"""`surgtwin export CASE --dicom OUT/` and `surgtwin export CASE --import-seg FILE`."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from surgtwin.cli.main import main
from surgtwin.services import pipeline
from tests.core.test_dicom_export import PHI, blob_labels, phi_series


@pytest.fixture()
def sample_dir(tmp_path):
    """A sample-style case folder: dicom/ (with identifying values) plus labels.nii.gz and labels.json."""
    import SimpleITK as sitk

    from surgtwin.core.geometry import volume_to_sitk
    from surgtwin.core.types import Volume

    folder = tmp_path / "case"
    phi_series(folder / "dicom")
    vol = pipeline.load_volume(folder / "dicom")
    lm = blob_labels(vol)
    sitk.WriteImage(volume_to_sitk(Volume(lm.array, lm.affine)), str(folder / "labels.nii.gz"))
    lm.labels.save(folder / "labels.json")
    return folder, lm


def _no_phi(text: str) -> None:
    assert "[redacted]" not in text  # nothing identifying was even printed
    for value in PHI.values():
        assert value not in text


def test_export_then_import_back(sample_dir, tmp_path, capsys):
    folder, lm = sample_dir
    out = tmp_path / "out"
    assert main(["export", str(folder), "--dicom", str(out), "--no-snapshots"]) == 0
    text = capsys.readouterr()
    lines = text.out.splitlines()
    assert lines[0].startswith("SEG       seg.dcm: 3 segments") and lines[1].startswith("RTSTRUCT  rtstruct.dcm: 3 ROIs")
    assert f"wrote {out}" in text.out and "NOT FOR CLINICAL USE" in text.out
    _no_phi(text.out + text.err)
    assert sorted(p.name for p in out.iterdir()) == ["rtstruct.dcm", "seg.dcm"]

    stwin = tmp_path / "c.stwin"
    assert main(["case", "new", str(folder), "--out", str(stwin)]) == 0
    case = pipeline.load_case(stwin)
    case.set_labels(None)
    pipeline.save_case(case, stwin)
    capsys.readouterr()
    assert main(["export", str(stwin), "--import-seg", str(out / "rtstruct.dcm")]) == 0
    text = capsys.readouterr()
    assert "imported RTSTRUCT rtstruct.dcm: 3 structures" in text.out
    _no_phi(text.out + text.err)
    back = pipeline.load_case(stwin)
    np.testing.assert_array_equal(back.labels.array, lm.array)
    assert back.labels.labels.names() == ["liver", "kidney_left", "tumour"]
    assert back.item("labels").provenance.parameters["file"] == "rtstruct.dcm"

    new = tmp_path / "n.stwin"  # from a DICOM folder: --save says where the case goes
    assert main(["export", str(folder / "dicom"), "--import-seg", str(out / "seg.dcm"), "--save", str(new)]) == 0
    np.testing.assert_array_equal(pipeline.load_case(new).labels.array, lm.array)


def test_deidentified_export_and_refusals(sample_dir, tmp_path, capsys):
    folder, _ = sample_dir
    out = tmp_path / "deid"
    assert main(["export", str(folder), "--dicom", str(out), "--deidentify", "--no-snapshots",
                 "--structures", "liver,tumour"]) == 0
    text = capsys.readouterr()
    assert "SEG       seg.dcm: 2 segments" in text.out and "CT        ct/: 10 de-identified source images" in text.out
    assert "(de-identified: PS3.15 Basic Profile)" in text.out
    _no_phi(text.out + text.err)
    stwin = tmp_path / "c.stwin"
    assert main(["case", "new", str(folder), "--out", str(stwin)]) == 0
    capsys.readouterr()
    # the de-identified objects carry a pseudonymous frame of reference: not the case's
    assert main(["export", str(stwin), "--import-seg", str(out / "seg.dcm")]) == 2
    assert "another frame of reference" in capsys.readouterr().err
    # the output folder is not empty
    assert main(["export", str(stwin), "--dicom", str(out), "--no-snapshots"]) == 2
    assert "not empty" in capsys.readouterr().err
    # a DICOM folder is not a case to save into
    assert main(["export", str(folder / "dicom"), "--import-seg", str(out / "seg.dcm")]) == 2
    assert "--save" in capsys.readouterr().err
    # options of the other mode
    assert main(["export", str(stwin), "--import-seg", str(out / "seg.dcm"), "--deidentify"]) == 2
    capsys.readouterr()
    # no labels: a bare DICOM folder (not named dicom/ beside labels)
    shutil.copytree(folder / "dicom", tmp_path / "bare")
    assert main(["export", str(tmp_path / "bare"), "--dicom", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "no labels to export" in err
    _no_phi(err)
