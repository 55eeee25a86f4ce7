"""`surgtwin plan trajectory|instruments`: the table, the JSON, exit codes, saving into the case."""

from __future__ import annotations

import json

import pytest

from surgtwin.cli.main import main
from tests.core.test_trajectory import synthetic_case


@pytest.fixture(scope="module")
def case_path(tmp_path_factory):
    from surgtwin.services import pipeline

    return pipeline.save_case(synthetic_case(), tmp_path_factory.mktemp("traj") / "ball.stwin")


def test_instruments(capsys):
    assert main(["plan", "instruments"]) == 0
    out = capsys.readouterr().out
    assert "dbs-lead" in out and "1.27 mm" in out and "default margins" in out
    assert main(["plan", "instruments", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["instruments"]["biopsy-needle-14g"]["diameter_mm"] == 2.1 and data["margins_mm"]["brain_stem"] == 3.0


def test_suggest_table_json_and_bad_path(case_path, tmp_path, capsys):
    from surgtwin.services import pipeline

    out_json = tmp_path / "t.json"
    assert main(["plan", "trajectory", str(case_path), "--target", "tumour", "--entry-region", "skin",
                 "--suggest", "2", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "trajectory 1 (Biopsy needle 14G to tumour, suggested): PASS" in out
    assert any(ln.split()[:3] == ["PASS", "clearance", "vessels"] for ln in out.splitlines())
    assert "suggestions from the skin surface" in out and "NOT FOR CLINICAL USE" in out
    rec = json.loads(out_json.read_text())["trajectory"]
    assert rec["passed"] and len(rec["suggestion"]["ranked"]) == 2
    # through the ventricle: fails with exit 3, saved all the same
    assert main(["plan", "trajectory", str(case_path), "--target", "6,0,0", "--entry=-40,0,0",
                 "--margin", "vessels=3", "--name", "bad"]) == 3
    out = capsys.readouterr().out
    assert "trajectory 2 (bad, manual): FAIL" in out
    assert any(ln.split()[:3] == ["FAIL", "clearance", "ventricles"] for ln in out.splitlines())
    assert [r["name"] for r in pipeline.load_case(case_path).item("trajectories").value][1] == "bad"
    # a patch of the skin
    assert main(["plan", "trajectory", str(case_path), "--target", "tumour", "--entry-region", "skin:0,0,24:10",
                 "--suggest", "1"]) in (0, 3)
    assert "suggestions from the skin surface" in capsys.readouterr().out


def test_user_errors(case_path, capsys):
    assert main(["plan", "trajectory", str(case_path), "--target", "tumour"]) == 2
    assert "give one of --entry, --entry-region or --pedicle" in capsys.readouterr().err
    assert main(["plan", "trajectory", str(case_path), "--target", "1,2", "--entry", "0,0,0"]) == 2
    assert "is not X,Y,Z" in capsys.readouterr().err
    assert main(["plan", "trajectory", str(case_path), "--target", "tumour", "--entry", "0,0,30",
                 "--instrument", "drill"]) == 2
    assert "no instrument 'drill'" in capsys.readouterr().err
