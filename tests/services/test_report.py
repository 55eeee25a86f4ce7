"""The plan report (surgtwin.services.report): the PDF's text for what the case holds, stale items marked,
de-identification, every page rendered with content, atomic writing, the report step."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from surgtwin.core.case import Case
from surgtwin.core.errors import SurgtwinError
from surgtwin.services import pipeline
from surgtwin.services import report as rep

needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None or shutil.which("pdftoppm") is None,
                                   reason="poppler-utils (pdftotext, pdftoppm) not installed; CI installs them")


def pdf_text(path) -> str:
    out = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True)
    return out.stdout


def rendered_pages(path, tmp_path, dpi: int = 40) -> list[np.ndarray]:
    from PIL import Image

    prefix = tmp_path / f"{path.stem}-page"
    subprocess.run(["pdftoppm", "-r", str(dpi), "-png", str(path), str(prefix)], check=True)
    return [np.asarray(Image.open(p).convert("L")) for p in sorted(tmp_path.glob(f"{path.stem}-page*.png"))]


def volumes_text(case) -> dict[str, str]:
    """The structure volumes as ``case show`` has them, formatted like the report (0.1 ml)."""
    return {n: f"{ml:.1f}" for n, ml in case.summary()["items"]["labels"]["structures"].items()}


@pytest.fixture(scope="module")
def femur_case():
    from tests.core.sim.synthetic import femur

    labels, ct = femur(spacing=3.0)
    case = Case(ct, name="synthetic femur")
    case.set_labels(labels)
    pipeline.run_steps(case, ["mesh", "implant", "fem"], options={
        "implant": {"family": "hip-stem", "size": "2", "femur": "left"}, "fem": {"size_mm": 5.0}})
    from surgtwin.core.measure import Measurement

    case.add_measurement(Measurement("distance", [(0.0, 0.0, 0.0), (30.0, 40.0, 0.0)]))
    return case


@pytest.fixture(scope="module")
def trajectory_case():
    from surgtwin.core.plan.rehearsal import PlannedPath, straight_script
    from surgtwin.services import rehearsal
    from tests.core.test_trajectory import synthetic_case

    case = synthetic_case()
    pipeline.run_steps(case, ["mesh", "trajectory"], options={
        "trajectory": {"target": "tumour", "entry_region": "skin", "suggest": 3}})
    t = case.item("trajectories").value[0]
    rehearsal.rehearse_script(case, t["id"], straight_script(PlannedPath(tuple(t["entry_lps"]), tuple(t["target_lps"])),
                                                             step_mm=2.0, speed_mm_s=4.0), trainee="resident")
    return case


@needs_poppler
@pytest.mark.slow
def test_implant_fem_report_text_and_pages(femur_case, tmp_path):
    case = femur_case
    out = rep.write_report(case, tmp_path / "femur.pdf")
    assert out == tmp_path / "femur.pdf" and not list(tmp_path.glob(".*tmp"))
    text = pdf_text(out)
    flat = " ".join(text.split())
    for heading in ("Surgical plan report", "Plan at a glance", "3D views", "Slices", "Structures", "Measurements",
                    "Implants", "Finite-element study", "Provenance", "Intended use and limitations"):
        assert heading in text, heading
    for absent in ("TAVR planning", "Trajectories", "Rehearsals", "Blood flow"):
        assert absent not in text, absent
    assert rep.INTENDED_USE in flat
    assert "NOT FOR CLINICAL USE" in text and "synthetic femur" in text
    assert "Implant 1: hip-stem 2 left" in flat and "cortical breach" in flat
    sf = float(case.item("fem:1").value["safety_factor"])
    assert f"{sf:.1f}" in flat and "50.0 mm" in flat  # the measurement
    for name, ml in volumes_text(case).items():
        assert any(name in line and ml in line.split() for line in text.splitlines()), (name, ml)
    pages = rendered_pages(out, tmp_path)
    assert len(pages) >= 3 and f"Page 1 of {len(pages)}" in text and f"Page {len(pages)} of {len(pages)}" in text
    for k, page in enumerate(pages):
        ink = (page < 200).mean()
        assert ink > 0.01, f"page {k + 1} is blank"


@needs_poppler
def test_trajectory_rehearsal_report_and_stale_items(trajectory_case, tmp_path):
    case = trajectory_case
    text = pdf_text(rep.write_report(case, tmp_path / "traj.pdf"))
    flat = " ".join(text.split())
    assert "Trajectories" in text and "Rehearsals" in text and "STALE" not in text
    t = case.item("trajectories").value[0]
    assert t["name"] in flat and "resident" in flat and "critical structure" in flat
    assert "Rehearsal scores: teaching scores" in flat
    # an edit of the labels makes the plan stale: the report says so
    case.labels.array[0, 0, 0] = 1
    case.notify_labels_edited()
    text = pdf_text(rep.write_report(case, tmp_path / "traj-stale.pdf"))
    assert "STALE" in text and "the labels were edited or replaced since it was made" in " ".join(text.split())
    case.labels.array[0, 0, 0] = 0
    case.notify_labels_edited()


@needs_poppler
def test_deidentified_report_has_no_patient_values(tmp_path):
    from surgtwin import resources
    from surgtwin.core.phi import values_from_file

    case = pipeline.new_case(resources.sample_root() / "head")  # PatientName PHANTOM^HEAD
    phi = values_from_file(rep.source_dicom_file(case))
    assert {"PHANTOM^HEAD", "PHANTOM-HEAD-3"} <= phi
    named = pdf_text(rep.write_report(case, tmp_path / "named.pdf"))
    assert "PHANTOM, HEAD" in named and "PHANTOM-HEAD-3" in named and "20260101" in named
    text = pdf_text(rep.write_report(case, tmp_path / "anon.pdf", deidentify=True))
    assert f"Case {case.case_id[:8]}" in text  # the case's name is part of the patient's name
    for value in phi | {"PHANTOM", "2026-01-01", case.source.series_uid, case.source.study_uid}:
        assert value.lower() not in text.lower(), value
    assert "de-identified" in text and case.source.path not in text


def test_case_label_and_header_without_the_source(tmp_path):
    case = pipeline.new_case(pipeline.sample_root() / "head")
    assert rep.case_label(case, deidentify=False) == "head"
    case.source.path = str(tmp_path / "gone")  # the images moved: nothing proves the name is not PHI
    assert rep.patient_header(case) == {}
    assert rep.case_label(case, deidentify=True) == f"Case {case.case_id[:8]}"


def test_case_snapshots_signature(trajectory_case):
    shots = rep.case_snapshots(trajectory_case, size=(320, 240))
    titles = [t for t, _ in shots]
    assert {"3D anatomy (anterior)", "axial", "coronal", "sagittal", "3D plan: trajectories"} <= set(titles)
    for title, img in shots:
        assert isinstance(title, str) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, title
        assert img.std() > 5, title  # not a blank picture


def test_errors_cancel_and_replace(femur_case, tmp_path):
    from surgtwin.core.progress import Cancelled, CancelToken

    with pytest.raises(SurgtwinError, match="must end in .pdf"):
        rep.write_report(femur_case, tmp_path / "plan.txt")
    with pytest.raises(SurgtwinError, match="does not exist"):
        rep.write_report(femur_case, tmp_path / "nowhere" / "plan.pdf")
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        rep.write_report(femur_case, tmp_path / "plan.pdf", cancel=token)
    assert list(tmp_path.iterdir()) == []
    old = tmp_path / "plan.pdf"
    old.write_bytes(b"old")
    seen = []
    rep.write_report(femur_case, old, progress=lambda f, m: seen.append(f))
    assert old.read_bytes().startswith(b"%PDF") and seen[-1] == 1.0 and seen == sorted(seen)
    assert [p.name for p in tmp_path.iterdir()] == ["plan.pdf"]


def test_report_step_reads_a_snapshot(femur_case, tmp_path):
    case = femur_case
    job = pipeline.prepare_step(case, "report", out=str(tmp_path / "step.pdf"), deidentify=True)
    snap = job.args[0]
    assert snap is not case and snap.keys() == case.keys() and snap.stale_items() == case.stale_items()
    assert snap.labels.array is not case.labels.array and np.array_equal(snap.labels.array, case.labels.array)
    before = case.change_count
    out = job.compute().apply_to(case)
    assert (tmp_path / "step.pdf").read_bytes().startswith(b"%PDF") and out.summary["deidentified"]
    assert case.change_count == before
    with pytest.raises(SurgtwinError, match="needs the PDF"):
        pipeline.prepare_step(case, "report")


@needs_poppler
@pytest.mark.slow
def test_flow_report(tmp_path):
    from tests.services.test_flow_step import y_case

    case = y_case()
    pipeline.run_step(case, "flow", stent={"s0": 18.0})
    text = pdf_text(rep.write_report(case, tmp_path / "flow.pdf"))
    flat = " ".join(text.split())
    assert "Blood flow" in text and "flow:aorta: inflow" in flat and "virtual stent" in flat and "Pd/Pp" in text
    assert "Implants" not in text and "Reduced-order (0D) model" in flat


@needs_poppler
@pytest.mark.slow
def test_tavr_report(tmp_path):
    case = pipeline.new_case(pipeline.sample_root() / "cardiac-cta")
    pipeline.run_step(case, "tavr", bsa_m2=1.9)
    text = pdf_text(rep.write_report(case, tmp_path / "tavr.pdf"))
    flat = " ".join(text.split())
    rec = case.item("tavr").value
    assert "TAVR planning" in text and "Device sizing" in text and "Virtual valve" in text
    assert f"{rec['measurement']['area_mm2']:.1f} mm²" in flat and "balloon-expandable 26 mm" in flat
    assert "recommended" in flat and "Slices through the aortic annulus centre" in flat
