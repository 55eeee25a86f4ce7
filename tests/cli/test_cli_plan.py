"""`surgtwin plan implant|checks|remove|families`: placing and checking implants on a saved case."""

from __future__ import annotations

import json

import pytest

from surgtwin.cli.main import main
from tests.cli.test_cli_case import one_line_error
from tests.core.plan.synthetic import CANAL_R, CANAL_X, COARSE, spine_block


@pytest.fixture(scope="module")
def case_path(tmp_path_factory):
    from surgtwin.core.case import Case
    from surgtwin.services import pipeline

    labels, ct, centre = spine_block(**COARSE)
    case = Case(ct, name="block")
    case.set_labels(labels)
    path = pipeline.save_case(case, tmp_path_factory.mktemp("plan") / "block.stwin")
    return path, centre


def pose(centre, x):
    return json.dumps({"origin_lps": [float(v) for v in centre + [x, 0, -20]], "axis_lps": [0, 0, 1]})


def test_families(capsys):
    assert main(["plan", "families"]) == 0
    out = capsys.readouterr().out
    assert "hip-stem" in out and "pedicle-screw" in out and "material cocr     E 210 GPa" in out
    assert main(["plan", "families", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {f["name"] for f in data["families"]} >= {"hip-stem", "valve-self-expanding"}
    assert data["materials"]["ti6al4v"]["youngs_modulus_gpa"] == 110.0


def test_implant_checks_remove(case_path, tmp_path, capsys):
    path, centre = case_path
    out_json = tmp_path / "screw.json"
    assert main(["plan", "implant", str(path), "--family", "pedicle-screw", "--size", "6.5x40",
                 "--pose", pose(centre, 8.0), "--name", "left screw", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "implant 1 (left screw): PASSED" in out and "breach depth" in out and "NOT FOR CLINICAL USE" in out
    rec = json.loads(out_json.read_text())["placement"]
    assert rec["checks"]["passed"] and rec["implant"]["size"] == "6.5x40"
    # 1 mm from the canal with a 3 mm margin asked for: fails (exit 3), and is saved all the same
    pose_file = tmp_path / "pose.json"
    pose_file.write_text(pose(centre, CANAL_X + CANAL_R + 1.0 + 5.5))
    assert main(["plan", "implant", str(path), "--family", "pedicle-screw", "--size", "6.5x40",
                 "--pose", f"@{pose_file}", "--margin", "spinal_canal=3"]) == 3
    out = capsys.readouterr().out
    assert "implant 2 (pedicle-screw 6.5x40): FAILED" in out
    assert any(ln.split()[:4] == ["FAIL", "distance", "to", "spinal_canal"] for ln in out.splitlines())
    assert main(["plan", "checks", str(path), "--json", str(tmp_path / "checks.json")]) == 3
    out = capsys.readouterr().out
    assert "implant 1 (left screw): PASSED" in out and "implant 2" in out
    checks = json.loads((tmp_path / "checks.json").read_text())["checks"]
    assert checks["1"]["passed"] is True and set(checks) == {"1", "2"}
    assert main(["case", "show", str(path)]) == 0
    assert "[ok] implants (records): implant-placement" in capsys.readouterr().out
    assert main(["plan", "remove", str(path), "--id", "2"]) == 0
    assert "removed implant 2; 1 left" in capsys.readouterr().out


@pytest.mark.parametrize("args, reason", [
    (["--family", "pedicle-screw", "--size", "6.5x40", "--vertebra", "L4"], "--vertebra needs --side"),
    (["--family", "pedicle-screw", "--size", "9x9", "--femur", "left"], "has no size '9x9'"),
    (["--family", "pedicle-screw"], "give --family and --size"),
    (["--family", "pedicle-screw", "--size", "6.5x40", "--pose", "{nope"], "--pose is not valid JSON"),
    (["--family", "pedicle-screw", "--size", "6.5x40", "--pose", "{}"], "has none of matrix"),
    (["--family", "pedicle-screw", "--size", "6.5x40", "--femur", "left"], "for hip stems"),
    (["--family", "pedicle-screw", "--size", "6.5x40", "--pose", "{}", "--json", "out.txt"], "unsupported output"),
    (["--family", "pedicle-screw", "--size", "6.5x40", "--margin", "canal"], "is not STRUCTURE=MM"),
    (["--family", "pedicle-screw", "--size", "6.5x40", "--pose", '{"translation_mm": [0, 0, 0]}', "--margin",
      "spinal_cana=3"], "no structure 'spinal_cana' to keep a margin from"),
])
def test_refusals_are_one_line(case_path, capsys, args, reason):
    path, _ = case_path
    assert main(["plan", "implant", str(path), *args]) == 2
    assert reason in one_line_error(capsys.readouterr().err)


@pytest.mark.slow
def test_sample_case_auto_stem_and_screw(tmp_path, capsys):
    from surgtwin import resources

    sample = resources.sample_root() / "abdomen-pelvis"
    if not (sample / "dicom").is_dir():
        pytest.skip("the abdomen-pelvis sample case is not installed")
    case = tmp_path / "ap.stwin"
    assert main(["case", "new", str(sample), "--out", str(case)]) == 0
    capsys.readouterr()
    assert main(["plan", "implant", str(case), "--family", "hip-stem", "--size", "4", "--femur", "left",
                 "--json", str(tmp_path / "stem.json")]) == 0
    out = capsys.readouterr().out
    assert "implant 1 (hip-stem 4 left): PASSED" in out
    stem = json.loads((tmp_path / "stem.json").read_text())["placement"]
    assert stem["method"] == "auto" and stem["notes"]["native_offset_mm"] > 30
    assert stem["checks"]["breach"]["volume_ml"] < 0.05
    assert main(["plan", "implant", str(case), "--family", "pedicle-screw", "--size", "6.5x45",
                 "--vertebra", "L4", "--side", "left"]) == 0
    assert "implant 2 (pedicle-screw 6.5x45 L4 left): PASSED" in capsys.readouterr().out
    assert main(["plan", "checks", str(case)]) == 0
