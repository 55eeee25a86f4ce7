"""`surgtwin report CASE --out plan.pdf [--deidentify]`: the plan report (PDF) of a case.

CASE is a ``.stwin`` case as saved (its plan items, measurements and notes are reported), or a DICOM
folder, sample-case folder or image file: then a case is made from it in memory (with the sample's
labels, or ``--labels``) and, when it has labels, its surfaces are built first; nothing is saved.
``--deidentify`` leaves out every patient-identifying value (see ``surgtwin.services.report``).
"""

from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("report", help="write the plan report (PDF): pictures, structures, plan items, provenance",
                       description="The plan report of a case as a PDF to print. NOT FOR CLINICAL USE.")
    p.add_argument("input", metavar="CASE", help="a case (NAME.stwin), or a DICOM folder, sample-case folder or image")
    p.add_argument("--out", "-o", required=True, metavar="PDF", help="the report to write (NAME.pdf; replaced if it exists)")
    p.add_argument("--deidentify", action="store_true",
                   help="no patient name, ID, dates, institution, UIDs, paths or notes; the case under a pseudonym")
    p.add_argument("--labels", metavar="FILE", help="for an image input: a label image to import (resampled onto it)")
    return p


def run(args) -> int:
    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.services import pipeline
    from surgtwin.services.report import write_report

    inp, out = Path(args.input), Path(args.out)
    if not inp.exists():
        raise SurgtwinError("does not exist", path=inp, hint="give a .stwin case, a DICOM folder or an image file")
    if out.suffix.lower() != ".pdf":  # before any loading
        raise SurgtwinError("the report is a PDF: its file name must end in .pdf", path=out,
                            hint=f"e.g. {out.with_suffix('.pdf').name}")
    if out.is_dir():
        raise SurgtwinError("is a folder", path=out, hint="give the PDF's file name, e.g. plan.pdf")
    if pipeline.is_case_path(inp):
        if args.labels:
            raise SurgtwinError("--labels is for an image, not a saved case", hint="import labels into the case first")
        case = pipeline.load_case(inp, progress=ProgressBar("opening"))
    else:
        case = pipeline.new_case(inp, labels=args.labels, progress=ProgressBar("loading"))
        if case.labels is not None and not case.meshes:
            pipeline.run_step(case, "mesh", progress=ProgressBar("surfaces"))
        elif case.labels is None:
            print("note: no label map: the report shows the image only "
                  "(segment it first: surgtwin case new ... then surgtwin case run CASE --steps segment,mesh)")
    path = write_report(case, out, deidentify=args.deidentify, progress=ProgressBar("report"))
    for key, reasons in case.stale_items().items():
        print(f"warning: {key} is stale ({'; '.join(reasons)}): the report marks it")
    print(f"wrote {path} ({path.stat().st_size // 1024} KB{', de-identified' if args.deidentify else ''})")
    print("NOT FOR CLINICAL USE")
    return 0
