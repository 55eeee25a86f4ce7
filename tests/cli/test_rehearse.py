"""`surgtwin rehearse`: a scripted rehearsal stored in the case, progress, replay, list, errors."""

from __future__ import annotations

import json

import pytest

from surgtwin.cli.main import main
from surgtwin.core.plan.rehearsal import PlannedPath, straight_script
from surgtwin.services import pipeline
from surgtwin.services import rehearsal as svc
from tests.services.rehearsal_cases import ENTRY_LPS, TUMOUR_LPS, crossing_script, synthetic_case


@pytest.fixture
def saved(tmp_path):
    path = pipeline.save_case(synthetic_case(), tmp_path / "syn")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(straight_script(PlannedPath(ENTRY_LPS, TUMOUR_LPS), step_mm=2.0, speed_mm_s=4.0)))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(crossing_script()))
    return path, good, bad


def test_scripted_rehearsals_progress_replay_list(saved, tmp_path, capsys):
    path, good, bad = saved
    out_json = tmp_path / "r1.json"
    assert main(["rehearse", str(path), "--trajectory", "T1", "--script", str(good), "--trainee", "ann",
                 "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "rehearsal R1 of trajectory to-tumour (T1) by ann" in text
    assert "events: none" in text and "score 100.0 / 100" in text and "pose update: median" in text
    rec = json.loads(out_json.read_text())["rehearsal"]
    assert rec["id"] == "R1" and rec["score"]["total"] == pytest.approx(100)
    assert main(["rehearse", str(path), "--trajectory", "to-tumour", "--script", str(bad), "--trainee", "ann"]) == 0
    text = capsys.readouterr().out
    assert "ENTERED vessels" in text and "entered the margin of vessels" in text
    assert "structure entries (vessels)" in text
    assert [r["id"] for r in svc.rehearsals(pipeline.load_case(path))] == ["R1", "R2"]

    prog = tmp_path / "prog.json"
    assert main(["rehearse", str(path), "--progress", "--trainee", "ann", "--json", str(prog)]) == 0
    text = capsys.readouterr().out
    assert "attempts on trajectory T1 by ann" in text and "trend: declining" in text
    assert [r["id"] for r in json.loads(prog.read_text())["progress"]["rows"]] == ["R1", "R2"]

    assert main(["rehearse", str(path), "--replay", "R2", "--fps", "0.5"]) == 0
    text = capsys.readouterr().out
    assert "replay of R2" in text and "32.0 s" in text and "ENTERED vessels" in text
    assert text.count(" s  depth ") == 17  # 0, 2, ..., 32 s

    assert main(["rehearse", str(path), "--list"]) == 0
    text = capsys.readouterr().out
    assert text.count("score") == 2 and "R2" in text


def test_user_errors_exit_2(saved, tmp_path, capsys):
    path, good, _ = saved
    assert main(["rehearse", str(path), "--script", str(good)]) == 2
    assert "--script needs --trajectory" in capsys.readouterr().err
    assert main(["rehearse", str(path), "--trajectory", "T9", "--script", str(good)]) == 2
    assert "no trajectory 'T9'" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text('[{"t": 0, "cmd": "fly"}]')
    assert main(["rehearse", str(path), "--trajectory", "T1", "--script", str(broken)]) == 2
    assert "unknown command 'fly'" in capsys.readouterr().err
    assert main(["rehearse", str(tmp_path), "--progress"]) == 2
    assert "is not a saved case" in capsys.readouterr().err
    assert main(["rehearse", str(path), "--replay", "R5"]) == 2
    assert "no rehearsal 'R5'" in capsys.readouterr().err
