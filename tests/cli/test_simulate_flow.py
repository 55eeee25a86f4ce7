"""`surgtwin simulate flow` on the abdomen-pelvis sample case, on a saved case, on an image with a
binary mask, and its refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surgtwin.cli.main import main
from tests.cli.test_cli_case import one_line_error


@pytest.mark.slow
def test_flow_on_the_abdomen_sample(tmp_path, capsys):
    from surgtwin.services import pipeline

    out_json = tmp_path / "flow.json"
    folder = pipeline.sample_root() / "abdomen-pelvis"
    assert main(["simulate", "flow", str(folder), "--stent", "s0=20", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "segment  vessel" in out and "Pd/Pp" in out and "NOT FOR CLINICAL USE" in out
    assert "stenosis s0 on b0:" in out and "<- stent 20 mm" in out
    data = json.loads(out_json.read_text())
    assert data["key"] == "flow:aorta" and data["rows"][0]["vessel"] == "aorta"
    s0 = data["stenoses"][0]
    assert s0["diameter_percent"] == pytest.approx(61.7, abs=5.0)
    assert 0.9 < s0["pressure_ratio"] < 1.0
    assert data["stent"]["rows"][0]["pressure_drop_mmhg"] < data["rows"][0]["pressure_drop_mmhg"]


def test_flow_on_a_case_and_an_image_with_a_mask(tmp_path, capsys):
    import SimpleITK as sitk

    from surgtwin.core.geometry import volume_to_sitk
    from surgtwin.core.types import Volume
    from surgtwin.services import pipeline
    from tests.services.test_flow_step import y_case

    case = y_case()
    path = pipeline.save_case(case, tmp_path / "y.stwin")
    assert main(["simulate", "flow", str(path), "--pulsatile", "--cycles", "2"]) == 0
    out = capsys.readouterr().out
    assert "pulsatile, 2 cycles" in out and "inlet pressure" in out
    assert main(["case", "show", str(path)]) == 0
    assert "flow:aorta" in capsys.readouterr().out
    # an image and a binary mask of the aorta alone
    ct_path, mask_path = tmp_path / "ct.nii.gz", tmp_path / "mask.nii.gz"
    sitk.WriteImage(volume_to_sitk(case.volume), str(ct_path))
    mask = Volume((case.labels.array == 1).astype(np.uint8), case.labels.affine)
    sitk.WriteImage(volume_to_sitk(mask), str(mask_path))
    assert main(["simulate", "flow", str(ct_path), "--labels", str(mask_path), "--inflow", "25"]) == 0
    out = capsys.readouterr().out
    assert "inflow 25 ml/s" in out and "b0 " in out


def test_flow_refusals(tmp_path, capsys):
    from surgtwin.services import pipeline
    from tests.services.test_flow_step import y_case

    path = pipeline.save_case(y_case(), tmp_path / "y.stwin")
    assert main(["simulate", "flow", str(path), "--stent", "s0"]) == 2
    assert "is not SEG=DIAM_MM" in one_line_error(capsys.readouterr().err)
    assert main(["simulate", "flow", str(path), "--structures", "aorta,renal_artery_left"]) == 2
    assert "disconnected pieces" in one_line_error(capsys.readouterr().err)
    assert main(["simulate", "flow", str(tmp_path / "none.nii.gz")]) == 2
    assert "does not exist" in one_line_error(capsys.readouterr().err)
