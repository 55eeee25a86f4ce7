#!/usr/bin/env python
"""Fuzz surgtwin's read paths (DICOM folders/files, NIfTI, model bundles); see scripts/fuzz/__init__.py.

    python scripts/fuzz/fuzz.py --seed 1 --dicom 10000 --nifti 600 --bundle 600 --workers 2 --json out.json
    python scripts/fuzz/fuzz.py --preset short          # what CI runs (tests/fuzz/test_fuzz_short.py)
    python scripts/fuzz/fuzz.py --seed 1 --replay d000123 --out /tmp/repro   # rebuild + rerun one input

Every input runs in a worker subprocess under RLIMIT_AS (--mem-gb) with a --timeout; each is graded
success / refusal / defect / hang / memory_error / phi_leak. Exit status 1 when any input is not a
success or a clean refusal.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the harness as the package scripts.fuzz
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.fuzz import campaign, inputs, seeds  # noqa: E402

PRESETS = {"short": (1, 300, 60, 60), "long": (1, 10_000, 600, 600)}
BAD = ("defect", "hang", "memory_error", "phi_leak", "harness_error")


def build_jobs(seed: int, counts: dict) -> list[dict]:
    """Jobs interleaved across kinds (so slow kinds spread over the run)."""
    queues = {k: [{"plan": [k, i], "seed": seed} for i in range(n)] for k, n in counts.items() if n}
    jobs = []
    total = sum(len(q) for q in queues.values())
    pos = dict.fromkeys(queues, 0)
    for step in range(total):
        for k, q in queues.items():  # take from the kind furthest behind its share
            if pos[k] < len(q) and pos[k] <= step * len(q) / total:
                jobs.append(q[pos[k]])
                pos[k] += 1
                break
        else:
            k = next(k for k, q in queues.items() if pos[k] < len(q))
            jobs.append(queues[k][pos[k]])
            pos[k] += 1
    return jobs


def run_campaign(seed: int, counts: dict, *, workers: int = 2, timeout_s: float = 5.0, mem_gb: float = 3.0,
                 workdir: Path | None = None, quiet: bool = False) -> tuple[dict, list[dict]]:
    with tempfile.TemporaryDirectory(prefix="surgtwin-fuzz-") as tmp:
        work = Path(workdir) if workdir else Path(tmp)
        corpus = seeds.build_corpus(work / "corpus", bundles=bool(counts.get("bundle")))
        jobs = build_jobs(seed, counts)
        preload = "torch,monai.networks.nets,surgtwin.services.pipeline" if counts.get("bundle") else ""
        t0 = time.monotonic()
        last = [0.0]

        def progress(done, total):
            if not quiet and (time.monotonic() - last[0] > 10 or done == total):
                last[0] = time.monotonic()
                print(f"  {done}/{total} inputs, {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)

        results = campaign.run_jobs(jobs, corpus=corpus.root, workdir=work / "workers", workers=workers,
                                    timeout_s=timeout_s, mem_bytes=int(mem_gb * (1 << 30)), preload=preload,
                                    progress=progress)
        return campaign.summarize(results, time.monotonic() - t0, seed), results


def replay(seed: int, ident: str, out: Path | None, *, timeout_s: float, mem_gb: float, desc: dict | None = None) -> int:
    import traceback

    from scripts.fuzz import targets

    work = Path(tempfile.mkdtemp(prefix="surgtwin-fuzz-replay-"))
    kind = desc["kind"] if desc else inputs.parse_id(ident)[0]
    corpus = seeds.build_corpus(work / "corpus", bundles=kind == "bundle")
    if desc is None:
        desc = inputs.plan(corpus, seed, *inputs.parse_id(ident))
    print("descriptor:", json.dumps(desc))
    preload = "torch,monai.networks.nets,surgtwin.services.pipeline" if kind == "bundle" else ""
    [result] = campaign.run_jobs([{"desc": desc}], corpus=corpus.root, workdir=work / "workers", workers=1,
                                 timeout_s=timeout_s, mem_bytes=int(mem_gb * (1 << 30)), preload=preload)
    result.pop("desc", None)
    print("result:", json.dumps(result, indent=1, default=str))
    dest = Path(out) if out else work / "input"
    path, mutated = inputs.materialize(desc, corpus, dest)
    print(f"input written to {path} (mutated: {', '.join(mutated) or '-'})")
    if result["cls"] == "defect" and result.get("exc_type") != "SilentlyWrong":
        print("traceback (in-process rerun):")
        try:
            targets.DEFAULT[kind](path, {**desc, "mutated": mutated}, targets.Recorder())
        except Exception:  # noqa: BLE001 - shown to the developer
            traceback.print_exc()
    return 0 if result["cls"] in ("success", "refusal") else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dicom", type=int, default=300)
    ap.add_argument("--nifti", type=int, default=60)
    ap.add_argument("--bundle", type=int, default=60)
    ap.add_argument("--preset", choices=sorted(PRESETS), help="short: CI's campaign; long: the benchmark campaign")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds per input before it counts as a hang")
    ap.add_argument("--mem-gb", type=float, default=3.0, help="address-space cap of each worker (RLIMIT_AS)")
    ap.add_argument("--json", type=Path, help="write the summary and every non-success (or > 1 s) result here")
    ap.add_argument("--workdir", type=Path, help="keep the corpus and worker scratch here (default: a temp dir)")
    ap.add_argument("--replay", metavar="ID", help="rebuild input ID (e.g. d000123) for --seed and run it")
    ap.add_argument("--desc", type=Path, help="with --replay: a descriptor JSON file (e.g. from a report)")
    ap.add_argument("--out", type=Path, help="with --replay: write the input here")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.replay or args.desc:
        desc = json.loads(args.desc.read_text()) if args.desc else None
        return replay(args.seed, args.replay or desc["id"], args.out, timeout_s=args.timeout, mem_gb=args.mem_gb,
                      desc=desc)
    if args.preset:
        args.seed, args.dicom, args.nifti, args.bundle = PRESETS[args.preset]
    counts = {"dicom": args.dicom, "nifti": args.nifti, "bundle": args.bundle}
    summary, results = run_campaign(args.seed, counts, workers=args.workers, timeout_s=args.timeout,
                                    mem_gb=args.mem_gb, workdir=args.workdir, quiet=args.quiet)
    print(campaign.format_summary(summary))
    if args.json:
        keep = [r for r in results if r["cls"] != "success" or (r.get("elapsed_s") or 0) > 1.0]
        args.json.write_text(json.dumps({"summary": summary, "results": keep}, indent=1, default=str))
    return 1 if any(summary["classes"][c] for c in BAD) else 0


if __name__ == "__main__":
    sys.exit(main())
