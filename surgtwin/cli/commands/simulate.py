"""`surgtwin simulate fem`: finite elements on the bone with a placed implant (stress shielding, safety).

    surgtwin simulate fem CASE.stwin --implant hip-stem [--size 3] [--femur left]
        [--load walking|stairs|3xBW] [--body-weight-kg 75] [--mesh-size-mm 2] [--compare 5] [--json OUT]
    surgtwin simulate fem CASE.stwin --implant 2 --load pullout --force-n 500

``--implant``: a placed implant's id or name, or a library family. When the case has no implant of
that family, one is placed with the automatic pose (``--femur`` side, default the femur the labels
have; ``--vertebra L4 --side left`` for a screw), in the middle size unless ``--size`` says. The
zone table (strain energy density intact vs implanted) and the implant's safety factor are printed;
the results are saved in the case (``fem:<id>``). ``--compare SIZE``: the same pose with another size.
"""

from __future__ import annotations

import math
from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("simulate", help="finite-element studies on a case (bone + implant: stress shielding)",
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
    return p


def run(args) -> int:
    return {"fem": _fem}[args.simulate_command](args)


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
