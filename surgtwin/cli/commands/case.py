"""`surgtwin case new|run|show|export`: the patient's twin, headless (the same pipeline as the app).

    surgtwin case new DICOM_DIR --out CASE.stwin [--series UID] [--labels FILE]
    surgtwin case run CASE.stwin --steps segment,mesh [--method model|classical] [--bundle DIR]
    surgtwin case show CASE.stwin [--json]
    surgtwin case export CASE.stwin --meshes DIR [--format stl]
"""

from __future__ import annotations

from pathlib import Path

FORMATS = ("stl", "obj", "ply", "3mf", "vtp")


def add_parser(sub):
    p = sub.add_parser("case", help="create, run, show and export a case (.stwin): the patient's twin",
                       description="The patient's twin as a case file. NOT FOR CLINICAL USE.")
    cs = p.add_subparsers(dest="case_command", metavar="ACTION", required=True)

    n = cs.add_parser("new", help="a new case from a DICOM folder/file, an image file or a sample case")
    n.add_argument("input", help="DICOM folder or file, NIfTI/NRRD/MHA file, or a sample case folder")
    n.add_argument("--out", "-o", required=True, help="the case to write (NAME.stwin)")
    n.add_argument("--series", metavar="UID", help="SeriesInstanceUID to use from a DICOM folder")
    n.add_argument("--labels", metavar="FILE", help="a label image to import (resampled onto the image)")
    n.add_argument("--name", help="a name for the case (default: from the input)")
    n.add_argument("--force", action="store_true", help="replace an existing case at --out")

    r = cs.add_parser("run", help="run pipeline steps on a case and save it")
    r.add_argument("case", help="the case (NAME.stwin)")
    r.add_argument("--steps", required=True, help="comma-separated steps: segment, mesh, tet")
    r.add_argument("--method", choices=("model", "classical"), default="model", help="segment: method")
    r.add_argument("--bundle", metavar="DIR", help="segment: a MONAI bundle folder (default: the bundled model)")
    r.add_argument("--device", choices=("cpu", "cuda"), help="segment: default cuda when present, else cpu")
    r.add_argument("--structures", metavar="NAMES", help="mesh: only these structures (comma-separated)")
    r.add_argument("--smoothing-iterations", type=int, default=20, metavar="N", help="mesh: windowed-sinc iterations")
    r.add_argument("--tet-structures", metavar="NAMES", help="tet: structures to fill with tetrahedra")
    r.add_argument("--tet-size-mm", type=float, default=2.0, metavar="MM", help="tet: element size (default 2)")
    r.add_argument("--allow-stale", action="store_true",
                   help="run even when an input is stale (e.g. labels edited after the meshes were built)")

    s = cs.add_parser("show", help="what a case holds: source, items with provenance, staleness")
    s.add_argument("case", help="the case (NAME.stwin)")
    s.add_argument("--json", action="store_true", help="print machine-readable JSON")

    c = cs.add_parser("confirm", help="confirm structures the segmentation quality gate flagged (after checking them)")
    c.add_argument("case", help="the case (NAME.stwin)")
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--structures", metavar="NAMES", help="the flagged structures to confirm (comma-separated)")
    g.add_argument("--all", action="store_true", help="confirm every flagged structure")

    e = cs.add_parser("export", help="write the case's surfaces for 3D printing")
    e.add_argument("case", help="the case (NAME.stwin)")
    e.add_argument("--meshes", required=True, metavar="DIR", help="output folder for the surface files")
    e.add_argument("--format", default="stl", choices=FORMATS, help="surface file format (default: stl)")
    e.add_argument("--allow-stale", action="store_true", help="export meshes even if the labels changed since")
    return p


