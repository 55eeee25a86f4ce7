"""`surgtwin segment`: label map with the input's geometry + label JSON beside it; clean errors."""

from __future__ import annotations

import json

import numpy as np

from surgtwin.cli.main import main
from tests.core.seg_helpers import ball_ct, make_tiny_bundle, oblique_affine


def _write(vol, path):
    import SimpleITK as sitk

    from surgtwin.core.geometry import volume_to_sitk

    sitk.WriteImage(volume_to_sitk(vol), str(path))
    return path


def _read(path):
    import SimpleITK as sitk

    from surgtwin.core.geometry import volume_from_sitk

    return volume_from_sitk(sitk.ReadImage(str(path)))


def test_segment_classical_writes_labels_and_json(tmp_path, capsys):
    vol = ball_ct(shape=(30, 48, 44), affine=oblique_affine(spacing=(2.0, 1.0, 1.1)), radius_mm=14, hu_in=320)
    src = _write(vol, tmp_path / "ct.nii.gz")
    seed = ",".join(f"{v:.3f}" for v in vol.index_to_world((np.asarray(vol.shape) - 1) / 2.0))
    out = tmp_path / "out" / "labels.nii.gz"
    rc = main(["segment", str(src), "--out", str(out), "--method", "classical", f"--seed={seed}"])
    assert rc == 0
    lab = _read(out)
    assert lab.shape == vol.shape
    np.testing.assert_allclose(lab.affine, vol.affine, atol=1e-5)
    side = json.loads((tmp_path / "out" / "labels.json").read_text())
    assert side["method"] == "classical" and side["disclaimer"] == "NOT FOR CLINICAL USE"
    names = {s["name"]: s for s in side["structures"]}
    assert "vessels" in names
    expected_ml = 4 / 3 * np.pi * 14**3 / 1000
    assert abs(names["vessels"]["volume_ml"] - expected_ml) / expected_ml < 0.1
    assert {d["name"] for d in side["labels"]} == {"bone", "vessels"}
    assert "NOT FOR CLINICAL USE" in capsys.readouterr().out


def test_segment_with_a_bundle_folder(tmp_path):
    bundle = make_tiny_bundle(tmp_path / "bundle")
    vol = ball_ct(shape=(20, 40, 36))
    src = _write(vol, tmp_path / "ct.nrrd")
    out = tmp_path / "seg.nii.gz"
    assert main(["segment", str(src), "--out", str(out), "--bundle", str(bundle)]) == 0
    lab = _read(out)
    assert lab.shape == vol.shape
    np.testing.assert_allclose(lab.affine, vol.affine, atol=1e-5)
    side = json.loads((tmp_path / "seg.json").read_text())
    assert side["method"] == "model" and side["model"].startswith("tiny")
    for s in side["structures"]:
        assert 0.0 <= s["confidence"] <= 1.0


def test_segment_errors_are_clean(tmp_path, capsys):
    assert main(["segment", str(tmp_path / "missing.nii.gz"), "--out", str(tmp_path / "x.nii.gz")]) == 2
    assert "no such file" in capsys.readouterr().err
    vol = ball_ct(shape=(10, 20, 20))
    src = _write(vol, tmp_path / "ct.nii.gz")
    bad = make_tiny_bundle(tmp_path / "mr", modality="MR")
    assert main(["segment", str(src), "--out", str(tmp_path / "y.nii.gz"), "--bundle", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "modality is 'MR'" in err and "Traceback" not in err
    assert main(["segment", str(src), "--out", str(tmp_path / "z.nii.gz"), "--seed", "1,2"]) == 2
