"""A fuzz worker: a long-lived subprocess that materializes inputs and runs them under a memory cap.

Protocol: one JSON job per line on stdin (``{"desc": {...}}`` or ``{"plan": [kind, index]}``), one
JSON result per line on the stdout it was started with. While a job runs, file descriptors 1 and 2
point at a capture file (so C-level output is graded too), the root logger and ``warnings`` are
recorded, and ``faulthandler`` is armed to dump the stack shortly before the parent's timeout.

Classes: ``success``, ``refusal`` (SurgtwinError or the input skipped/refused with a reason),
``defect`` (any other exception, a crash, or an accepted-but-wrong result), ``hang`` (over the time
limit; decided by the parent, which kills the worker), ``memory_error`` (MemoryError, an allocator
failure, or death by the address-space cap) and ``phi_leak`` (a planted identity value in any output).
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import json
import logging
import os
import resource
import sys
import time
import traceback
import warnings
from pathlib import Path

_MEMORY_MARKERS = ("can't allocate memory", "bad_alloc", "unable to allocate", "out of memory", "cannot allocate memory")
CLASSES = ("success", "refusal", "defect", "hang", "memory_error", "phi_leak")


def frames_of(tb) -> tuple[str, str]:
    """(innermost frame, innermost surgtwin frame) as 'path:line in func' (paths from the repo root)."""
    frames = traceback.extract_tb(tb)
    if not frames:
        return "", ""

    def fmt(f):
        p = f.filename
        for marker in ("/site-packages/", "/surgtwin/", "/scripts/", "/tests/"):
            if marker in p:
                k = p.rindex(marker)
                p = p[k + 1 :] if marker != "/site-packages/" else p[k + len(marker) :]
                break
        return f"{p}:{f.lineno} in {f.name}"

    ours = [f for f in frames if "/surgtwin/" in f.filename and "/scripts/fuzz/" not in f.filename]
    return fmt(frames[-1]), fmt(ours[-1]) if ours else ""


def is_memory_error(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _MEMORY_MARKERS)


def resolve(entrypoint: str | None, kind: str):
    """The default target for ``kind``, or ``module:function`` (the harness's own self-tests)."""
    if not entrypoint:
        from .targets import DEFAULT

        return DEFAULT[kind]
    mod, _, fn = entrypoint.partition(":")
    return getattr(importlib.import_module(mod), fn)


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.INFO)
        self.records: list[str] = []

    def emit(self, record):
        try:
            self.records.append(f"{record.name}: {record.getMessage()}")
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is itself graded
            self.records.append(f"{record.name}: {record.msg!r} {record.args!r}")


def run_job(job: dict, corpus, scratch: Path, hang_after_s: float, hang_file) -> dict:
    from .inputs import materialize, plan
    from .phi import find_leaks
    from .targets import Recorder

    desc = job.get("desc") or plan(corpus, job["seed"], *job["plan"])
    desc = dict(desc)
    path, mutated = materialize(desc, corpus, scratch / "in")
    desc["mutated"] = mutated
    rec = Recorder()
    target = resolve(desc.get("entrypoint"), desc["kind"])
    capture_path = scratch / "capture.txt"
    cap = os.open(capture_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    saved = os.dup(1), os.dup(2)
    handler = _Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)  # what an app that configures logging would record
    exc = None
    if hang_file is not None:
        faulthandler.dump_traceback_later(hang_after_s, exit=False, file=hang_file)
    t0 = time.perf_counter()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(cap, 1)
        os.dup2(cap, 2)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                target(path, desc, rec)
            except BaseException as e:  # noqa: BLE001 - everything is graded
                if isinstance(e, KeyboardInterrupt):
                    raise
                exc = e
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        elapsed = time.perf_counter() - t0
        if hang_file is not None:
            faulthandler.cancel_dump_traceback_later()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        root.removeHandler(handler)
        root.setLevel(old_level)
    os.lseek(cap, 0, 0)
    captured = b""
    while chunk := os.read(cap, 1 << 20):
        captured += chunk
        if len(captured) > 4 << 20:
            break
    os.close(cap)
    texts = [*(("result", t) for t in rec.texts), ("stdout/stderr", captured),
             *(("log", t) for t in handler.records),
             *(("warning", f"{w.category.__name__} ({w.filename}:{w.lineno}): {w.message}") for w in caught)]
    result = {"id": desc["id"], "kind": desc["kind"], "elapsed_s": round(elapsed, 4), "desc": desc}
    if exc is not None:
        from surgtwin.core.errors import SurgtwinError

        msg = f"{type(exc).__name__}: {exc}"
        texts.append(("exception", msg))
        inner, ours = frames_of(exc.__traceback__)
        if isinstance(exc, SurgtwinError):
            rec.refuse(exc)
        else:
            result.update(exc_type=type(exc).__qualname__, message=str(exc)[:400], where=inner, surgtwin_where=ours)
            result["cls"] = "memory_error" if is_memory_error(exc) else "defect"
    leaks = find_leaks(texts)
    if leaks:
        result["leaks"] = leaks[:3]
    if rec.wrong and "cls" not in result:
        result.update(cls="defect", exc_type="SilentlyWrong", message="; ".join(rec.wrong)[:400], where="",
                      surgtwin_where="")
    if "cls" not in result:
        result["cls"] = "phi_leak" if leaks else "refusal" if rec.refusals else "success"
    if rec.refusals:
        result["refusal"] = rec.refusals[0][:300]
    return result


def _set_limits(mem_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--scratch", required=True)
    ap.add_argument("--mem-bytes", type=int, default=3 << 30)
    ap.add_argument("--hang-after", type=float, default=4.5)
    ap.add_argument("--preload", default="")
    args = ap.parse_args(argv)
    _set_limits(args.mem_bytes)
    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    res = os.fdopen(os.dup(1), "w", buffering=1)
    crash = open(scratch / "crash.txt", "w")  # noqa: SIM115 - lives as long as the process
    faulthandler.enable(file=crash)
    hang = open(scratch / "hang.txt", "w")  # noqa: SIM115
    for mod in ("numpy", "pydicom", "SimpleITK", "surgtwin.core.dicom.scan", "surgtwin.core.io", "surgtwin.cli.main",
                *[m for m in args.preload.split(",") if m]):
        importlib.import_module(mod)
    from .seeds import Corpus

    corpus = Corpus(Path(args.corpus))
    res.write(json.dumps({"ready": os.getpid()}) + "\n")
    for line in sys.stdin:
        job = json.loads(line)
        hang.seek(0)
        hang.truncate()
        try:
            out = run_job(job, corpus, scratch, args.hang_after, hang)
        except Exception as exc:  # noqa: BLE001 - a harness failure must not look like a target defect
            out = {"harness_error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-2000:],
                   "id": (job.get("desc") or {}).get("id")}
        res.write(json.dumps(out, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
