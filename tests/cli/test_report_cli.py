"""`surgtwin report CASE --out plan.pdf [--deidentify]`: a saved case, a DICOM folder, user errors."""

from __future__ import annotations

import shutil
import subprocess

import pydicom
import pytest

from surgtwin.cli import main as cli
from surgtwin.core.case import Case
from surgtwin.services import pipeline

PHI = {"PatientName": "DOE^JANE", "PatientID": "PID-483920", "PatientBirthDate": "19610412",
       "InstitutionName": "St Elm Hospital"}
SPELLINGS = ("DOE^JANE", "DOE, JANE", "JANE DOE", "PID-483920", "19610412", "1961-04-12", "St Elm Hospital")


@pytest.fixture(autouse=True)
def only_this_command(monkeypatch):
    """The report command alone (other commands' modules may be work in progress)."""
    assert "report" in cli.COMMANDS
    monkeypatch.setattr(cli, "COMMANDS", ("report",))


def pdf_text(path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils (pdftotext) not installed; CI installs it")
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout


def test_report_of_a_saved_case(tmp_path, capsys):
    from tests.core.test_trajectory import synthetic_case

    case = synthetic_case()
    pipeline.run_step(case, "trajectory", target="tumour", entry=[-40.0, 0.0, 0.0], trajectory_name="lateral")
    saved = pipeline.save_case(case, tmp_path / "ball.stwin")
    out = tmp_path / "plan.pdf"
    assert cli.main(["report", str(saved), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "NOT FOR CLINICAL USE" in printed
    assert out.read_bytes().startswith(b"%PDF")
    text = pdf_text(out)
    assert "Trajectories" in text and "lateral" in text and "Intended use and limitations" in text


def test_deidentified_report_of_a_dicom_folder(tmp_path, capsys):
    from tests.dicom_factory import write_series

    truth = write_series(tmp_path / "dicom", shape=(10, 32, 28))
    for f in truth.files:
        ds = pydicom.dcmread(f)
        for k, v in PHI.items():
            setattr(ds, k, v)
        ds.save_as(f)
    out = tmp_path / "anon.pdf"
    assert cli.main(["report", str(tmp_path / "dicom"), "--out", str(out), "--deidentify"]) == 0
    cap = capsys.readouterr()
    assert "no label map" in cap.out and "de-identified" in cap.out
    text = pdf_text(out)
    assert "Slices" in text and "de-identified" in text
    for s in SPELLINGS:
        assert s.lower() not in text.lower(), s
        assert s not in cap.out + cap.err, s
    named = tmp_path / "named.pdf"
    assert cli.main(["report", str(tmp_path / "dicom"), "--out", str(named)]) == 0
    assert "DOE, JANE" in pdf_text(named)  # the identified report is for the surgeon: it names the patient


def test_user_errors(tmp_path, capsys):
    from tests.services.rehearsal_cases import synthetic_case

    case = Case(synthetic_case().volume)
    saved = pipeline.save_case(case, tmp_path / "c.stwin")
    assert cli.main(["report", str(saved), "--out", str(tmp_path / "plan.docx")]) == 2
    assert "must end in .pdf" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path / "missing.stwin"), "--out", str(tmp_path / "p.pdf")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["report", str(saved), "--out", str(tmp_path / "no" / "p.pdf")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.pdf"))
