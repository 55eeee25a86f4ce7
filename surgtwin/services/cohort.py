"""Cohorts: the same pipeline steps over many cases, on Dask.

A cohort is a list of ``CohortCase`` entries (one case per study: a DICOM folder, an image file, a
sample case folder, a saved ``.stwin`` case, or a *virtual* patient from the phantom generator). Each
case runs in ``run_case`` -- on a Dask worker or in this process -- and leaves, under the output folder:

* ``cases/<id>.stwin``: the case after each finished step (every item with its provenance);
* ``results/<id>.json``: the case's record (``RECORD_SCHEMA``): status, each step's summary and time,
  the error of a failed step, the virtual patient's ground truth and the segmentation's Dice against it.

The record is written atomically after every step, so a worker killed mid-run loses only the step it
was in. A rerun skips cases whose record is complete and current (same fingerprint: inputs, steps,
options, surgtwin version, model weights) and resumes a partial case from its last finished step.
A failing case is recorded and reported; the others go on.

``run_cohort`` schedules the cases on a local Dask cluster (``workers`` processes, one thread each,
a memory limit per worker) or on an existing cluster (``scheduler="tcp://host:8786"``: its workers must
have surgtwin installed and see the same paths), or runs them in this process (``workers=0``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import Cancelled, check, report
from surgtwin.services.cohort_cases import (
    MANIFEST,
    CohortCase,
    discover,
    expand_arms,
    parse_arms,
    parse_options,
    read_manifest,
    virtual_cohort,
    write_json_atomic,
    write_manifest,
)

__all__ = ["MANIFEST", "CohortCase", "CohortRun", "discover", "expand_arms", "parse_arms", "parse_options", "read_manifest",
           "run_and_write", "run_case", "run_cohort", "virtual_cohort", "write_manifest", "write_results"]

#: version of the per-case record written to ``results/<id>.json``
RECORD_SCHEMA = 1
CASES_DIR, RESULTS_DIR = "cases", "results"
#: the steps a cohort runs when none are given
DEFAULT_STEPS = ("segment", "mesh")
#: per-worker memory limit of a local cluster (the worker is restarted above it; its case is retried)
DEFAULT_MEMORY_LIMIT = "6GiB"
GROUND_TRUTH = "ground_truth"


def _register_slot() -> None:
    from surgtwin.core.case.model import register_slot

    register_slot(GROUND_TRUTH, "records", "a virtual patient's known quantities (the phantom generator's truth)")


_register_slot()


# -- fingerprints (what makes a finished case current) -----------------------------------------------
def _source_stamp(source: dict) -> dict:
    """What identifies the input's content cheaply: names, sizes and mtimes of its files."""
    if source["kind"] == "virtual":
        from surgtwin.core.phantom import GENERATOR_VERSION

        return {**source, "generator": GENERATOR_VERSION}
    p = Path(source["path"])
    h = hashlib.sha256()
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    for q in files:
        try:
            st = q.stat()
        except OSError:
            continue
        h.update(f"{q.relative_to(p) if p.is_dir() else q.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"kind": source["kind"], "path": str(p), "files": len(files), "stamp": h.hexdigest()[:16]}


def _model_stamp(steps, options) -> str | None:
    if "segment" not in steps:
        return None
    seg = (options or {}).get("segment", {})
    if seg.get("method", "model") != "model":
        return None
    from surgtwin.core.segmentation import default_bundle_dir

    folder = Path(seg.get("bundle") or default_bundle_dir())
    h = hashlib.sha256()
    for q in sorted((folder / "models").glob("*")) + sorted((folder / "configs").glob("*.json")):
        st = q.stat()
        h.update(f"{q.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def fingerprint(entry: CohortCase, steps, options) -> str:
    """A hash of everything a case's results depend on: its input, the steps and their options,
    surgtwin's version and the segmentation model."""
    return step_fingerprints(entry, steps, options)[-1] if steps else _hash(_base_doc(entry, [], {}))


def _base_doc(entry: CohortCase, steps, options) -> dict:
    from surgtwin import __version__

    return {"source": _source_stamp(entry.source), "version": __version__,
            "model": _model_stamp(steps, options), "schema": RECORD_SCHEMA}


def _hash(doc) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:24]


def step_fingerprints(entry: CohortCase, steps, options) -> list[str]:
    """One fingerprint per step: what the case holds after ``steps[:i + 1]`` depends on. A rerun with
    more steps (or other options for a later step) keeps the finished steps whose fingerprint holds.
    The options are the case's own with the run's laid over them (``CohortCase.effective_options``)."""
    steps, options = list(steps), entry.effective_options(options)
    base = _base_doc(entry, steps, options)
    return [_hash({**base, "steps": steps[:i + 1], "options": {k: options.get(k) for k in steps[:i + 1]}})
            for i in range(len(steps))]


# -- one case --------------------------------------------------------------------------------------
def to_builtin(v):
    """JSON-safe copy of a step summary (numpy scalars/arrays, tuples, NaN -> None)."""
    if isinstance(v, dict):
        return {str(k): to_builtin(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_builtin(x) for x in v]
    if isinstance(v, np.ndarray):
        return to_builtin(v.tolist()) if v.size <= 64 else f"<array {v.shape}>"
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer, int)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return None if not np.isfinite(f) else f
    if v is None or isinstance(v, str):
        return v
    return str(v)


def record_path(out_dir, case_id: str) -> Path:
    return Path(out_dir) / RESULTS_DIR / f"{case_id}.json"


def case_path(out_dir, case_id: str) -> Path:
    return Path(out_dir) / CASES_DIR / f"{case_id}.stwin"


def read_record(out_dir, case_id: str) -> dict | None:
    """The case's record, or None when it has none or it cannot be read (then the case runs again)."""
    p = record_path(out_dir, case_id)
    try:
        rec = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return rec if isinstance(rec, dict) and rec.get("schema") == RECORD_SCHEMA else None


def is_current(rec: dict | None, fp: str) -> bool:
    return rec is not None and rec.get("status") == "ok" and rec.get("fingerprint") == fp


def _open_case(entry: CohortCase, progress=None, cancel=None):
    """(case, ground truth labels or None, ground truth dict or None)."""
    from surgtwin.core.case import Case, Provenance, SourceRef
    from surgtwin.services import pipeline

    s = entry.source
    if s["kind"] == "virtual":
        from surgtwin.core.phantom import generate_case

        pc = generate_case(s["phantom"], int(s["seed"]), pixel_mm=s.get("pixel_mm"), slice_mm=s.get("slice_mm"),
                           progress=progress)
        case = Case(pc.ct, SourceRef(path=None, kind=None, modality="CT"), name=entry.case_id)  # made in memory
        truth = {"phantom": pc.kind, "seed": pc.seed, **pc.known}
        case.set_item(GROUND_TRUTH, truth, Provenance("phantom", {"kind": pc.kind, "seed": pc.seed}))
        return case, pc.labels, truth
    if s["kind"] == "case":
        return pipeline.load_case(s["path"], progress=progress, cancel=cancel), None, None
    case = pipeline.new_case(s["path"], progress=progress, cancel=cancel)
    case.name = entry.case_id
    return case, None, None


def _dice(truth, labels) -> dict:
    """Dice per structure of ``labels`` against ground-truth ``truth`` (same grid; names matched)."""
    out = {}
    if truth is None or labels is None or truth.array.shape != labels.array.shape:
        return out
    names = {lab.name for lab in truth.labels} & {lab.name for lab in labels.labels}
    for name in sorted(names):
        a, b = truth.mask(name), labels.mask(name)
        s = int(a.sum()) + int(b.sum())
        if s:
            out[name] = round(2.0 * float(np.logical_and(a, b).sum()) / s, 4)
    return out


def _limit_threads(threads: int | None) -> None:
    if not threads:
        return
    with contextlib.suppress(Exception):
        import torch

        torch.set_num_threads(int(threads))


def _peak_rss_mb() -> float | None:
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    except (ImportError, OSError):
        return None


def run_case(entry: CohortCase, steps, out_dir, *, options: dict | None = None, fp: str | None = None,
             rerun_from: str | None = None, threads: int | None = None, progress=None, cancel=None) -> dict:
    """Run ``steps`` on one case and keep the case and its record under ``out_dir``; returns the record.

    Never raises for a failing case (the record says ``"status": "failed"`` and why); only ``Cancelled``
    propagates. Keeps the finished steps of an earlier run whose fingerprints still hold (a partial case
    resumes from its last finished step); ``rerun_from``: run that step and the ones after it again even
    when current (e.g. after updating surgtwin at the same version)."""
    from surgtwin import __version__
    from surgtwin.services import pipeline

    steps = list(steps)
    step_fps = step_fingerprints(entry, steps, options)
    options = entry.effective_options(options)
    fp = fp or (step_fps[-1] if steps else fingerprint(entry, steps, options))
    out_dir = Path(out_dir)
    cpath, rpath = case_path(out_dir, entry.case_id), record_path(out_dir, entry.case_id)
    old = read_record(out_dir, entry.case_id)
    if rerun_from is None and is_current(old, fp):
        return old
    rec = {"schema": RECORD_SCHEMA, "case_id": entry.case_id, "source": entry.source, "arm": entry.arm_label,
           "fingerprint": fp, "steps_requested": steps, "options": to_builtin(options), "status": "running", "error": None,
           "failed_step": None, "steps": {}, "ground_truth": None, "dice": {}, "case_path": None,
           "surgtwin_version": __version__, "host": os.uname().nodename, "pid": os.getpid(),
           "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "seconds": 0.0, "peak_rss_mb": None}
    t0 = time.perf_counter()
    _limit_threads(threads)
    try:
        keep = steps.index(rerun_from) if rerun_from in steps else len(steps)
        case, kept = _resume(old, cpath, steps[:keep], step_fps[:keep], cancel)
        truth_labels = None
        t = time.perf_counter()
        if case is None or (entry.source["kind"] == "virtual" and "segment" in steps and "segment" not in kept):
            fresh, truth_labels, truth = _open_case(entry, cancel=cancel)
            if case is None:
                case, kept = fresh, {}
            rec["ground_truth"] = to_builtin(truth)
        else:
            rec.update(ground_truth=old.get("ground_truth"), dice=old.get("dice") or {})
        rec["steps"] = dict(kept)
        if kept:
            rec["resumed_after"] = list(kept)
        rec["open_seconds"] = round(time.perf_counter() - t, 3)
        for name, sfp in zip(steps, step_fps, strict=True):
            check(cancel)
            if name in kept:
                continue
            t = time.perf_counter()
            report(progress, len(rec["steps"]) / max(1, len(steps)), f"{entry.case_id}: {name}")
            try:
                out = pipeline.run_step(case, name, cancel=cancel, **options.get(name, {}))
                if name == "segment" and truth_labels is not None:
                    rec["dice"] = _dice(truth_labels, case.labels)
                pipeline.save_case(case, cpath, cancel=cancel)
            except Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001 - one case's failure is recorded, the cohort goes on
                rec["steps"][name] = {"status": "failed", "seconds": round(time.perf_counter() - t, 3),
                                      "error": _describe(exc), "fp": sfp}
                rec.update(status="failed", failed_step=name, error=f"{name}: {_describe(exc)}")
                break
            rec["steps"][name] = {"status": "ok", "seconds": round(time.perf_counter() - t, 3),
                                  "summary": to_builtin(_slim(out.summary)), "fp": sfp}
            rec["case_path"] = str(cpath.relative_to(out_dir))
            write_json_atomic(rpath, {**rec, "status": "partial"})
        else:
            if not steps or not cpath.exists():
                pipeline.save_case(case, cpath, cancel=cancel)
            rec["case_path"] = str(cpath.relative_to(out_dir))
            rec["status"] = "ok"
    except Cancelled:
        raise
    except Exception as exc:  # noqa: BLE001 - opening the study failed: recorded, the cohort goes on
        rec.update(status="failed", failed_step=rec.get("failed_step") or "open", error=f"open: {_describe(exc)}")
    rec["seconds"] = round(time.perf_counter() - t0, 3)
    rec["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    rec["peak_rss_mb"] = _peak_rss_mb()
    write_json_atomic(rpath, rec)
    return rec


def _resume(old: dict | None, cpath: Path, steps, step_fps, cancel):
    """(saved case, {step: its old entry}) for the leading steps whose fingerprints still hold."""
    from surgtwin.services import pipeline

    if old is None or not cpath.exists():
        return None, {}
    kept = {}
    for name, sfp in zip(steps, step_fps, strict=True):
        st = (old.get("steps") or {}).get(name) or {}
        if st.get("status") != "ok" or st.get("fp") != sfp:
            break
        kept[name] = st
    if not kept:
        return None, {}
    try:
        return pipeline.load_case(cpath, cancel=cancel), kept
    except SurgtwinError:  # a damaged case file: start again
        return None, {}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SurgtwinError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"[:500]


def _slim(summary: dict) -> dict:
    """A step summary without bulky per-item lists (kept in the case, not in the table)."""
    return {k: v for k, v in (summary or {}).items() if k not in ("quality",)}


# -- the cohort ------------------------------------------------------------------------------------
@dataclass
class CohortRun:
    """What ``run_cohort`` did: the records (in cohort order) and counts."""

    out_dir: Path
    records: list[dict]
    skipped: list[str] = field(default_factory=list)  # current before the run
    seconds: float = 0.0
    workers: int = 0
    scheduler: str = "sequential"

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.records if r.get("status") != "ok"]

    @property
    def ok(self) -> list[dict]:
        return [r for r in self.records if r.get("status") == "ok"]


def check_steps(steps) -> list[str]:
    """The step names, empty ones dropped; an unknown one is refused naming the steps there are."""
    from surgtwin.services import pipeline

    steps = [s for s in steps if s]
    known = pipeline.steps()
    for s in steps:
        if s not in known:
            raise SurgtwinError(f"unknown step {s!r}", hint=f"steps: {', '.join(known)}")
    return steps


def check_options(options: dict, steps) -> None:
    """Refuse options for a step the run does not run (a typo would otherwise be silently ignored)."""
    unknown = sorted(set(options or {}) - set(steps))
    if unknown:
        raise SurgtwinError(f"--option for a step that is not run: {', '.join(unknown)}",
                            hint=f"steps: {', '.join(steps)}")


def plan(entries, steps, out_dir, options=None, rerun_from=None) -> tuple[list[tuple[CohortCase, str]], list[str]]:
    """``(to_run, current)``: the cases to run with their fingerprints, and the ids already current."""
    todo, current = [], []
    for e in entries:
        fp = fingerprint(e, steps, options)
        if rerun_from is None and is_current(read_record(out_dir, e.case_id), fp):
            current.append(e.case_id)
        else:
            todo.append((e, fp))
    return todo, current


def worker_environ(threads: int) -> dict:
    """The environment a local worker process starts with. Not Dask's default: its
    ``MALLOC_TRIM_THRESHOLD_=65536`` stops glibc from reusing freed heap for large arrays, which made
    segment+mesh ~40 % slower per case here (every volume-sized array freshly mmapped and zeroed);
    the memory limit bounds a worker instead. BLAS/OpenMP pools get the worker's share of the CPUs."""
    n = str(max(1, int(threads)))
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}


def _local_client(workers: int, memory_limit, threads: int):
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ(threads)}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory_limit,
                               dashboard_address=":0", silence_logs=40)
    return Client(cluster), cluster


