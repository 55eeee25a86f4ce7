"""`surgtwin pacs nodes|echo|find|get|send` against the session's Orthanc (tests/pacs/conftest.py)."""

from __future__ import annotations

import json

import pydicom
import pytest

from surgtwin.cli.main import main
from surgtwin.services import pacs
from tests.pacs import conftest as pacs_fixtures
from tests.pacs.conftest import free_port, seed_samples, write_series

# the PACS package's fixtures, here too (one Orthanc per session whichever package starts it)
orthanc = pacs_fixtures.orthanc
pacs_env = pacs_fixtures.pacs_env
orthanc_factory = pacs_fixtures.orthanc_factory

NODE = "test-orthanc"


def _add_node(orthanc, capsys) -> None:
    n = orthanc.node
    assert main(["pacs", "nodes", "add", NODE, "--ae", n.ae_title, "--host", n.host, "--port", str(n.port),
                 "--store-port", str(n.store_port), "--timeout", "10", "--retries", "0"]) == 0
    assert f"added {NODE} (ORTHANC@127.0.0.1:{n.port})" in capsys.readouterr().out


def test_nodes_add_list_remove(pacs_env, capsys):
    assert main(["pacs", "nodes"]) == 0
    assert "no PACS nodes configured" in capsys.readouterr().out
    assert main(["pacs", "nodes", "add", "main", "--ae", "PACS", "--host", "10.0.0.5", "--port", "104",
                 "--research"]) == 0
    assert main(["pacs", "nodes", "add", "main", "--ae", "PACS2", "--host", "10.0.0.5", "--port", "104"]) == 0
    out = capsys.readouterr().out
    assert "added main (PACS@10.0.0.5:104)" in out and "replaced main (PACS2@10.0.0.5:104)" in out
    assert main(["pacs", "nodes"]) == 0
    assert "main: PACS2@10.0.0.5:104 (calling AE SURGTWIN, store port 11113" in capsys.readouterr().out
    assert main(["pacs", "nodes", "add", "bad", "--ae", "A\\B", "--host", "h", "--port", "1"]) == 2
    assert "surgtwin: error: ae_title 'A\\\\B' is not a valid DICOM AE title" in capsys.readouterr().err
    assert main(["pacs", "nodes", "remove", "main"]) == 0
    assert main(["pacs", "nodes", "remove", "main"]) == 2
    assert "no PACS node named 'main'" in capsys.readouterr().err
    assert pacs.load_nodes() == []


def test_echo_and_find(orthanc, pacs_env, capsys):
    _add_node(orthanc, capsys)
    assert main(["pacs", "echo", NODE]) == 0
    assert "C-ECHO ok" in capsys.readouterr().out
    assert main(["pacs", "echo", f"ORTHANC@127.0.0.1:{orthanc.node.port}"]) == 0  # inline
    capsys.readouterr()
    head = orthanc.samples["head"]
    assert main(["pacs", "find", NODE, "--name", "PHANTOM^HE*"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["study_date", "patient_name", "patient_id"]
    assert "PHANTOM^HEAD" in lines[1] and head.study_uid in lines[1] and "1 study(ies) on test-orthanc" in out
    assert main(["pacs", "find", NODE, "--level", "series", "--study", head.study_uid, "--series", head.series_uid,
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["truncated"] is False and [r["series_uid"] for r in data["results"]] == [head.series_uid]
    assert data["results"][0]["n_instances"] == head.n_instances
    assert main(["pacs", "find", NODE, "--date", "2026-01-01"]) == 2
    assert "is not a date or date range" in capsys.readouterr().err


def test_get_open_case_and_send_results(orthanc, pacs_env, tmp_path, capsys):
    _add_node(orthanc, capsys)
    head = orthanc.samples["head"]
    out_case = tmp_path / "head.stwin"
    assert main(["pacs", "get", NODE, "--study", head.study_uid, "--series", head.series_uid, "--move",
                 "--open-case", str(out_case)]) == 0
    out = capsys.readouterr().out
    assert f"{head.series_uid} ({head.n_instances} instances)" in out and f"saved case {out_case}" in out
    assert out_case.exists()
    # the case's results go back (no labels yet: the export refuses, with a clear message)
    assert main(["pacs", "send", NODE, "--case", str(out_case), "--no-snapshots"]) == 2
    assert "surgtwin: error:" in capsys.readouterr().err
    assert main(["pacs", "send", NODE, "--case", str(out_case), "--deidentify"]) == 2
    assert "will not send de-identified results to a clinical node" in capsys.readouterr().err


def test_send_files(orthanc, pacs_env, tmp_path, capsys):
    _add_node(orthanc, capsys)
    (folder,) = write_series(tmp_path / "cli", n_slices=2, size=8, seed="cli-send", patient="PHANTOM^CLISEND")
    assert main(["pacs", "send", NODE, str(folder)]) == 0
    assert "sent 2 files to test-orthanc" in capsys.readouterr().out
    uid = str(pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True).StudyInstanceUID)
    assert [r["n_instances"] for r in pacs.find(orthanc.node, study_uid=uid)] == [2]
    assert main(["pacs", "send", NODE]) == 2
    assert "pass either FILES or --case" in capsys.readouterr().err


def test_errors_are_one_line(pacs_env, capsys):
    port = free_port()
    assert main(["pacs", "echo", f"ORTHANC@127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"C-ECHO failed: cannot connect to 127.0.0.1:{port}: connection refused" in err
    assert main(["pacs", "get", NODE, "--study", "1.2.3"]) == 2
    assert "neither a known node name nor AE@host:port" in capsys.readouterr().err


@pytest.mark.slow
def test_find_get_open_segment_and_send_back_from_the_cli(orthanc_factory, pacs_env, tmp_path, capsys):
    """The issue's whole path from the command line: find the patient, retrieve the study's series by
    C-GET into a case, segment it with the bundled model, send the results back, find them on the node.
    A private server: the results sent back must not change the shared server's studies."""
    orthanc = orthanc_factory()
    seed_samples(orthanc)
    _add_node(orthanc, capsys)
    assert main(["pacs", "find", NODE, "--patient-id", "PHANTOM-HEAD*", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["results"]
    (study,) = [r for r in found if r["study_uid"] == orthanc.samples["head"].study_uid]
    out_case = tmp_path / "head.stwin"
    assert main(["pacs", "get", NODE, "--study", study["study_uid"], "--open-case", str(out_case)]) == 0
    capsys.readouterr()
    assert main(["case", "run", str(out_case), "--steps", "segment"]) == 0
    capsys.readouterr()
    assert main(["pacs", "send", NODE, "--case", str(out_case), "--no-snapshots"]) == 0
    assert "sent 2 files (rtstruct, seg)" in capsys.readouterr().out
    back = pacs.find(orthanc.node, level="series", study_uid=study["study_uid"])
    kinds = sorted(r["modality"] for r in back)
    assert "SEG" in kinds and "RTSTRUCT" in kinds, kinds
