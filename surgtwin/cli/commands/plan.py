"""`surgtwin plan implant|checks|remove|families`: implants placed on a case and their checks.

    surgtwin plan implant CASE.stwin --family hip-stem --size 4 --femur left [--json OUT]
    surgtwin plan implant CASE.stwin --family pedicle-screw --size 6.5x45 --vertebra L4 --side left
    surgtwin plan implant CASE.stwin --custom cage.stl --pose '{"origin_lps": [..], "axis_lps": [..]}'
    surgtwin plan checks CASE.stwin [--json OUT]
    surgtwin plan remove CASE.stwin --id 2
    surgtwin plan families [--json]
    surgtwin plan tavr CASE [--labels MASK.nii.gz [--table labels.json]] [--hinge x,y,z x,y,z x,y,z]
                       [--family balloon-expandable|self-expanding] [--size 26] [--depth MM] [--json OUT]

``tavr``: CASE is a ``.stwin`` case (the plan is saved into it), a sample-case or DICOM folder, or a
CT image (NIfTI/NRRD/MHA) with ``--labels`` (a binary aorta (+ root) mask, or a multi-label map with
its ``--table``). It prints the annulus measurements, each family's chart with its recommendation and
oversizing, the warnings, the predicted gradient and the paravalvular-leak indicator.
    surgtwin plan trajectory CASE --target X,Y,Z|STRUCTURE[:deepest] [--entry X,Y,Z |
                       --entry-region skin|skull[:X,Y,Z:RADIUS_MM] [--suggest K]] [--pedicle L4:left [--depth MM]]
                       [--instrument NAME] [--margin STRUCTURE=MM ...] [--name N] [--id ID] [--json OUT]
    surgtwin plan instruments [--json]

``trajectory``: CASE is a ``.stwin`` case (the trajectory is saved into it) or a sample-case / DICOM
folder with its labels (nothing saved). It prints the path's metrics per critical structure (clearance
from the instrument's surface against its margin), the structures crossed and the entry angles, and
with ``--entry-region`` the ranked suggestions; exit 0 when the planned path passes, 3 when not.

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

    t = ps.add_parser("tavr", help="TAVR: measure the aortic annulus, size the valve, place it, predict the gradient",
                      description="TAVR planning: annulus, sizing charts per family, virtual valve. "
                                  "Charts are representative: check the manufacturer's IFU. NOT FOR CLINICAL USE.")
    t.add_argument("case", help="NAME.stwin, a sample-case or DICOM folder, or a CT image (NIfTI/NRRD/MHA)")
    t.add_argument("--labels", metavar="MASK", help="a binary aorta (+ root) mask or a multi-label map on the CT")
    t.add_argument("--table", metavar="JSON", help="the label table of --labels (names such as aortic_root, aorta)")
    t.add_argument("--hinge", nargs=3, metavar="X,Y,Z", help="three leaflet hinge points (LPS mm)")
    t.add_argument("--family", help="valve family for the virtual valve: balloon-expandable (default) or self-expanding")
    t.add_argument("--size", help="valve size in mm (default: the chart's recommendation)")
    t.add_argument("--depth", type=float, metavar="MM", help="implantation depth into the LVOT (default per family)")
    t.add_argument("--cardiac-output", type=float, default=5.0, metavar="L_MIN", help="cardiac output (5.0 L/min)")
    t.add_argument("--heart-rate", type=float, default=70.0, metavar="BPM", help="heart rate (70 /min)")
    t.add_argument("--bsa", type=float, metavar="M2", help="body surface area (m^2) for the indexed EOA")
    t.add_argument("--bmi", type=float, help="body-mass index (VARC-3 PPM thresholds for BMI >= 30)")
    t.add_argument("--calcium-hu", type=float, default=850.0, metavar="HU", help="calcium threshold (850 HU)")
    t.add_argument("--json", metavar="OUT", help="write the whole TAVR record as JSON")
    t.add_argument("--allow-stale", action="store_true", help="plan even if the case's labels are stale")

    j = ps.add_parser("trajectory", help="plan a straight instrument path: metrics, auto-suggested safest entries",
                      description="Trajectory planning (biopsy, DBS, ablation, EVD, pedicle): clearance of the "
                                  "instrument's surface to each critical structure against its margin, structures "
                                  "crossed, entry angles; auto-suggest from a skin/skull region. Margins are planning "
                                  "defaults. NOT FOR CLINICAL USE.")
    j.add_argument("case", help="NAME.stwin (the plan is saved into it) or a sample-case/DICOM folder with labels")
    j.add_argument("--target", metavar="X,Y,Z|STRUCTURE", help="target point (LPS mm) or structure (its centroid; "
                   "STRUCTURE:deepest for its most interior point)")
    j.add_argument("--entry", metavar="X,Y,Z", help="entry point (LPS mm; write --entry=-40,0,0 when X is negative)")
    j.add_argument("--entry-region", metavar="REGION[:X,Y,Z:RADIUS_MM]",
                   help="suggest the entry on this surface (skin or a structure such as skull), optionally a patch")
    j.add_argument("--suggest", type=int, default=3, metavar="K", help="with --entry-region: how many suggestions (3)")
    j.add_argument("--pedicle", metavar="LEVEL:SIDE", help="a pedicle path, e.g. L4:left (entry and target on the "
                   "pedicle axis; instrument jamshidi-11g unless given)")
    j.add_argument("--depth", type=float, metavar="MM", help="with --pedicle: the path's depth (default 80%% of the "
                   "bone chord)")
    j.add_argument("--instrument", help="instrument (see: surgtwin plan instruments); default biopsy-needle-14g")
    j.add_argument("--margin", action="append", default=[], metavar="STRUCTURE=MM",
                   help="margin to a critical structure (repeatable), e.g. vessels=3; a negative one drops it")
    j.add_argument("--name", help="a name for the trajectory")
    j.add_argument("--id", help="the trajectory's id (an existing id is replaced)")
    j.add_argument("--json", metavar="OUT", help="write the trajectory record as JSON")
    j.add_argument("--allow-stale", action="store_true", help="plan even if the labels are stale")

    n = ps.add_parser("instruments", help="the instrument catalogue and the default margins")
    n.add_argument("--json", action="store_true", help="print machine-readable JSON")

    f = ps.add_parser("families", help="the implant library: families, sizes, materials")
    f.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return p


def run(args) -> int:
    return {"implant": _implant, "checks": _checks, "remove": _remove, "families": _families,
            "tavr": _tavr, "trajectory": _trajectory, "instruments": _instruments}[args.plan_command](args)


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


def _hinges(items):
    from surgtwin.core.errors import SurgtwinError

    if items is None:
        return None
    out = []
    for it in items:
        try:
            p = [float(v) for v in it.split(",")]
        except ValueError:
            p = []
        if len(p) != 3:
            raise SurgtwinError(f"--hinge {it!r} is not X,Y,Z (LPS mm)", hint="e.g. --hinge 10,2,-3 -8,5,1 0,-12,2")
        out.append(p)
    return out


def _tavr_case(args):
    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.core.case import Provenance
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.services import pipeline

    path = Path(args.case)
    if pipeline.is_case_path(path):
        if args.labels:
            raise SurgtwinError("--labels is for an image, not a saved case", hint="import labels into the case first")
        return pipeline.load_case(path, progress=ProgressBar("opening")), True
    if not path.exists():
        raise SurgtwinError("does not exist", path=path, hint="give a .stwin case, a DICOM folder or a CT image")
    if args.labels is None:
        case = pipeline.new_case(path, progress=ProgressBar("loading"))
        return case, False
    case = pipeline.new_case(path, labels=None, progress=ProgressBar("loading"))
    if case.labels is not None and pipeline.find_case_for(path) is not None:
        case.set_labels(None)
    lab = pipeline.load_labels(Path(args.labels), case.volume, table_path=args.table)
    case.set_labels(lab, Provenance("import", {"file": Path(args.labels).name}))
    return case, False


def _num(v, fmt=".1f", unit=""):
    return "-" if v is None else f"{v:{fmt}}{unit}"


def print_tavr(rec: dict) -> None:
    """The TAVR record as tables (measurements, charts, valve, warnings)."""
    m = rec["measurement"]
    print(f"annulus ({m['method']}; {m['sources'].get('annulus_plane', '')})")
    rows = [("perimeter", _num(m["perimeter_mm"], ".1f", " mm")), ("area", _num(m["area_mm2"], ".1f", " mm^2")),
            ("min / max diameter (caliper)", f"{m['diameter_min_mm']:.1f} / {m['diameter_max_mm']:.1f} mm"),
            ("eccentricity (1 - Dmin/Dmax)", _num(m["eccentricity"], ".3f")),
            ("D_A = 2 sqrt(A/pi)", _num(m["area_derived_diameter_mm"], ".1f", " mm")),
            ("D_P = P/pi", _num(m["perimeter_derived_diameter_mm"], ".1f", " mm")),
            ("coronary height left / right", f"{_num(m['coronary_height_left_mm'], '.1f')} / "
                                             f"{_num(m['coronary_height_right_mm'], '.1f')} mm"),
            ("sinus of Valsalva diameter", f"{_num(m['sinus_diameter_mm'], '.1f', ' mm')} at "
                                           f"{_num(m['sinus_height_mm'], '.1f', ' mm')}"),
            ("sinotubular junction diameter", f"{_num(m['stj_diameter_mm'], '.1f', ' mm')} at "
                                              f"{_num(m['stj_height_mm'], '.1f', ' mm')}"),
            ("centre (LPS mm)", "[" + ", ".join(f"{v:.1f}" for v in m["centre_lps"]) + "]"),
            ("normal (LPS)", "[" + ", ".join(f"{v:.3f}" for v in m["normal_lps"]) + "]")]
    ca = m.get("calcium") or {}
    if ca.get("total_mm3") is not None:
        rows.append(("calcium", f"{ca['total_mm3']:.0f} mm^3 ({ca['source']})"))
        rows.append(("  by sector", ", ".join(f"{k} {v:.0f}" for k, v in ca["sectors"].items()) + " mm^3"))
    for k, v in rows:
        print(f"  {k:<32} {v}")
    print("sizing charts (representative; check the manufacturer's IFU)")
    for fam, s in rec["sizing"].items():
        unit = "mm^2" if s["sized_by"] == "area" else "mm"
        print(f"  {fam} by annulus {s['sized_by']} {s['value']:.1f} {unit}: recommended "
              f"{s['recommended'] or 'none'}" + ("" if s["oversizing_percent"] is None else
                                                f" ({s['oversizing_percent']:+.1f} % {s['sized_by']} oversizing)"))
        for r in s["rows"]:
            mark = "*" if r["size"] == s["recommended"] else ("+" if r["in_range"] else " ")
            print(f"    {mark} {r['size']:>3} mm  {r['min']:>6g}-{r['max']:<6g} {unit:<5} "
                  f"oversizing {r['oversizing_percent']:+6.1f} %")
        for w in s["warnings"]:
            print(f"    warning: {w}")
    v = rec["valve"]
    if v is not None:
        h = rec["hemodynamics"]
        print(f"virtual valve: {v['family']} {v['size']} mm at {v['depth_mm']:.1f} mm into the LVOT "
              f"(frame {v['implant_family']}, oversizing {v['oversizing_percent']:+.1f} %)")
        print(f"  predicted mean gradient {h['mean_gradient_mmhg']:.1f} mmHg (EOA {h['eoa_cm2']:.2f} cm^2, "
              f"CO {h['cardiac_output_l_min']:g} L/min, HR {h['heart_rate_bpm']:g}/min, SET {h['ejection_time_s']:.3f} s, "
              f"mean velocity {h['mean_velocity_m_s']:.2f} m/s)")
        if rec["ppm"]:
            p = rec["ppm"]
            print(f"  indexed EOA {p['indexed_eoa_cm2_m2']:.2f} cm^2/m^2: prosthesis-patient mismatch {p['ppm']} (VARC-3)")
        r = rec["pvl_risk"]
        print(f"  paravalvular-leak indicator: {r['level'].upper()} ({'; '.join(r['reasons']) or 'no risk factor'}; "
              "planning indicator, not validated)")
    for w in rec["warnings"]:
        print(f"warning: {w}")


def _tavr(args) -> int:

    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.core.plan import tavr_devices
    from surgtwin.services import pipeline

    hinge = _hinges(args.hinge)
    out_json = _out_path(args.json)
    if args.family is not None:
        tavr_devices.chart(args.family)  # before the image is loaded
    case, saved = _tavr_case(args)
    opts = {"family": args.family, "size": args.size, "depth_mm": args.depth, "hinge_points": hinge,
            "cardiac_output_l_min": args.cardiac_output, "heart_rate_bpm": args.heart_rate, "bsa_m2": args.bsa,
            "bmi": args.bmi, "calcium_hu": args.calcium_hu}
    out = pipeline.run_step(case, "tavr", allow_stale=args.allow_stale, progress=ProgressBar("tavr"), **opts)
    _save_and_print(args, case, saved, "tavr", out.result, print_tavr, out_json)
    return 0


def _save_and_print(args, case, saved: bool, key: str, rec: dict, printer, out_json) -> None:
    """Save the case (when it is a saved one), print the record, write ``{"case", key: rec}`` JSON."""
    import json

    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.services import pipeline

    if saved:
        pipeline.save_case(case, args.case, progress=ProgressBar("saving"))
    printer(rec)
    if out_json is not None:
        out_json.write_text(json.dumps({"case": str(args.case), key: rec}, indent=1) + "\n")
        print(f"wrote {out_json}")
    print("NOT FOR CLINICAL USE")


# -- trajectories --------------------------------------------------------------------------------------
def _point(text: str, what: str):
    from surgtwin.core.errors import SurgtwinError

    try:
        p = [float(v) for v in text.split(",")]
    except ValueError:
        p = []
    if len(p) != 3:
        raise SurgtwinError(f"{what} {text!r} is not X,Y,Z (LPS mm)", hint="e.g. 30,-2.5,8")
    return p


def _trajectory_options(args) -> dict:
    from surgtwin.core.errors import SurgtwinError

    opts = {"instrument": args.instrument, "margins": _margins(args.margin), "trajectory_name": args.name,
            "id": args.id}
    if args.target is not None:
        t = args.target
        opts["target"] = _point(t, "--target") if "," in t else t
    given = [x for x in ("entry", "entry_region", "pedicle") if getattr(args, x) is not None]
    if len(given) != 1:
        raise SurgtwinError("give one of --entry, --entry-region or --pedicle")
    if args.entry is not None:
        opts["entry"] = _point(args.entry, "--entry")
    if args.entry_region is not None:
        region, _, patch = args.entry_region.partition(":")
        opts["entry_region"], opts["suggest"] = region, args.suggest
        if patch:
            centre, _, radius = patch.rpartition(":")
            try:
                opts["patch_radius_mm"] = float(radius)
            except ValueError:
                raise SurgtwinError(f"--entry-region {args.entry_region!r} is not REGION:X,Y,Z:RADIUS_MM",
                                    hint="e.g. skull:60,0,20:25") from None
            opts["patch_centre"] = _point(centre, "--entry-region centre")
    if args.pedicle is not None:
        opts["pedicle"], opts["depth_mm"] = args.pedicle, args.depth
    elif args.target is None:
        raise SurgtwinError("give --target (a point X,Y,Z or a structure)")
    return opts


def print_trajectory(rec: dict) -> None:
    """A trajectory record as tables: metrics per structure, crossings, angles, suggestions."""
    from surgtwin.core.plan.trajectory import TrajectoryMetrics

    m = TrajectoryMetrics.from_json(rec["metrics"])
    e, t = rec["entry_lps"], rec["target_lps"]
    ins = rec["instrument"]
    print(f"trajectory {rec['id']} ({rec['name']}, {rec['method']}): {rec['verdict'].upper()}")
    print(f"  {ins['label']} ({ins['diameter_mm']:g} mm, {ins['length_mm']:g} mm); entry [{e[0]:.1f}, {e[1]:.1f}, "
          f"{e[2]:.1f}] -> target [{t[0]:.1f}, {t[1]:.1f}, {t[2]:.1f}] mm LPS"
          + (f" ({rec['target_structure']})" if rec.get("target_structure") else ""))
    for item, value, limit, flag in m.rows():
        print(f"  {flag:<4}  {item:<32} {value:<44} {limit}")
    for r in m.reasons:
        print(f"  fails: {r}")
    sug = rec.get("suggestion")
    if sug:
        print(f"suggestions from the {sug['region']} surface: {sug['feasible']} of {sug['candidates']} candidate entries "
              f"feasible (scored in {sug['scoring_ms']:.0f} ms; {', '.join(sug['structures'])})")
        print(f"  {'rank':<4} {'entry (LPS mm)':<26} {'length':>7} {'angle':>6} {'worst clearance/margin':>23} "
              f"{'score':>6}  verdict")
        for r in sug["ranked"]:
            mm = TrajectoryMetrics.from_json(r["metrics"])
            p = mm.entry_lps
            ang = mm.entry_angles[-1].angle_deg if mm.entry_angles else None
            worst = min(mm.clearances, key=lambda c: c.min_distance_mm / max(c.margin_mm, 0.5), default=None)
            wtxt = "-" if worst is None else f"{worst.min_distance_mm:.1f}/{worst.margin_mm:g} mm {worst.structure}"
            print(f"  {r['rank']:<4} [{p[0]:6.1f}, {p[1]:6.1f}, {p[2]:6.1f}]   {mm.length_mm:6.1f} "
                  f"{'-' if ang is None else f'{ang:5.1f}':>6} {wtxt:>23} {r['score']:6.2f}  {mm.verdict.upper()}")
    notes = rec.get("notes") or {}
    if notes.get("level"):
        print(f"  pedicle {notes['level']} {notes['side']}: width {notes['pedicle_width_mm']:.1f} mm, bone chord "
              f"{notes['bone_chord_mm']:.1f} mm, medial angle {notes['medial_angle_deg']:.1f} deg "
              f"(levels named assuming {notes['level_assumption']})")
        for w in notes.get("warnings", []):
            print(f"  warning: {w}")


def _trajectory(args) -> int:

    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.services import pipeline

    opts = _trajectory_options(args)
    out_json = _out_path(args.json)
    if opts.get("instrument"):
        from surgtwin.core.plan.trajectory import instrument

        instrument(opts["instrument"])  # before the case is loaded
    path = Path(args.case)
    saved = pipeline.is_case_path(path)
    if saved:
        case = pipeline.load_case(path, progress=ProgressBar("opening"))
    elif path.is_dir():
        case = pipeline.new_case(path, progress=ProgressBar("loading"))
    else:
        raise SurgtwinError("is not a case", path=path, hint="give a .stwin case or a sample-case/DICOM folder")
    if case.labels is None:
        raise SurgtwinError("the case has no label map", path=path, hint="segment it first: surgtwin case run ...")
    out = pipeline.run_step(case, "trajectory", allow_stale=args.allow_stale, progress=ProgressBar("trajectory"),
                            **opts)
    _save_and_print(args, case, saved, "trajectory", out.summary["trajectory"], print_trajectory, out_json)
    return 0 if out.summary["passed"] else 3


def _instruments(args) -> int:
    import json

    from surgtwin.core.plan.trajectory import default_margins, instruments
    from surgtwin.core.plan.trajectory_suggest import MAX_ANGLE_DEG

    cat = {k: v.to_json() for k, v in instruments().items()}
    from surgtwin import resources

    table = json.loads((resources.instruments_dir() / "margins.json").read_text())["margins_mm"]
    if args.json:
        print(json.dumps({"instruments": cat, "margins_mm": default_margins(table)}, indent=2))
        return 0
    for k, v in cat.items():
        print(f"{k:<24} {v['diameter_mm']:>5g} mm x {v['length_mm']:>4g} mm  {v['tip']:<12} {v['label']}")
    print("default margins (planning defaults; other vessel names 2 mm, arteries 3 mm): "
          + ", ".join(f"{k} {v:g}" for k, v in default_margins(table).items()) + " mm")
    print(f"suggested entries: at most {MAX_ANGLE_DEG:g} deg from the entry surface's normal")
    return 0