def _names(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def run(args) -> int:
    return {"new": _new, "run": _run, "show": _show, "confirm": _confirm, "export": _export}[args.case_command](args)


def _confirm(args) -> int:
    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.services import pipeline, quality

    case = pipeline.load_case(args.case, progress=ProgressBar("opening"))
    done = quality.confirm_structures(case, "all" if args.all else _names(args.structures) or [])
    if done:
        pipeline.save_case(case, args.case, progress=ProgressBar("saving"))
    print(f"confirmed: {', '.join(done) if done else 'nothing (no flagged structure among them)'}")
    _print_summary(_summary(case), args.case)
    return 0


def _new(args) -> int:
    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.core.case import SUFFIX
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.services import pipeline

    out = Path(args.out)
    if not out.name.endswith(SUFFIX):
        raise SurgtwinError(f"the case name must end in {SUFFIX}", path=out, hint=f"e.g. {out.name}{SUFFIX}")
    if out.exists() and not args.force:
        raise SurgtwinError("already exists", path=out, hint="choose another name or pass --force to replace it")
    if out.exists():
        from surgtwin.core.case import read_manifest

        read_manifest(out)  # --force replaces a case, never some other folder (checked before loading)
    case = pipeline.new_case(args.input, series_uid=args.series, labels=args.labels, progress=ProgressBar("opening"))
    if args.name:
        case.name = args.name
    if out.exists():
        import shutil

        from surgtwin.core.case import read_manifest

        read_manifest(out)  # --force replaces a case, never some other folder
        shutil.rmtree(out)
    pipeline.save_case(case, out, progress=ProgressBar("saving"))
    for w in case.volume.metadata.get("warnings", []):
        print(f"warning: {w}")
    _print_summary(_summary(case), out)
    return 0


def _run(args) -> int:
    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.services import pipeline

    steps = _names(args.steps) or []
    for name in steps:  # before the case is loaded
        if name not in pipeline.steps():
            from surgtwin.core.errors import SurgtwinError

            raise SurgtwinError(f"unknown step {name!r}", hint=f"steps: {', '.join(pipeline.steps())}")
    case = pipeline.load_case(args.case, progress=ProgressBar("opening"))
    opts = {"segment": {"method": args.method, "bundle": args.bundle, "device": args.device},
            "mesh": {"structures": _names(args.structures), "smoothing_iterations": args.smoothing_iterations},
            "tet": {"structures": _names(args.tet_structures), "size_mm": args.tet_size_mm}}
    for name in steps:
        out = pipeline.run_step(case, name, allow_stale=args.allow_stale, progress=ProgressBar(name),
                                **opts.get(name, {}))
        for w in out.summary.get("warnings", []):
            print(f"warning: {w}")
        pipeline.save_case(case, args.case, progress=ProgressBar("saving"))  # each finished step is kept
        print(f"{name}: done")
    _print_summary(_summary(case), args.case)
    print("NOT FOR CLINICAL USE")
    return 0


def _show(args) -> int:
    import json

    from surgtwin.services import pipeline

    case = pipeline.load_case(args.case)
    s = _summary(case)
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    _print_summary(s, args.case)
    return 0


def _summary(case) -> dict:
    """``case.summary()`` plus the quality gate's verdict (flags, reasons) on the quality item."""
    from surgtwin.services import quality

    s = case.summary()
    rec = quality.quality_record(case)
    if rec is not None and "quality" in s["items"]:
        status = quality.structure_status(case)
        shown = {**rec, "structures": {n: {**v, "status": status[n]["status"]} for n, v in rec["structures"].items()}}
        s["items"]["quality"]["gate"] = quality.describe(shown)
        s["items"]["quality"]["structures"] = status
        s["items"]["quality"]["regions"] = rec.get("fov", {}).get("regions", [])
        s["items"]["quality"]["unconfirmed"] = quality.unconfirmed(case)
    return s


def _print_summary(s: dict, path) -> None:
    v = s["volume"]
    src = s["source"]
    print(f"{path}: case {s['name']!r}")
    print(f"  image: {src.get('modality') or '?'} {'x'.join(map(str, v['shape_slices_rows_cols']))} voxels, "
          f"spacing {'x'.join(f'{x:g}' for x in v['spacing_mm_slice_row_col'])} mm (slice x row x col)")
    print(f"  source: {src.get('kind') or '?'} {src.get('path') or '(none)'}  series {src.get('series_uid') or '-'}")
    if not s["items"]:
        print("  items: none yet (run: surgtwin case run CASE --steps segment,mesh)")
    for key, it in s["items"].items():
        flag = "STALE" if it["stale"] else "ok"
        print(f"  [{flag}] {key} ({it['kind']}): {it['made_by']}")
        for reason in it["stale"]:
            print(f"          stale: {reason}")
        if it["kind"] == "labelmap":
            edited = " (edited by hand)" if it.get("edited_by_hand") else ""
            print(f"          {len(it['structures'])} structures{edited}: " + ", ".join(
                f"{n} {ml:.1f} ml" for n, ml in list(it["structures"].items())[:12])
                  + (" ..." if len(it["structures"]) > 12 else ""))
        elif it["kind"] == "surfaces":
            print(f"          {len(it['structures'])} surfaces, {sum(it['structures'].values())} triangles")
        elif key == "quality" and it.get("gate"):
            for line in it["gate"]:
                print(f"          {line}")
        elif it["kind"] == "tetmesh":
            print(f"          {it['nodes']} nodes, {it['elements']} tetrahedra")
    for m in s["measurements"]:
        unit = "mm" if m["kind"] == "distance" else "deg"
        print(f"  measurement: {m['kind']} {m['value']:.1f} {unit}")
    if s["notes"]:
        print(f"  notes: {s['notes'][:200]}")


def _export(args) -> int:
    from surgtwin.services import pipeline

    case = pipeline.load_case(args.case)
    written = pipeline.export_meshes(case, args.meshes, fmt=args.format, allow_stale=args.allow_stale)
    for name, p in written.items():
        print(f"wrote {p} ({name})")
    print(f"{len(written)} surface(s) in LPS mm — NOT FOR CLINICAL USE")
    return 0
