#!/usr/bin/env python
"""The plan report of a sample case with plan items (issue 17): time, pages, size.

    python scripts/bench/report_bench.py [--runs 3] [--case CASE.stwin] [--deidentify] [--json OUT.json]

Set-up, untimed: the abdomen-pelvis sample with its labels, surfaces (``mesh``), a hip stem placed
automatically in the left femur (``implant``), its FE study (``fem``, 4 mm elements) and the aortic
flow with a virtual stent (``flow``), or a saved case (``--case``). Timed, median of ``--runs``:

* ``write_report`` to a PDF (pictures, tables, PDF writing, atomic rename);
* baseline 1: ``report_figures`` alone (the offscreen 3D, MPR and oblique pictures);
* baseline 2: reportlab writing the same document without its pictures (text and tables only).

Printed: each time, the report's ratio to each baseline, the PDF's pages and size.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def median_s(fn, runs: int) -> float:
    return statistics.median(timeit.repeat(fn, number=1, repeat=runs))


def sample_case():
    from surgtwin.services import pipeline

    case = pipeline.new_case(pipeline.sample_root() / "abdomen-pelvis")
    pipeline.run_steps(case, ["mesh", "implant", "fem", "flow"], options={
        "implant": {"family": "hip-stem", "size": "2", "femur": "left"}, "fem": {"size_mm": 4.0},
        "flow": {"stent": {"s0": 18.0}}})
    return case


def pdf_pages(path: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", path.read_bytes()))


def run(runs: int = 3, case_path: str | None = None, deidentify: bool = False) -> dict:
    from dataclasses import replace

    from surgtwin.services import pipeline
    from surgtwin.services import report as rep
    from surgtwin.services.report_pages import Figure, build_pdf

    t0 = time.perf_counter()
    case = pipeline.load_case(case_path) if case_path else sample_case()
    setup_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "plan.pdf"
        rep.write_report(case, out, deidentify=deidentify)  # warm-up: imports, the first OpenGL context
        t_report = median_s(lambda: rep.write_report(case, out, deidentify=deidentify), runs)
        pages, size = pdf_pages(out), out.stat().st_size
        t_pics = median_s(lambda: rep.report_figures(case), runs)
        pics = rep.report_figures(case)
        doc = rep.build_document(case, pics, deidentify=deidentify)
        text_only = replace(doc, sections=[replace(s, blocks=[b for b in s.blocks if not isinstance(b, Figure)])
                                           for s in doc.sections])
        t_text = median_s(lambda: build_pdf(text_only, Path(tmp) / "text.pdf"), runs)
        text_pages = pdf_pages(Path(tmp) / "text.pdf")
    return {"case": case_path or "abdomen-pelvis sample + mesh, implant, fem, flow (stent)", "setup_s": setup_s,
            "runs": runs, "report_s": t_report, "pages": pages, "size_kb": size / 1024, "pictures": len(pics),
            "pictures_s": t_pics, "text_only_pdf_s": t_text, "text_only_pages": text_pages,
            "ratio_report_to_pictures": t_report / t_pics, "ratio_report_to_text_only": t_report / t_text}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--case", help="a saved case (.stwin) instead of the sample with plan items")
    ap.add_argument("--deidentify", action="store_true")
    ap.add_argument("--json", metavar="OUT")
    a = ap.parse_args(argv)
    r = run(a.runs, a.case, a.deidentify)
    print(f"case: {r['case']} (set-up {r['setup_s']:.1f} s, untimed)")
    print(f"write_report            {r['report_s']:7.2f} s  median of {r['runs']}  -> {r['pages']} pages, "
          f"{r['size_kb']:.0f} KB, {r['pictures']} pictures")
    print(f"baseline: pictures only {r['pictures_s']:7.2f} s  (report / pictures = {r['ratio_report_to_pictures']:.2f})")
    print(f"baseline: text-only PDF {r['text_only_pdf_s']:7.2f} s  ({r['text_only_pages']} pages; report / text-only = "
          f"{r['ratio_report_to_text_only']:.1f})")
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
