"""`surgtwin cohort run|virtual|results`: the pipeline over many cases (Dask), and in-silico trials.

    surgtwin cohort virtual --kind cardiac-cta -n 20 --out TRIAL/       (writes TRIAL/cohort.json)
    surgtwin cohort run TRIAL/cohort.json --steps segment,mesh,tavr --out TRIAL/ [--workers 2]
    surgtwin cohort run STUDIES/ --steps segment,mesh --out RUN/ --scheduler tcp://host:8786
    surgtwin cohort run TRIAL/cohort.json --steps segment,mesh,tavr --out TRIAL/ --rerun-from tavr
    surgtwin cohort results RUN/ [--no-report]                          (table + report again)
    surgtwin cohort virtual --kind abdomen-pelvis -n 5 --arm implant.size=2,4,6 --out HIP/   (15 cases)

A rerun skips the cases whose results are complete and current and resumes a partial case from its
last finished step; a failing case is recorded and reported while the others go on.
"""

from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("cohort", help="run steps over many cases on Dask; virtual cohorts for in-silico trials",
                       description="The same plan over many twins: one case per study, each step with "
                                   "provenance, resumable, on a local Dask cluster or an existing one. "
                                   "NOT FOR CLINICAL USE.")
    cs = p.add_subparsers(dest="cohort_command", metavar="ACTION", required=True)

    r = cs.add_parser("run", help="run pipeline steps on every case of a cohort; write the results table and report")
    r.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="DICOM study folders, a folder of study folders, .stwin cases, sample case folders, "
                        "or a cohort.json (e.g. from `surgtwin cohort virtual`)")
    r.add_argument("--steps", default="segment,mesh", help="comma-separated steps (default: segment,mesh)")
    r.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder (cases/, results/, table, report)")
    r.add_argument("--workers", type=int, metavar="N",
                   help="local Dask worker processes (default: the CPU count; 0 = run in this process)")
    r.add_argument("--scheduler", metavar="ADDRESS",
                   help="an existing Dask scheduler (tcp://host:8786); its workers need surgtwin and these paths")
    r.add_argument("--memory-limit", default=None, metavar="SIZE",
                   help="memory per local worker, e.g. 6GiB (a worker above it is restarted; default 6GiB)")
    r.add_argument("--option", action="append", default=[], metavar="STEP.KEY=VALUE",
                   help="a step option, e.g. flow.components=largest or tavr.family=self-expanding "
                        "(VALUE read as JSON when it parses, else text), for every case: it overrides a "
                        "case's own options in cohort.json; repeatable")
    r.add_argument("--arm", action="append", default=[], metavar="STEP.KEY=V1,V2,...",
                   help="trial arms: every case once per value, e.g. implant.size=2,4,6 (ids get -size2, ...); "
                        "repeatable (every combination)")
    r.add_argument("--rerun-from", metavar="STEP",
                   help="run STEP and the steps after it again on every case, even when current "
                        "(e.g. after updating surgtwin); the steps before it are kept")
    r.add_argument("--no-report", action="store_true", help="write the results table only (no PDF)")

    v = cs.add_parser("virtual", help="a virtual cohort: N synthetic patients with varied anatomy and known truth")
    v.add_argument("--kind", required=True, choices=("abdomen-pelvis", "cardiac-cta", "head"), help="anatomy")
    v.add_argument("-n", type=int, required=True, help="number of patients")
    v.add_argument("--out", "-o", required=True, metavar="DIR", help="folder for cohort.json (the cohort's manifest)")
    v.add_argument("--first-seed", type=int, default=0, help="seed of the first patient (default 0)")
    v.add_argument("--pixel-mm", type=float, help="in-plane spacing (default: drawn per patient within the kind's range)")
    v.add_argument("--slice-mm", type=float, help="slice spacing (default: drawn per patient)")
    v.add_argument("--arm", action="append", default=[], metavar="STEP.KEY=V1,V2,...",
                   help="trial arms: every patient once per value, e.g. implant.size=2,4,6 (the same patients "
                        "with each stem size); repeatable (every combination)")

    s = cs.add_parser("results", help="write the results table (CSV, Parquet) and the cohort report again")
    s.add_argument("out", metavar="DIR", help="a cohort's output folder")
    s.add_argument("--no-report", action="store_true", help="the table only")
    return p