def run_cohort(entries, steps=DEFAULT_STEPS, out_dir=".", *, options: dict | None = None,
               scheduler: str | None = None, workers: int | None = None, memory_limit=DEFAULT_MEMORY_LIMIT,
               rerun_from: str | None = None, progress=None, cancel=None) -> CohortRun:
    """Run ``steps`` over every case of ``entries`` and keep each case and record under ``out_dir``.

    ``scheduler``: the address of an existing Dask scheduler; otherwise a local cluster of ``workers``
    processes (default: the CPU count, at most the number of cases), or this process when ``workers``
    is 0. ``rerun_from``: a step to run again (with the ones after it) on every case, even when current.
    ``progress`` gets the share of the cohort done and a line such as ``"7/20 cases, 1 failed"``."""
    entries = list(entries)
    steps = check_steps(steps)
    if rerun_from is not None and rerun_from not in steps:
        raise SurgtwinError(f"the step to rerun from, {rerun_from!r}, is not among the steps",
                            hint=f"steps: {', '.join(steps)}")
    options = options or {}
    check_options(options, steps)
    for e in entries:
        for key in e.arm:
            step, name = key.split(".", 1)
            if name in (options.get(step) or {}):
                raise SurgtwinError(f"the option {key} would override the cohort's trial arm {key} on every case",
                                    hint=f"drop --option {key}=..., or make a cohort without that arm")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(entries, out_dir / MANIFEST)
    todo, current = plan(entries, steps, out_dir, options, rerun_from)
    case_kw = {"options": options, "rerun_from": rerun_from}
    t0 = time.perf_counter()
    n, finished, failed = len(entries), len(current), 0
    report(progress, finished / max(1, n), f"{finished}/{n} cases current, {len(todo)} to run")
    cpus = os.cpu_count() or 1
    if scheduler is None and workers is None:
        workers = max(1, min(cpus, len(todo)))
    run = CohortRun(out_dir, [], skipped=list(current), workers=int(workers or 0),
                    scheduler=scheduler or ("sequential" if not workers else f"local:{workers}"))

    def done_one(rec):
        nonlocal finished, failed
        finished += 1
        failed += rec.get("status") != "ok"
        report(progress, finished / max(1, n),
               f"{finished}/{n} cases, {failed} failed (last: {rec['case_id']} {rec.get('status')})")

    if todo and scheduler is None and not workers:
        for e, fp in todo:
            check(cancel)
            done_one(run_case(e, steps, out_dir, fp=fp, threads=None, cancel=cancel, **case_kw))
    elif todo:
        _run_dask(todo, steps, out_dir, case_kw, scheduler, int(workers or 0), memory_limit, cpus, done_one, cancel)
    run.records = [read_record(out_dir, e.case_id) or _lost(e, out_dir) for e in entries]
    run.seconds = round(time.perf_counter() - t0, 3)
    return run


