"""`surgtwin simulate fem`: a stem placed automatically, the zone table, JSON, the what-if, refusals."""

from __future__ import annotations

import json

import pytest

from surgtwin.cli.main import main
from tests.cli.test_cli_case import one_line_error


@pytest.fixture()
def case_path(tmp_path):
    from surgtwin.core.case import Case
    from surgtwin.services import pipeline
    from tests.core.sim.synthetic import femur

    labels, ct = femur(spacing=2.5)
    case = Case(ct, name="femur")
    case.set_labels(labels)
    return pipeline.save_case(case, tmp_path / "femur.stwin")


def test_fem_places_a_stem_solves_and_saves(case_path, tmp_path, capsys):
    out_json = tmp_path / "fem.json"
    assert main(["simulate", "fem", str(case_path), "--implant", "hip-stem", "--size", "2", "--mesh-size-mm", "4",
                 "--load", "3xBW", "--body-weight-kg", "70", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "placing hip-stem size 2 with the automatic pose (femur left)" in out
    assert "hip joint force 3xBW = 2060 N" in out and "7 medial proximal (calcar)" in out
    assert "safety factor" in out and "NOT FOR CLINICAL USE" in out
    data = json.loads(out_json.read_text())  # strict JSON
    res = data["results"]["fem:1"]
    assert res["implant"]["size"] == "2" and res["structure"] == "femur_left"
    assert {z["zone"] for z in res["zones"]} >= {1, 2, 6, 7}
    assert main(["case", "show", str(case_path)]) == 0
    shown = capsys.readouterr().out
    assert "[ok] fem:1 (arrays): fem:linear-elastic-p1" in shown and "tet:femur_left,implant_1" in shown
    # again, now with the placed stem and a what-if of another size
    assert main(["simulate", "fem", str(case_path), "--implant", "1", "--mesh-size-mm", "4", "--compare", "4"]) == 0
    out = capsys.readouterr().out
    assert "placing" not in out and "fem:1:size-4: hip-stem size 4" in out and "percentage points" in out


@pytest.mark.parametrize("args, reason", [
    (["--implant", "hip-stem", "--load", "jogging"], "unknown load 'jogging'"),
    (["--implant", "hip-stem", "--calibration", "1"], "--calibration '1' is not A,B"),
    (["--implant", "hip-stem", "--calibration", "0,-1"], "positive slope"),
    (["--implant", "hip-stem", "--site", "skull"], "unknown density-modulus site 'skull'"),
    (["--implant", "hip-stem", "--mesh-size-mm", "0.1"], "--mesh-size-mm must be between"),
    (["--implant", "hip-stem", "--json", "out.txt"], "unsupported output"),
    (["--implant", "knee"], "unknown implant family 'knee'"),
    (["--implant", "pedicle-screw", "--vertebra", "L4"], "--vertebra needs --side"),
])
def test_refusals_are_one_line(case_path, capsys, args, reason):
    assert main(["simulate", "fem", str(case_path), *args]) == 2
    assert reason in one_line_error(capsys.readouterr().err)
