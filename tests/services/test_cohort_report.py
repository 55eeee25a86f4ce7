"""The cohort report PDF: counts and failures on page 1, the statement and page numbers on every page,
non-blank rendered pages, atomic write, cancel."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import Cancelled, CancelToken
from surgtwin.services.cohort_report import FOOTER, write_cohort_report
from tests.services.test_cohort_table import abdomen_record, cardiac_record, failed_record, write_cohort

needs_poppler = pytest.mark.skipif(not (shutil.which("pdftotext") and shutil.which("pdftoppm")),
                                   reason="poppler-utils (pdftotext, pdftoppm) not installed")


def _pages_text(pdf) -> list[str]:
    out = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return [p for p in out.split("\f") if p.strip()]


def _folder(tmp_path):
    recs = [cardiac_record(i, area=a, perimeter=p, d_perimeter=1.0, co=co, hr=hr, bsa=bsa)
            for i, ((a, p), co, hr, bsa) in enumerate(zip([(380.0, 70.0), (470.0, 77.5), (600.0, 88.0)],
                                                         [4.2, 5.0, 6.1], [64.0, 70.0, 88.0], [1.7, 1.9, 2.1],
                                                         strict=True))]
    recs += [failed_record(3, error="tavr: the label map has no aortic root"), abdomen_record(4)]
    out = tmp_path / "cohort-out"
    write_cohort(out, recs)
    return out


@needs_poppler
def test_report_text_counts_failure_and_every_page_marked(tmp_path):
    out = _folder(tmp_path)
    seen = []
    pdf = write_cohort_report(out, progress=lambda f, m="": seen.append(f))
    assert pdf == out / "cohort_report.pdf" and pdf.stat().st_size > 20_000
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left
    pages = _pages_text(pdf)
    n = len(pages)
    assert n >= 4
    flat = [" ".join(p.split()) for p in pages]
    for i, p in enumerate(flat, start=1):
        assert "NOT FOR CLINICAL USE" in p and " ".join(FOOTER.split()) in " ".join(p.split())
        assert f"Page {i} of {n}" in p
    first = flat[0]
    assert "5 case(s), 4 ok, 1 failed" in first
    assert "cardiac-cta-0003" in first and "no aortic root" in first
    body = " ".join(flat)
    for heading in ("Segmentation", "TAVR in-silico trial", "Measurement error", "Sizing agreement",
                    "Blood flow", "stress shielding", "Limitations"):
        assert heading in body
    assert "annulus perimeter 3 +1.00" in body  # the injected +1 mm perimeter error, over the 3 ok cases
    # what the gradients were predicted at: the cases' own cardiac output, heart rate and BSA (median, range)
    assert "5.0 (4.2\u20136.1) l/min, 70 (64\u201388) bpm" in body and "1.90 (1.70\u20132.10) m\u00b2" in body


@needs_poppler
def test_report_pages_render_non_blank(tmp_path):
    from PIL import Image

    pdf = write_cohort_report(_folder(tmp_path), tmp_path / "elsewhere" / "r.pdf")
    assert pdf == tmp_path / "elsewhere" / "r.pdf"
    subprocess.run(["pdftoppm", "-png", "-r", "40", str(pdf), str(tmp_path / "pg")], check=True)
    pngs = sorted(tmp_path.glob("pg*.png"))
    assert len(pngs) >= 4
    for p in pngs:
        a = np.asarray(Image.open(p).convert("L"), float)
        assert (a < 200).mean() > 0.01, p.name  # ink on every page
    # the plot pages carry much more ink than text-only ones
    assert max((np.asarray(Image.open(p).convert("L")) < 200).mean() for p in pngs) > 0.05


def test_report_refuses_an_empty_folder_and_cancels(tmp_path):
    with pytest.raises(SurgtwinError):
        write_cohort_report(tmp_path)
    out = _folder(tmp_path)
    tok = CancelToken()
    tok.cancel()
    with pytest.raises(Cancelled):
        write_cohort_report(out, cancel=tok)
    assert not (out / "cohort_report.pdf").exists()


@pytest.mark.slow
@needs_poppler
def test_tiny_virtual_cohort_end_to_end(tmp_path):
    """A real 2-case virtual cardiac cohort (coarse, in-process): table with truth and the case file's
    gradient, and a report."""
    from surgtwin.services import cohort, trial
    from surgtwin.services.cohort_table import results_table, write_table

    ents = cohort.virtual_cohort("cardiac-cta", 2, pixel_mm=2.5, slice_mm=2.5)
    run = cohort.run_cohort(ents, ["segment", "tavr"], tmp_path, workers=0)
    assert [r["status"] for r in run.records] == ["ok", "ok"]
    df = results_table(tmp_path)
    assert df["tavr:mean_gradient_mmhg"].notna().all()  # read from the saved case's tavr item
    # each virtual patient's gradient and PPM were predicted at its own drawn physiology
    for e, (_, row) in zip(ents, df.iterrows(), strict=True):
        phys = e.options["tavr"]
        assert row["tavr:cardiac_output_l_min"] == phys["cardiac_output_l_min"]
        assert row["tavr:heart_rate_bpm"] == phys["heart_rate_bpm"] and row["tavr:bsa_m2"] == phys["bsa_m2"]
        assert row["tavr:ppm"] in ("none", "moderate", "severe")
    assert df["truth:annulus_area_mm2"].notna().all() and df["dice:aortic_root"].gt(0.5).all()
    t = trial.tavr_trial(df)
    assert t["measurement_error"]["perimeter_mm"]["n"] == 2
    assert abs(t["measurement_error"]["perimeter_mm"]["relative_bias_percent"]) < 10
    write_table(df, tmp_path)
    pdf = write_cohort_report(tmp_path)
    assert "2 case(s), 2 ok, 0 failed" in " ".join(" ".join(_pages_text(pdf)).split())
