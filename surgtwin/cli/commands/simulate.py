"""`surgtwin simulate fem|flow`: finite elements on the bone with a placed implant (stress shielding,
safety); reduced-order blood flow on the vessel centerlines (pressure drop across stenoses, stent).

    surgtwin simulate fem CASE.stwin --implant hip-stem [--size 3] [--femur left]
        [--load walking|stairs|3xBW] [--body-weight-kg 75] [--mesh-size-mm 2] [--compare 5] [--json OUT]
    surgtwin simulate fem CASE.stwin --implant 2 --load pullout --force-n 500

``--implant``: a placed implant's id or name, or a library family. When the case has no implant of
that family, one is placed with the automatic pose (``--femur`` side, default the femur the labels
have; ``--vertebra L4 --side left`` for a screw), in the middle size unless ``--size`` says. The
zone table (strain energy density intact vs implanted) and the implant's safety factor are printed;
the results are saved in the case (``fem:<id>``). ``--compare SIZE``: the same pose with another size.

    surgtwin simulate flow CASE [--structures aorta,iliac_artery_left] [--inflow ML_S]
        [--pulsatile --cycles N] [--stent SEG=DIAM_MM ...] [--largest] [--json OUT]
    surgtwin simulate flow CT.nii.gz --labels MASK.nii.gz [--table labels.json] [--structures 52,65,66]

CASE: a ``.stwin`` case (the results are saved in it: ``centerlines:<tree>``, ``flow:<tree>``), a
sample-case or DICOM folder, or an image with ``--labels`` (a multi-label map with its table, or a
binary mask). ``--structures`` takes label names or label values. Prints the segment table (length,
mean/min radius, stenosis %, mean flow, pressure drop, distal/proximal pressure ratio); ``--stent``
(a segment ``b3`` or a stenosis ``s0`` = a diameter in mm) adds the before/after table.
"""

from __future__ import annotations

import math
from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("simulate", help="finite elements (bone + implant: stress shielding); blood flow in vessels",
                       description="Simulation on the patient's twin. NOT FOR CLINICAL USE.")
    ps = p.add_subparsers(dest="simulate_command", metavar="ACTION", required=True)
    f = ps.add_parser("fem", help="linear elasticity of the bone intact vs with the implant; saves the case")
    f.add_argument("case", help="the case (NAME.stwin)")
    f.add_argument("--implant", required=True, help="a placed implant's id or name, or a library family (hip-stem)")
    f.add_argument("--size", help="the implant size when it is placed here (default: the family's middle size)")
    f.add_argument("--femur", choices=("left", "right"), help="placing a stem: the femur (default: the one labelled)")
    f.add_argument("--vertebra", metavar="LEVEL", help="placing a screw: the level (e.g. L4)")
    f.add_argument("--side", choices=("left", "right"), help="placing a screw: the pedicle's side")
    f.add_argument("--load", help="stems: walking (2.5 x BW), stairs (2.6 x BW) or e.g. 3xBW; screws: pullout "
                   "or compression")
    f.add_argument("--body-weight-kg", type=float, default=75.0, metavar="KG", help="body weight (default 75)")
    f.add_argument("--force-n", type=float, metavar="N", help="screws: pull-out (500) / compression (1000) force")
    f.add_argument("--mesh-size-mm", type=float, default=2.0, metavar="MM", help="tet element size (default 2)")
    f.add_argument("--calibration", metavar="A,B", help="CT calibration rho_app[g/cm3] = A + B * HU (default 0,0.001)")
    f.add_argument("--site", help="density-modulus law (Morgan 2003): femoral_neck, vertebra, greater_trochanter, "
                   "proximal_tibia, pooled (default: by bone)")
    f.add_argument("--compare", metavar="SIZE", help="what if: solve the same pose with this size too and compare")
    f.add_argument("--json", metavar="OUT", help="write the results (tables, loads, solver) as JSON")
    f.add_argument("--allow-stale", action="store_true", help="run even if the labels changed since the placement")
    w = ps.add_parser("flow", help="vessel centerlines and 0D blood flow: pressure drop across stenoses, "
                      "virtual stent")
    w.add_argument("case", help="a case (NAME.stwin), a sample-case or DICOM folder, or an image with --labels")
    w.add_argument("--labels", metavar="MASK", help="label image (multi-label map or binary vessel mask)")
    w.add_argument("--table", metavar="JSON", help="the label table of --labels (names of the values)")
    w.add_argument("--structures", metavar="A,B", help="label names or values making up the vessel tree "
                   "(default: aorta + iliac + renal arteries present; a binary mask: its one label)")
    w.add_argument("--name", default="aorta", help="item name: centerlines:NAME, flow:NAME (default aorta)")
    w.add_argument("--inflow", type=float, metavar="ML_S", help="inlet mean flow in ml/s (default 30 for the "
                   "infrarenal aorta at rest + 9 per renal artery)")
    w.add_argument("--pulsatile", action="store_true", help="solve the pulsatile flow (default: steady)")
    w.add_argument("--cycles", type=int, default=10, metavar="N", help="pulsatile: cardiac cycles (default 10)")
    w.add_argument("--stent", action="append", metavar="SEG=DIAM_MM", help="what if: stent a segment (b0) or a "
                   "stenosis (s0) to this diameter; repeatable")
    w.add_argument("--largest", action="store_true", help="keep the largest piece of a mask in several pieces")
    w.add_argument("--root", metavar="L,P,S", help="a point (LPS mm) near the inlet end (default: the widest end)")
    w.add_argument("--json", metavar="OUT", help="write the tables and figures as JSON")
    w.add_argument("--allow-stale", action="store_true", help="run even if the case's labels are stale")
    return p


