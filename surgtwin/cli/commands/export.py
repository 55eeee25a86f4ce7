"""`surgtwin export CASE --dicom OUT/`: the case's labels as DICOM SEG + RTSTRUCT (+ snapshots as Secondary
Capture), optionally de-identified; `surgtwin export CASE --import-seg FILE`: a SEG/RTSTRUCT into the case.

    surgtwin export CASE --dicom OUT/ [--deidentify] [--structures a,b] [--no-snapshots]
    surgtwin export CASE.stwin --import-seg FILE [--save OTHER.stwin]
    surgtwin export DICOM_DIR --import-seg FILE --save NEW.stwin

CASE is a saved case (NAME.stwin), or a DICOM folder / sample case folder (opened as a new case, with the
sample's labels). Prints one line per object written; never a patient identifier.
"""

from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("export", help="export labels as DICOM SEG/RTSTRUCT (+ snapshots), or import a SEG/RTSTRUCT",
                       description="DICOM back to the hospital, and DICOM SEG/RTSTRUCT into a case. "
                                   "NOT FOR CLINICAL USE.")
    p.add_argument("input", metavar="CASE", help="a case (NAME.stwin), or a DICOM folder / sample case folder")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--dicom", metavar="OUT", help="write SEG, RTSTRUCT and snapshots into this (new or empty) folder")
    what.add_argument("--import-seg", metavar="FILE", help="read a DICOM SEG or RTSTRUCT into the case's labels")
    p.add_argument("--deidentify", action="store_true",
                   help="--dicom: de-identify (PS3.15 Basic Profile) and write the de-identified CT alongside")
    p.add_argument("--structures", metavar="NAMES", help="--dicom: only these structures (comma-separated)")
    p.add_argument("--no-snapshots", action="store_true", help="--dicom: no Secondary Capture snapshots")
    p.add_argument("--save", metavar="CASE", help="--import-seg: the case to write (default: CASE itself when it is "
                                                  "a .stwin case)")
    return p


def _open(path: Path):
    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.services import pipeline

    if not path.exists():
        raise SurgtwinError("no such file or folder", path=path)
    if pipeline.is_case_path(path):
        return pipeline.load_case(path, progress=ProgressBar("opening")), True
    return pipeline.new_case(path, progress=ProgressBar("opening")), False


def run(args) -> int:
    from surgtwin.core.errors import SurgtwinError

    inp = Path(args.input)
    if args.import_seg:
        if args.deidentify or args.structures or args.no_snapshots:
            raise SurgtwinError("--deidentify, --structures and --no-snapshots go with --dicom, not --import-seg")
        return _import(inp, Path(args.import_seg), args.save)
    if args.save:
        raise SurgtwinError("--save goes with --import-seg", hint="--dicom writes the folder it names")
    return _export(inp, Path(args.dicom), args)


def _export(inp: Path, out: Path, args) -> int:
    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.services import dicom_export

    case, _ = _open(inp)
    structures = [s.strip() for s in args.structures.split(",") if s.strip()] if args.structures else None
    result = dicom_export.export_dicom(case, out, structures=structures, deidentify=args.deidentify,
                                       snapshots=[] if args.no_snapshots else None, progress=ProgressBar("export"))
    for line in result.lines():
        print(line)
    for w in result.warnings:
        print(f"warning: {w}")
    note = " (de-identified: PS3.15 Basic Profile)" if result.deidentified else ""
    print(f"wrote {out}{note}")
    print("NOT FOR CLINICAL USE")
    return 0


def _import(inp: Path, file: Path, save: str | None) -> int:
    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.core.case import SUFFIX
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.services import dicom_export, pipeline

    if save is not None and not save.endswith(SUFFIX):
        raise SurgtwinError(f"the case name must end in {SUFFIX}", path=save, hint=f"e.g. {save}{SUFFIX}")
    if save is None and not pipeline.is_case_path(inp):
        raise SurgtwinError("CASE is not a saved case, so the result needs a place to go", path=inp,
                            hint=f"pass --save NEW{SUFFIX}")
    target = Path(save) if save is not None else inp
    if save is not None and target.exists() and target.resolve() != inp.resolve():
        raise SurgtwinError("already exists", path=target, hint="choose another name for --save")
    case, _ = _open(inp)
    labels = dicom_export.import_segmentation(case, file, progress=ProgressBar("import"))
    dicom_export.apply_segmentation(case, labels, path=file)
    pipeline.save_case(case, target, progress=ProgressBar("saving"))
    counts = {lab.name: int((labels.array == lab.value).sum()) for lab in labels.labels}
    kind = "SEG" if labels.metadata.get("source") == "dicom-seg" else "RTSTRUCT"
    print(f"imported {kind} {file.name}: {len(counts)} structures into {target}")
    for name, n in counts.items():
        print(f"  {name}: {n * case.volume.voxel_volume_ml:.1f} ml")
    for w in labels.metadata.get("warnings", []):
        print(f"warning: {w}")
    return 0
