"""`surgtwin mesh CASE_OR_VOLUME --labels labels.nii.gz --out DIR`: surfaces (+ optional tet mesh)."""

from __future__ import annotations

from pathlib import Path

FORMATS = ("stl", "obj", "ply", "3mf", "vtp")
LABEL_FILES = ("labels.nii.gz", "labels.nii", "labels.nrrd", "labels.mha")


def add_parser(sub):
    p = sub.add_parser("mesh", help="build structure surfaces (and a tet mesh) from a label map")
    p.add_argument("input", help="case folder (with labels.nii.gz), image/DICOM folder of the CT, or a label image")
    p.add_argument("--labels", metavar="FILE", help="label image (default: labels.nii.gz in the case folder)")
    p.add_argument("--label-table", metavar="JSON", help="label names/colours (default: labels.json beside the labels)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--format", default="stl", choices=FORMATS, help="surface file format (default: stl)")
    p.add_argument("--structures", metavar="NAMES", help="comma-separated structures (default: all)")
    p.add_argument("--smoothing-iterations", type=int, default=20, metavar="N", help="windowed-sinc iterations")
    p.add_argument("--target-triangles", type=int, metavar="N", help="triangle budget per structure")
    p.add_argument("--tet", metavar="STRUCTURES", help="also build a tet mesh of these (comma-separated, e.g. femur,implant)")
    p.add_argument("--tet-size-mm", type=float, default=2.0, metavar="MM", help="tet element size (default 2)")
    return p


def _find_labels(inp: Path, labels_arg: str | None) -> Path:
    from surgtwin.core.errors import SurgtwinError

    if labels_arg:
        return Path(labels_arg)
    if inp.is_dir():
        for name in LABEL_FILES:
            if (inp / name).is_file():
                return inp / name
        raise SurgtwinError("no label image in the case folder", path=inp, hint="pass --labels FILE")
    return inp  # the input itself is the label image


def run(args) -> int:
    import json

    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.core.labels_io import read_labelmap
    from surgtwin.core.mesh.io import export_mesh, safe_filename, write_tet_mesh
    from surgtwin.services import pipeline

    inp = Path(args.input)
    if not inp.exists():
        raise SurgtwinError("no such file or folder", path=inp)
    if args.smoothing_iterations < 0:
        raise SurgtwinError("--smoothing-iterations must be >= 0")
    structures = [s.strip() for s in args.structures.split(",") if s.strip()] if args.structures else None
    case_ct = None
    if pipeline.is_case_path(inp):  # a saved case: its label map (edits included) and its CT
        case = pipeline.load_case(inp)
        if case.labels is None:
            raise SurgtwinError("the case has no label map yet", path=inp,
                                hint="run: surgtwin case run CASE --steps segment")
        labels_path, lm, case_ct = inp, case.labels, case.volume
    else:  # the same label-reading rules as the app (surgtwin.core.labels_io)
        labels_path = _find_labels(inp, args.labels)
        lm = read_labelmap(labels_path, table_path=Path(args.label_table) if args.label_table else None)
    meshes, _ = pipeline.compute_surfaces(lm, structures=structures, smoothing_iterations=args.smoothing_iterations,
                                          target_triangles=args.target_triangles, progress=ProgressBar("surfaces"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "labels": str(labels_path),
        "format": args.format,
        "units": "mm (LPS patient coordinates)",
        "structures": {},
    }
    refused = []
    for name, m in meshes.items():
        entry = {"label": m.label, **(m.quality.as_dict() if m.quality else {})}
        try:
            path = export_mesh(m, out / f"{safe_filename(name)}.{args.format}", fmt=args.format)
            entry["file"] = path.name
        except SurgtwinError as exc:
            entry["file"] = None
            entry["error"] = exc.reason
            refused.append(f"{name}: {exc.reason}")
        report["structures"][name] = entry

    if args.tet:
        from surgtwin.core.mesh.tetra import tet_mesh

        tet_structs = [s.strip() for s in args.tet.split(",") if s.strip()]
        ct = case_ct if case_ct is not None else _maybe_ct(inp, labels_path)
        tm = tet_mesh(lm, tet_structs, size_mm=args.tet_size_mm, ct=ct, progress=ProgressBar("tet mesh"))
        stem = "tet_" + "_".join(safe_filename(s) for s in tet_structs)
        files = write_tet_mesh(tm, out / stem)
        report["tet"] = {
            "structures": tet_structs,
            "size_mm": args.tet_size_mm,
            "files": [f.name for f in files],
            "mean_hu": None if tm.mean_hu is None else {
                tm.region_names[int(v)]: round(float(tm.mean_hu[tm.regions == v].mean()), 1)
                for v in sorted(tm.region_names)
            },
            **tm.quality.as_dict(),
        }
        if ct is None:
            print("warning: no CT found next to the labels; per-element HU not computed")

    (out / "meshes.json").write_text(json.dumps(report, indent=2) + "\n")
    for name, e in report["structures"].items():
        flag = "ok " if e.get("file") else "REFUSED"
        print(f"{flag} {name:<24} {e.get('triangles', 0):>8} tris  {e.get('volume_ml', 0):9.2f} ml "
              f"(voxels {e.get('voxel_volume_ml') or 0:9.2f} ml)  watertight={e.get('watertight')}")
    if "tet" in report:
        t = report["tet"]
        print(f"tet mesh: {t['elements']} elements, min dihedral {t['min_dihedral_deg']:.1f} deg, "
              f"inverted {t['inverted']} -> {', '.join(t['files'])}")
    print(f"wrote {out / 'meshes.json'}")
    if refused:
        raise SurgtwinError(f"{len(refused)} structure(s) not exported: " + "; ".join(refused), path=out)
    return 0


def _maybe_ct(inp: Path, labels_path: Path):
    """The CT for per-element HU: the input when it is not the label image itself, else None."""
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.core.io import load_volume

    if inp.resolve() == labels_path.resolve():
        return None
    candidates = [inp]
    if inp.is_dir():
        candidates += [p for p in sorted(inp.iterdir()) if p.is_dir()]
        candidates += [p for p in sorted(inp.iterdir()) if p.is_file() and p.name.startswith(("ct.", "image."))]
    for c in candidates:
        try:
            vol = load_volume(c)
        except SurgtwinError:
            continue
        if vol.modality in (None, "CT"):
            return vol
    return None
