"""`surgtwin plan implant|checks|remove|families`: implants placed on a case and their checks.

    surgtwin plan implant CASE.stwin --family hip-stem --size 4 --femur left [--json OUT]
    surgtwin plan implant CASE.stwin --family pedicle-screw --size 6.5x45 --vertebra L4 --side left
    surgtwin plan implant CASE.stwin --custom cage.stl --pose '{"origin_lps": [..], "axis_lps": [..]}'
    surgtwin plan checks CASE.stwin [--json OUT]
    surgtwin plan remove CASE.stwin --id 2
    surgtwin plan families [--json]

``implant`` and ``checks`` exit with 0 when every check passed and 3 when one failed (the table says
which); a user error exits with 2 as everywhere.
"""

from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("plan", help="place implants on a case and check them (breach, critical structures)",
                       description="Implant planning on the patient's twin. NOT FOR CLINICAL USE.",
                       epilog="implant and checks exit with 3 when a check failed")
    ps = p.add_subparsers(dest="plan_command", metavar="ACTION", required=True)

    i = ps.add_parser("implant", help="place an implant (pose given, or automatic on a femur/vertebra) and save")
    i.add_argument("case", help="the case (NAME.stwin)")
    i.add_argument("--family", help="implant family (see: surgtwin plan families)")
    i.add_argument("--size", help="size label, e.g. 4 (hip-stem) or 6.5x45 (pedicle-screw)")
    i.add_argument("--custom", metavar="FILE", help="your own implant mesh (STL/3MF/OBJ/PLY/VTP in mm) instead")
    i.add_argument("--material", help="material key (default: the family's; ti6al4v for --custom)")
    i.add_argument("--femur", choices=("left", "right"), help="automatic pose: a hip stem in this femur")
    i.add_argument("--vertebra", metavar="LEVEL", help="automatic pose: a pedicle screw in this level (e.g. L4)")
    i.add_argument("--side", choices=("left", "right"), help="with --vertebra: the pedicle's side")
    i.add_argument("--pose", metavar="JSON", help="the pose as JSON text or @file.json (LPS mm; "
                   '{"origin_lps": [x,y,z], "axis_lps": [dx,dy,dz]} or {"translation_mm", "rotation_vector_deg"} '
                   'or {"matrix": 4x4}); default with a target: automatic')
    i.add_argument("--name", help="a name for the placement")
    i.add_argument("--id", help="the placement's id (an existing id is replaced)")
    i.add_argument("--margin", action="append", default=[], metavar="STRUCTURE=MM",
                   help="margin to a critical structure (repeatable), e.g. spinal_canal=3")
    i.add_argument("--json", metavar="OUT", help="write the placement and its checks as JSON")
    i.add_argument("--allow-stale", action="store_true", help="place even if the labels are stale")

    c = ps.add_parser("checks", help="check every placed implant on the case's current labels")
    c.add_argument("case", help="the case (NAME.stwin)")
    c.add_argument("--json", metavar="OUT", help="write the checks as JSON")

    r = ps.add_parser("remove", help="remove a placed implant and save")
    r.add_argument("case", help="the case (NAME.stwin)")
    r.add_argument("--id", required=True, help="the placement's id")

    f = ps.add_parser("families", help="the implant library: families, sizes, materials")
    f.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return p


def run(args) -> int:
    return {"implant": _implant, "checks": _checks, "remove": _remove, "families": _families}[args.plan_command](args)


def _pose_arg(text: str | None):
    import json

    from surgtwin.core.errors import SurgtwinError

    if text is None:
        return None
    src = "--pose"
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text()
        except OSError as exc:
            raise SurgtwinError(f"cannot read the pose file ({exc.strerror or exc})", path=path) from None
        src = str(path)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise SurgtwinError(f"{src} is not valid JSON ({exc})") from None


def _margins(items) -> dict:
    from surgtwin.core.errors import SurgtwinError

    out = {}
    for it in items:
        name, _, mm = it.partition("=")
        try:
            out[name.strip()] = float(mm)
        except ValueError:
            raise SurgtwinError(f"--margin {it!r} is not STRUCTURE=MM", hint="e.g. --margin spinal_canal=3") from None
    return out


def _out_path(text: str | None):
    if text is None:
        return None
    from surgtwin.core.io import check_output_path

    check_output_path(Path(text), (".json",))
    return Path(text)