def run(args) -> int:
    return {"fem": _fem, "flow": _flow}[args.simulate_command](args)


def _calibration(text):
    from surgtwin.core.errors import SurgtwinError

    if text is None:
        return None
    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError:
        raise SurgtwinError(f"--calibration {text!r} is not A,B", hint="e.g. --calibration 0,0.001") from None
    if not (math.isfinite(a) and math.isfinite(b) and b > 0):
        raise SurgtwinError("--calibration needs finite numbers and a positive slope B")
    return (a, b)


def _finite(obj):
    """JSON-safe: NaN/inf become None (case files and outputs are strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _placement(case, args):
    """The placement to simulate: an existing one, or one placed here with the automatic pose."""
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.services import implants as implant_service
    from surgtwin.services import pipeline

    placed = implant_service.placements(case)
    for match in (lambda p: p.id == args.implant, lambda p: p.name == args.implant):
        found = [p for p in placed if match(p)]
        if found:
            return found[0]
    same_family = [p for p in placed if p.implant.family == args.implant]
    if same_family:
        fits = [p for p in same_family if args.size is None or p.implant.size == str(args.size)]
        if not fits:
            have = ", ".join(f"{p.id} (size {p.implant.size})" for p in same_family)
            raise SurgtwinError(f"the case's {args.implant} is {have}, not size {args.size}",
                                hint=f"use --compare {args.size} for a what-if, or place it: surgtwin plan implant")
        if len(fits) > 1:
            raise SurgtwinError(f"several {args.implant} implants are placed", hint="give the id: " +
                                ", ".join(p.id for p in fits))
        return fits[0]
    from surgtwin.core.plan import implants

    fam = implants.family(args.implant)  # refuses an unknown family by name
    size = str(args.size) if args.size is not None else fam.size_labels()[len(fam.size_labels()) // 2]
    opts = {"family": fam.name, "size": size}
    if args.vertebra:
        if not args.side:
            raise SurgtwinError("--vertebra needs --side", hint="--side left or --side right")
        opts.update(vertebra=args.vertebra, side=args.side)
    else:
        names = case.labels.labels.names() if case.labels is not None else []
        opts["femur"] = args.femur or ("left" if "femur_left" in names or "femur_right" not in names else "right")
    print(f"placing {fam.name} size {size} with the automatic pose ("
          + ", ".join(f"{k} {v}" for k, v in opts.items() if k not in ("family", "size")) + ")")
    out = pipeline.run_step(case, "implant", allow_stale=args.allow_stale, **opts)
    for w in out.summary.get("placement", {}).get("warnings", []):
        print(f"warning: {w}")
    return implant_service.placement(case, out.summary["placement"]["id"])


def _print_run(key: str, s: dict) -> None:
    im = s["implant"]
    print(f"{key}: {im['family']} size {im['size']} (implant {im['id']}) in {s['structure']}, "
          f"{s['mesh']['elements']} tetrahedra of {s['mesh']['size_mm']:g} mm")
    print(f"  intact:    {s['loads']['intact']}")
    print(f"  implanted: {s['loads']['implanted']}")
    sv = s["solves"]
    print(f"  solver: AMG-CG {sv['intact']['iterations']} + {sv['implanted']['iterations']} iterations, relative "
          f"residual <= {max(sv['intact']['relative_residual'], sv['implanted']['relative_residual']):.1e}")
    print("  " + s["table"].replace("\n", "\n  "))
    for w in s.get("warnings", []):
        print(f"  warning: {w}")


def _fem(args) -> int:
    import json

    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.services import pipeline, simulate

    out_path = None
    if args.json:
        from surgtwin.core.io import check_output_path

        out_path = Path(args.json)
        check_output_path(out_path, (".json",))
    if not (0.5 <= args.mesh_size_mm <= 10.0):
        raise SurgtwinError(f"--mesh-size-mm must be between 0.5 and 10, got {args.mesh_size_mm:g}")
    opts = {"size_mm": args.mesh_size_mm, "load": args.load, "body_weight_kg": args.body_weight_kg,
            "force_n": args.force_n, "calibration": _calibration(args.calibration), "site": args.site}
    if args.site is not None:
        from surgtwin.core.sim.materials import density_modulus

        density_modulus(args.site)
    if args.load is not None and args.load not in ("pullout", "compression"):
        from surgtwin.core.sim.loads import parse_activity

        parse_activity(args.load)
    case = pipeline.load_case(args.case, progress=ProgressBar("opening"))
    placed = _placement(case, args)
    report: dict = {"case": str(args.case)}
    if args.compare is None:
        out = pipeline.run_step(case, "fem", allow_stale=args.allow_stale, progress=ProgressBar("fem"),
                                implant=placed.id, **opts)
        ((key, summary),) = out.summary.items()
        _print_run(key, summary)
        report["results"] = {key: summary}
    else:
        res = simulate.what_if(case, placed.id, size_b=args.compare, allow_stale=args.allow_stale,
                               progress=ProgressBar("fem what-if"), **opts)
        for key, s in zip(res["keys"], (res["a"], res["b"]), strict=True):
            _print_run(key, s)
        print(res["sentence"])
        report["results"] = dict(zip(res["keys"], (res["a"], res["b"]), strict=True))
        report["comparison"] = {k: v for k, v in res["comparison"].items() if k not in res["labels"]}
    pipeline.save_case(case, args.case, progress=ProgressBar("saving"))
    if out_path is not None:
        out_path.write_text(json.dumps(_finite(report), indent=2) + "\n")
        print(f"wrote {out_path}")
    print("NOT FOR CLINICAL USE")
    return 0


def _stents(values) -> dict:
    from surgtwin.core.errors import SurgtwinError

    out = {}
    for v in values or []:
        seg, sep, dia = v.partition("=")
        try:
            d = float(dia)
        except ValueError:
            d = float("nan")
        if not sep or not seg.strip() or not math.isfinite(d) or d <= 0:
            raise SurgtwinError(f"--stent {v!r} is not SEG=DIAM_MM", hint="e.g. --stent s0=18 or --stent b0=20")
        out[seg.strip()] = d
    return out


def _point(text):
    from surgtwin.core.errors import SurgtwinError

    if text is None:
        return None
    try:
        p = [float(v) for v in text.split(",")]
    except ValueError:
        p = []
    if len(p) != 3 or not all(math.isfinite(v) for v in p):
        raise SurgtwinError(f"--root {text!r} is not L,P,S in mm", hint="e.g. --root 20,-50,300")
    return p


def _open_for_flow(args):
    """(case, path to save it to or None) for ``simulate flow``'s CASE and --labels/--table."""
    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.core.case import Provenance
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.services import pipeline

    path = Path(args.case)
    if pipeline.is_case_path(path):
        if args.labels:
            raise SurgtwinError("--labels is for an image; a case already has its labels", path=path)
        return pipeline.load_case(path, progress=ProgressBar("opening")), path
    if not path.exists():
        raise SurgtwinError("does not exist", path=path, hint="give a .stwin case, a DICOM folder or an image")
    if args.table and not args.labels:
        raise SurgtwinError("--table needs --labels")
    case = pipeline.new_case(path, progress=ProgressBar("opening"))
    if args.labels:
        lab = pipeline.load_labels(args.labels, case.volume, table_path=args.table)
        case.set_labels(lab, Provenance("import", {"file": Path(args.labels).name}))
    if case.labels is None:
        raise SurgtwinError("has no labels to find vessels in", path=path,
                            hint="give --labels MASK.nii.gz (a vessel mask or a label map with its table)")
    return case, None


