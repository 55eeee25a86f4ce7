"""CLI surface of the quality gate: `case show` prints flags, `case run` refuses, `case confirm` lets go."""

from __future__ import annotations

import json

from surgtwin.cli.main import main
from surgtwin.services import pipeline
from tests.services.test_quality_gate import _case


def test_show_run_confirm(tmp_path, capsys):
    path = pipeline.save_case(_case(liver_left=True), tmp_path / "g.stwin")
    assert main(["case", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "quality gate: scan covers abdomen, pelvis, legs; 1 ok, 2 flagged, 0 removed, 0 confirmed" in out
    assert "FLAGGED liver (1000.0 ml, confidence" in out and "to the patient's left of the spleen" in out
    assert main(["case", "run", str(path), "--steps", "mesh"]) == 2
    err = capsys.readouterr().err
    assert "the mesh step refuses flagged structure(s) liver, spleen" in err
    assert "surgtwin case confirm CASE --structures liver,spleen" in err
    assert main(["case", "confirm", str(path), "--structures", "liver"]) == 0
    assert "confirmed: liver" in capsys.readouterr().out
    assert main(["case", "show", str(path), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    q = s["items"]["quality"]
    assert q["unconfirmed"] == ["spleen"] and q["structures"]["liver"]["status"] == "confirmed"
    assert main(["case", "confirm", str(path), "--all"]) == 0
    assert "confirmed: spleen" in capsys.readouterr().out
    assert main(["case", "run", str(path), "--steps", "mesh"]) == 0
    assert "mesh: done" in capsys.readouterr().out
    assert main(["case", "confirm", str(path), "--structures", "nope"]) == 2
    assert "no structure named 'nope'" in capsys.readouterr().err