def _print_checks(pid: str, name: str, result) -> None:
    print(f"implant {pid} ({name}): {'PASSED' if result.passed else 'FAILED'} ({result.elapsed_ms:.1f} ms)")
    for check, value, limit, flag in result.rows():
        print(f"  {flag:<4}  {check:<32} {value:<44} {limit}")
    for w in result.warnings:
        print(f"  warning: {w}")


def _implant(args) -> int:
    import json

    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.services import pipeline

    if args.custom is None and (args.family is None or args.size is None):
        raise SurgtwinError("give --family and --size (or --custom FILE)", hint="see: surgtwin plan families")
    if args.vertebra and not args.side:
        raise SurgtwinError("--vertebra needs --side left|right")
    if args.femur and args.vertebra:
        raise SurgtwinError("give one target: --femur or --vertebra")
    pose = _pose_arg(args.pose)
    margins = _margins(args.margin)
    out_json = _out_path(args.json)
    if args.family is not None:
        from surgtwin.core.plan import implants

        implants.family(args.family).params(args.size)  # before the case is loaded
    case = pipeline.load_case(args.case, progress=ProgressBar("opening"))
    opts = {"family": args.family, "size": args.size, "custom": args.custom, "material": args.material,
            "femur": args.femur, "vertebra": args.vertebra, "side": args.side, "placement_name": args.name, "id": args.id,
            "margins": margins}
    if pose is not None:
        opts["pose"] = pose
    out = pipeline.run_step(case, "implant", allow_stale=args.allow_stale, progress=ProgressBar("implant"), **opts)
    rec = out.summary["placement"]
    pipeline.save_case(case, args.case, progress=ProgressBar("saving"))
    _print_checks(rec["id"], rec["name"], out.result)
    for w in rec.get("warnings", []):
        if w not in out.result.warnings:
            print(f"  warning: {w}")
    p = rec["pose"]
    print(f"  pose: origin {[round(v, 1) for v in p['translation_mm']]} mm LPS, "
          f"axis {[round(r[2], 3) for r in p['matrix'][:3]]}")
    if out_json is not None:
        out_json.write_text(json.dumps({"case": str(args.case), "placement": rec}, indent=2) + "\n")
        print(f"wrote {out_json}")
    print("NOT FOR CLINICAL USE")
    return 0 if out.result.passed else 3


def _checks(args) -> int:
    import json

    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.services import implants as svc
    from surgtwin.services import pipeline

    out_json = _out_path(args.json)
    case = pipeline.load_case(args.case, progress=ProgressBar("opening"))
    placed = svc.placements(case)
    if not placed:
        print(f"{args.case}: no implant placed (run: surgtwin plan implant CASE ...)")
        return 0
    results = svc.check_all(case, progress=ProgressBar("checks"))
    for p in placed:
        _print_checks(p.id, p.name, results[p.id])
    if out_json is not None:
        out_json.write_text(json.dumps({"case": str(args.case), "checks": {k: r.to_json() for k, r in results.items()}},
                                       indent=2) + "\n")
        print(f"wrote {out_json}")
    print("NOT FOR CLINICAL USE")
    return 0 if all(r.passed for r in results.values()) else 3


def _remove(args) -> int:
    from surgtwin.services import implants as svc
    from surgtwin.services import pipeline

    case = pipeline.load_case(args.case)
    svc.remove_implant(case, args.id)
    pipeline.save_case(case, args.case)
    print(f"removed implant {args.id}; {len(svc.placements(case))} left")
    return 0


def _families(args) -> int:
    import json

    from surgtwin.core.plan import implants

    fams = [implants.family(n).describe() for n in implants.families()]
    if args.json:
        print(json.dumps({"families": fams, "materials": {k: m.to_json() for k, m in implants.materials().items()}},
                         indent=2))
        return 0
    for f in fams:
        sizes = f["sizes"] if len(f["sizes"]) <= 8 else f["sizes"][:3] + ["..."] + f["sizes"][-2:]
        print(f"{f['name']:<26} {f['material']:<8} sizes: {', '.join(sizes)} ({len(f['sizes'])})")
    for k, m in implants.materials().items():
        print(f"material {k:<8} E {m.youngs_modulus_gpa:g} GPa, nu {m.poisson_ratio:g}, yield {m.yield_mpa:g} MPa "
              f"({m.yield_range_mpa[0]:g}-{m.yield_range_mpa[1]:g})  {m.name}")
    return 0