def _flow(args) -> int:
    import json

    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.services import pipeline

    out_path = None
    if args.json:
        from surgtwin.core.io import check_output_path

        out_path = Path(args.json)
        check_output_path(out_path, (".json",))
    if args.inflow is not None and not (math.isfinite(args.inflow) and args.inflow > 0):
        raise SurgtwinError(f"--inflow must be a positive number of ml/s, got {args.inflow:g}")
    if not 1 <= args.cycles <= 100:
        raise SurgtwinError(f"--cycles must be between 1 and 100, got {args.cycles}")
    opts = {"tree": args.name, "inflow_ml_s": args.inflow, "pulsatile": args.pulsatile, "cycles": args.cycles,
            "stent": _stents(args.stent), "root_lps": _point(args.root),
            "components": "largest" if args.largest else None,
            "structures": [s for s in args.structures.split(",") if s.strip()] if args.structures else None}
    case, save_to = _open_for_flow(args)
    out = pipeline.run_step(case, "flow", allow_stale=args.allow_stale, progress=ProgressBar("flow"), **opts)
    s = out.summary
    kind = f"pulsatile, {args.cycles} cycles" if args.pulsatile else "steady"
    print(f"{s['key']}: inflow {s['inflow_ml_s']:g} ml/s ({kind}); outlets split by Murray's law (r^3)")
    for w in s.get("warnings", []):
        print(f"warning: {w}")
    print(s["text"])
    if "inlet_pressure_mmhg" in s:
        p = s["inlet_pressure_mmhg"]
        print(f"inlet pressure {p['max']:g}/{p['min']:g} mmHg, mean {p['mean']:g} mmHg (last cycle)")
    for st in s["stenoses"]:
        ratio = "-" if st["pressure_ratio"] is None else f"{st['pressure_ratio']:.3f}"
        print(f"stenosis {st['id']} on {st['segment']}: {st['diameter_percent']:.1f} % diameter "
              f"({st['area_percent']:.1f} % area), d_min {st['min_diameter_mm']:.1f} mm / d_ref "
              f"{st['reference_diameter_mm']:.1f} mm, length {st['length_mm']:.0f} mm at LPS "
              f"({', '.join(f'{v:.1f}' for v in st['position_lps'])}); Pd/Pp {ratio}")
    if "stent" in s:
        print(f"what if: stent ({', '.join(f'{k} {v:g} mm' for k, v in s['stent']['segments'].items())})")
        print(s["stent"]["text"])
    if save_to is not None:
        pipeline.save_case(case, save_to, progress=ProgressBar("saving"))
    if out_path is not None:
        report = {"case": str(args.case), **{k: v for k, v in s.items() if k != "text"}}
        if "stent" in report:
            report["stent"] = {k: v for k, v in report["stent"].items() if k != "text"}
        out_path.write_text(json.dumps(_finite(report), indent=2) + "\n")
        print(f"wrote {out_path}")
    print("NOT FOR CLINICAL USE")
    return 0