def _lost(entry: CohortCase, out_dir) -> dict:
    return {"schema": RECORD_SCHEMA, "case_id": entry.case_id, "source": entry.source, "arm": entry.arm_label,
            "status": "failed", "error": "no record was written (the worker running it was lost)", "steps": {}}


def _run_dask(todo, steps, out_dir, case_kw, scheduler, workers, memory_limit, cpus, done_one, cancel) -> None:
    from dask.distributed import Client, wait
    from distributed.utils import TimeoutError as DaskTimeout

    cluster = None
    try:
        if scheduler:
            try:
                _check_reachable(scheduler)
                client = Client(scheduler, timeout="20s")
            except OSError as exc:
                raise SurgtwinError(f"cannot reach the Dask scheduler {scheduler} ({exc})",
                                    hint="check the address (tcp://host:8786) and that the scheduler is running, or use local workers") from None
            threads = None
        else:
            threads = max(1, cpus // max(1, workers))
            client, cluster = _local_client(workers, memory_limit, threads)
        with client:
            futures = {}
            for e, fp in todo:
                fut = client.submit(run_case, e, steps, str(out_dir), fp=fp, threads=threads, **case_kw,
                                    key=f"surgtwin-case-{e.case_id}-{fp[:8]}", pure=False)
                futures[fut] = e
            pending = set(futures)
            while pending:
                if cancel is not None and cancel.cancelled:
                    client.cancel(list(pending))
                    raise Cancelled()
                try:
                    finished, _ = wait(list(pending), timeout=0.5, return_when="FIRST_COMPLETED")
                except DaskTimeout:
                    continue
                for fut in finished:
                    pending.discard(fut)
                    done_one(_collect(fut, futures[fut], out_dir))
    finally:
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()


def _check_reachable(address: str) -> None:
    """Fail fast (``OSError``) when a ``tcp://host:port`` scheduler does not accept connections."""
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(address if "://" in address else f"tcp://{address}")
    if u.scheme in ("tcp", "tls") and u.hostname and u.port:
        with socket.create_connection((u.hostname, u.port), timeout=5):
            pass


def _collect(fut, entry: CohortCase, out_dir) -> dict:
    """The record of a finished future; a lost worker (``KilledWorker``) is recorded as a failure."""
    from distributed.client import FutureCancelledError

    try:
        return fut.result()
    except (FutureCancelledError, Cancelled):
        raise Cancelled() from None
    except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: recorded, the cohort goes on
        rec = read_record(out_dir, entry.case_id) or _lost(entry, out_dir)
        rec = {**rec, "schema": RECORD_SCHEMA, "status": "failed", "error": f"worker lost: {_describe(exc)}"}
        write_json_atomic(record_path(out_dir, entry.case_id), rec)
        return rec


def write_results(out_dir, *, report_pdf: bool = True, progress=None, cancel=None) -> dict:
    """Write the cohort's results table (CSV + Parquet) and, with ``report_pdf``, its report (PDF)
    from the records under ``out_dir``; returns ``{"csv": Path, "parquet": Path, "report": Path | None}``."""
    from surgtwin.core.progress import scaled
    from surgtwin.services.cohort_table import results_table, write_table

    out_dir = Path(out_dir)
    if not (out_dir / RESULTS_DIR).is_dir():
        raise SurgtwinError("holds no cohort results (no results/ folder)", path=out_dir,
                            hint="run the cohort first: surgtwin cohort run INPUTS --out DIR")
    report(progress, 0.0, "results table")
    csv_path, parquet_path = write_table(results_table(out_dir), out_dir)
    pdf = None
    if report_pdf:
        from surgtwin.services.cohort_report import write_cohort_report

        pdf = write_cohort_report(out_dir, progress=scaled(progress, 0.1, 1.0), cancel=cancel)
    report(progress, 1.0, "results written")
    return {"csv": csv_path, "parquet": parquet_path, "report": pdf}


def run_and_write(entries, steps, out_dir, *, report_pdf: bool = True, progress=None, cancel=None, **run_options):
    """``run_cohort`` (``run_options``: its keywords), then ``write_results``. Returns ``(CohortRun,
    written paths or None, the SurgtwinError that stopped the writing or None)``: a table or report that
    cannot be written does not hide the finished cases."""
    from surgtwin.core.progress import scaled

    run = run_cohort(entries, steps, out_dir, progress=scaled(progress, 0.0, 0.9), cancel=cancel, **run_options)
    try:
        return run, write_results(out_dir, report_pdf=report_pdf, progress=scaled(progress, 0.9, 1.0),
                                  cancel=cancel), None
    except SurgtwinError as exc:
        return run, None, exc