def run(args) -> int:
    return {"run": _run, "virtual": _virtual, "results": _results}[args.cohort_command](args)


def _virtual(args) -> int:
    from surgtwin.services import cohort

    entries = cohort.virtual_cohort(args.kind, args.n, first_seed=args.first_seed, pixel_mm=args.pixel_mm,
                                    slice_mm=args.slice_mm)
    arms = cohort.parse_arms(args.arm)
    entries = cohort.expand_arms(entries, arms)
    path = cohort.write_manifest(entries, Path(args.out),
                                 description=f"virtual {args.kind} cohort, {args.n} synthetic patients")
    print(f"wrote {path}: {args.n} virtual {args.kind} patients (seeds {entries[0].source['seed']}"
          f"-{entries[-1].source['seed']})" + (f" x {len(entries) // args.n} arms ("
                                               + "; ".join(f"{k}={','.join(map(str, v))}" for k, v in arms.items())
                                               + f") = {len(entries)} cases" if arms else ""))
    if entries[0].options.get("tavr"):
        print("each patient's drawn BSA, BMI, cardiac output and heart rate are its TAVR options in the manifest "
              "(--option tavr.KEY=VALUE on `cohort run` overrides them for every case)")
    if arms:
        from surgtwin.services.pipeline import steps as known_steps

        arm_steps = {k.split(".", 1)[0] for k in arms} | ({"fem"} if any(k.startswith("implant.") for k in arms) else set())
        steps = ["segment"] + [s for s in known_steps() if s in arm_steps and s != "segment"]
        print(f"next: surgtwin cohort run {path} --steps {','.join(steps)} --out {args.out} "
              "[--option STEP.KEY=VALUE for those steps' other settings]")
    else:
        print(f"next: surgtwin cohort run {path} --steps segment,mesh{',tavr' if args.kind == 'cardiac-cta' else ''} "
              f"--out {args.out}")
    return 0


def _run(args) -> int:
    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.services import cohort

    steps = cohort.check_steps([s.strip() for s in args.steps.split(",")])
    options = cohort.parse_options(args.option)
    cohort.check_options(options, steps)
    if args.workers is not None and args.workers < 0:
        raise SurgtwinError(f"--workers must be >= 0, got {args.workers}")
    if args.scheduler and args.workers:
        raise SurgtwinError("give --scheduler or --workers, not both (a cluster has its own workers)")
    entries = cohort.expand_arms(cohort.discover(args.inputs), cohort.parse_arms(args.arm))
    out = Path(args.out)
    kw = {"memory_limit": args.memory_limit} if args.memory_limit else {}
    print(f"cohort: {len(entries)} cases, steps {','.join(steps)} -> {out}")
    run, paths, error = cohort.run_and_write(entries, steps, out, report_pdf=not args.no_report,
                                             progress=ProgressBar("cohort"), options=options,
                                             scheduler=args.scheduler, workers=args.workers,
                                             rerun_from=args.rerun_from, **kw)
    print(f"{len(run.ok)}/{len(run.records)} cases ok, {len(run.failed)} failed, {len(run.skipped)} already current; "
          f"{run.seconds:.1f} s ({run.scheduler})")
    for rec in run.failed:
        print(f"  FAILED {rec['case_id']}: {rec.get('error')}")
    if error is not None:
        raise error  # the cases are kept; `surgtwin cohort results DIR` writes the table once it can
    _print_paths(paths)
    print("NOT FOR CLINICAL USE")
    return 3 if run.failed else 0  # 3: the cohort finished, some cases failed (listed above)


def _results(args) -> int:
    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.services import cohort

    paths = cohort.write_results(Path(args.out), report_pdf=not args.no_report, progress=ProgressBar("results"))
    _print_paths(paths)
    return 0


def _print_paths(paths: dict) -> None:
    print(f"table: {paths['csv']} and {paths['parquet'].name}")
    if paths.get("report"):
        print(f"report: {paths['report']}")
