"""`surgtwin cohort virtual|run|results`: a virtual cohort end to end on 2 Dask workers from the command
line (a real `python -m surgtwin` process, so the worker processes it spawns are real too), the rerun
that skips current cases, a failing case and the user's mistakes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from surgtwin.cli import main as cli
from surgtwin.services.cohort import parse_options


def surgtwin(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "surgtwin", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_virtual_cohort_on_two_dask_workers_from_the_command_line(tmp_path):
    out = tmp_path / "trial"
    r = surgtwin("cohort", "virtual", "--kind", "cardiac-cta", "-n", 3, "--out", out, "--pixel-mm", 3,
                 "--slice-mm", 3)
    assert r.returncode == 0, r.stderr
    assert "3 virtual cardiac-cta patients" in r.stdout
    manifest = json.loads((out / "cohort.json").read_text())
    assert [c["source"]["seed"] for c in manifest["cases"]] == [0, 1, 2]

    r = surgtwin("cohort", "run", out / "cohort.json", "--steps", "segment,tavr", "--out", out, "--workers", 2,
                 "--memory-limit", "4GiB", "--option", "tavr.family=self-expanding")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3/3 cases ok, 0 failed, 0 already current" in r.stdout and "(local:2)" in r.stdout
    assert "NOT FOR CLINICAL USE" in r.stdout
    for name in ("cohort_results.csv", "cohort_results.parquet", "cohort_report.pdf"):
        assert (out / name).stat().st_size > 0, name
    recs = [json.loads((out / "results" / f"cardiac-cta-000{i}.json").read_text()) for i in range(3)]
    # each record holds the options its case ran with: its own drawn physiology, with --option laid over it
    for r, c in zip(recs, manifest["cases"], strict=True):
        assert r["status"] == "ok" and r["options"] == {"tavr": {**c["options"]["tavr"], "family": "self-expanding"}}
        assert set(c["options"]["tavr"]) == {"bsa_m2", "bmi", "cardiac_output_l_min", "heart_rate_bpm"}
    assert len({r["pid"] for r in recs}) >= 2  # the cases ran in two worker processes

    import pandas as pd

    table = pd.read_parquet(out / "cohort_results.parquet")
    assert list(table["case_id"]) == [f"cardiac-cta-000{i}" for i in range(3)]
    assert (table["status"] == "ok").all()

    r = surgtwin("cohort", "run", out, "--steps", "segment,tavr", "--out", out, "--workers", 2, "--no-report",
                 "--option", "tavr.family=self-expanding")
    assert r.returncode == 0, r.stderr
    assert "3/3 cases ok, 0 failed, 3 already current" in r.stdout


@pytest.mark.slow
def test_a_failing_case_is_listed_and_the_exit_status_says_so(tmp_path, capsys):
    bad = tmp_path / "studies" / "broken"
    bad.mkdir(parents=True)
    (bad / "IM0001.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"garbage" * 20)
    out = tmp_path / "out"
    assert cli.main(["cohort", "virtual", "--kind", "head", "-n", "1", "--out", str(out), "--pixel-mm", "3",
                     "--slice-mm", "3"]) == 0
    code = cli.main(["cohort", "run", str(out / "cohort.json"), str(bad), "--steps", "segment", "--out", str(out),
                     "--workers", "0", "--no-report"])
    text = capsys.readouterr().out
    assert code == 3
    assert "1/2 cases ok, 1 failed" in text and "FAILED broken: open:" in text
    assert (out / "cohort_results.csv").exists()


@pytest.mark.parametrize("argv, msg", [
    (["cohort", "run", "{tmp}", "--out", "{tmp}/o", "--steps", "segmnet"], "unknown step 'segmnet'"),
    (["cohort", "run", "{tmp}", "--out", "{tmp}/o", "--option", "flow=3"], "is not STEP.KEY=VALUE"),
    (["cohort", "run", "{tmp}", "--out", "{tmp}/o", "--option", "flow.x=3"], "a step that is not run: flow"),
    (["cohort", "run", "{tmp}/none", "--out", "{tmp}/o"], "does not exist"),
    (["cohort", "run", "{tmp}", "--out", "{tmp}/o"], "holds no study"),
    (["cohort", "run", "{tmp}", "--out", "{tmp}/o", "--workers", "-1"], "--workers must be >= 0"),
    (["cohort", "virtual", "--kind", "head", "-n", "0", "--out", "{tmp}/o"], "1 to 100000"),
    (["cohort", "results", "{tmp}"], "holds no cohort results"),
    (["cohort", "virtual", "--kind", "head", "-n", "2", "--arm", "implant.size", "--out", "{tmp}/o"],
     "is not STEP.KEY=VALUE,VALUE"),
])
def test_user_mistakes_are_one_clear_line(tmp_path, capsys, argv, msg):
    code = cli.main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and msg in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_parse_options_reads_json_values():
    assert parse_options(["flow.components=largest", "tavr.size=26", "fem.load_n=[1, 2]", "tavr.depth-mm=3.5"]) == {
        "flow": {"components": "largest"}, "tavr": {"size": 26, "depth_mm": 3.5}, "fem": {"load_n": [1, 2]}}


def test_virtual_cohort_with_arms(tmp_path, capsys):
    out = tmp_path / "hip"
    assert cli.main(["cohort", "virtual", "--kind", "abdomen-pelvis", "-n", "2", "--arm", "implant.size=2,4",
                     "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 virtual abdomen-pelvis patients (seeds 0-1) x 2 arms (implant.size=2,4) = 4 cases" in text
    assert "--steps segment,implant,fem" in text
    cases = json.loads((out / "cohort.json").read_text())["cases"]
    assert [c["case_id"] for c in cases] == ["abdomen-pelvis-0000-size2", "abdomen-pelvis-0000-size4",
                                             "abdomen-pelvis-0001-size2", "abdomen-pelvis-0001-size4"]
    assert cases[1]["arm"] == {"implant.size": 4} and cases[1]["options"] == {"implant": {"size": 4}}
