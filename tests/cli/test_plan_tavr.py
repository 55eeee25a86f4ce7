"""`surgtwin plan tavr`: tables and JSON on the cardiac sample, a CT with a mask, and user errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surgtwin.cli.main import main
from surgtwin.services import pipeline
from tests.cli.test_cli_case import one_line_error


def test_sample_case_tables_and_json(tmp_path, capsys):
    out_json = tmp_path / "tavr.json"
    assert main(["plan", "tavr", str(pipeline.sample_root() / "cardiac-cta"), "--bsa", "1.9",
                 "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "annulus (labels;" in out and "perimeter" in out and "coronary height left / right" in out
    assert "balloon-expandable by annulus area" in out and "recommended 26" in out
    assert "self-expanding by annulus perimeter" in out and "recommended 29" in out
    assert "predicted mean gradient 10.1 mmHg" in out and "paravalvular-leak indicator" in out
    assert "NOT FOR CLINICAL USE" in out
    rec = json.loads(out_json.read_text())["tavr"]
    assert rec["measurement"]["perimeter_mm"] == pytest.approx(81.3765, rel=0.02)
    assert rec["valve"]["size"] == "26"


@pytest.mark.slow
def test_ct_image_with_a_binary_mask_and_a_saved_case(tmp_path, capsys):
    import SimpleITK as sitk

    from surgtwin.core.geometry import volume_to_sitk

    case = pipeline.new_case(pipeline.sample_root() / "cardiac-cta")
    ct_path, mask_path = tmp_path / "ct.nii.gz", tmp_path / "aorta.nii.gz"
    sitk.WriteImage(volume_to_sitk(case.volume), str(ct_path))
    vals = [case.labels.labels.by_name(n).value for n in ("aortic_root", "ascending_aorta")]
    mask = case.volume.with_array(np.isin(case.labels.array, vals).astype(np.uint8))
    sitk.WriteImage(volume_to_sitk(mask), str(mask_path))
    assert main(["plan", "tavr", str(ct_path), "--labels", str(mask_path), "--family", "self-expanding",
                 "--depth", "4", "--json", str(tmp_path / "o.json")]) == 0
    out = capsys.readouterr().out
    assert "annulus (mask;" in out and "virtual valve: self-expanding 29 mm at 4.0 mm" in out
    rec = json.loads((tmp_path / "o.json").read_text())["tavr"]
    assert rec["measurement"]["area_mm2"] == pytest.approx(518.6584, rel=0.02)
    # a saved case: the plan is stored in it
    stwin = pipeline.save_case(case, tmp_path / "c.stwin")
    assert main(["plan", "tavr", str(stwin), "--size", "29", "--family", "balloon-expandable"]) == 0
    assert pipeline.load_case(stwin).item("tavr").value["valve"]["size"] == "29"


def test_user_errors(tmp_path, capsys):
    sample = str(pipeline.sample_root() / "cardiac-cta")
    assert main(["plan", "tavr", sample, "--hinge", "1,2", "3,4,5", "6,7,8"]) == 2
    assert "--hinge '1,2' is not X,Y,Z" in one_line_error(capsys.readouterr().err)
    assert main(["plan", "tavr", sample, "--family", "mitral"]) == 2
    assert "unknown TAVR valve family" in one_line_error(capsys.readouterr().err)
    assert main(["plan", "tavr", str(tmp_path / "nothing.nii.gz")]) == 2
    assert "does not exist" in one_line_error(capsys.readouterr().err)
