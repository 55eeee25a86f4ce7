"""The worker pool, timeouts, restarts, and the campaign report."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter, deque
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("success", "refusal", "defect", "hang", "memory_error", "phi_leak", "harness_error")


class Worker:
    def __init__(self, n: int, corpus: Path, workdir: Path, *, mem_bytes: int, timeout_s: float, preload: str):
        self.n = n
        self.scratch = workdir / f"w{n}"
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.args = [sys.executable, "-m", "scripts.fuzz.worker", "--corpus", str(corpus), "--scratch", str(self.scratch),
                     "--mem-bytes", str(mem_bytes), "--hang-after", str(max(0.5, timeout_s - 0.4)), "--preload", preload]
        self.job: dict | None = None
        self.started = 0.0
        self.ready = False
        self.buf = b""
        self.start()

    def start(self) -> None:
        env = dict(os.environ)
        # the harness from this checkout; surgtwin from PYTHONPATH when set (e.g. another checkout), else from here
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), str(REPO)) if p)
        env.setdefault("OMP_NUM_THREADS", "1")
        env["PYTHONFAULTHANDLER"] = "1"
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     cwd=self.scratch, env=env, start_new_session=True)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.ready = False
        self.buf = b""
        self.job = None

    def send(self, job: dict) -> None:
        self.job = job
        self.started = time.monotonic()
        self.proc.stdin.write((json.dumps(job) + "\n").encode())
        self.proc.stdin.flush()

    def lines(self) -> list[dict] | None:
        """Complete result lines read so far; None when the worker is gone."""
        try:
            chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
        except BlockingIOError:
            return []
        if not chunk:
            return None
        self.buf += chunk
        out = []
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            out.append(json.loads(line))
        return out

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass

    def tail(self, name: str, n: int = 1500) -> str:
        try:
            return (self.scratch / name).read_text(errors="replace")[-n:]
        except OSError:
            return ""


def _where_from_dump(dump: str) -> str:
    """The innermost surgtwin (else any) frame of a faulthandler dump of the main thread."""
    lines = [ln.strip() for ln in dump.splitlines() if ln.strip().startswith("File ")]
    main = []
    for block in dump.split("\n\n"):
        if "most recent call first" in block and ("Current thread" in block or not main):
            main = [ln.strip() for ln in block.splitlines() if ln.strip().startswith("File ")]
    frames = main or lines
    ours = [f for f in frames if "/surgtwin/" in f and "/scripts/fuzz/" not in f]
    pick = (ours or frames or [""])[0]
    m = re.match(r'File "(.*)", line (\d+) in (.*)', pick)
    if not m:
        return pick
    path = m.group(1).replace(str(REPO) + "/", "")
    if "/site-packages/" in path:
        path = path.split("/site-packages/", 1)[1]
    return f"{path}:{m.group(2)} in {m.group(3)}"


def run_jobs(jobs: list[dict], *, corpus: Path, workdir: Path, workers: int = 2, timeout_s: float = 5.0,
             mem_bytes: int = 3 << 30, preload: str = "", progress=None) -> list[dict]:
    """Run jobs on a pool of workers; each result dict has ``cls`` (one of CLASSES)."""
    pending = deque(jobs)
    pool = [Worker(i, corpus, workdir, mem_bytes=mem_bytes, timeout_s=timeout_s, preload=preload) for i in range(workers)]
    sel = selectors.DefaultSelector()
    for w in pool:
        sel.register(w.proc.stdout, selectors.EVENT_READ, w)
    results: list[dict] = []
    t_ready = time.monotonic()

    def restart(w: Worker) -> None:
        sel.unregister(w.proc.stdout)
        w.kill()
        w.start()
        sel.register(w.proc.stdout, selectors.EVENT_READ, w)

    try:
        while pending or any(w.job is not None for w in pool):
            for w in pool:
                if w.ready and w.job is None and pending:
                    w.send(pending.popleft())
            for key, _ in sel.select(timeout=0.05):
                w = key.data
                lines = w.lines()
                if lines is None:  # died: crash or killed by the memory cap
                    job = w.job
                    rc = w.proc.wait()
                    if job is not None:
                        results.append(_died(job, rc, w, corpus))
                        if progress:
                            progress(len(results), len(jobs))
                    elif not w.ready and time.monotonic() - t_ready > 300:
                        raise RuntimeError(f"fuzz worker could not start: {w.tail('crash.txt')}")
                    restart(w)
                    continue
                for msg in lines:
                    if "ready" in msg:
                        w.ready = True
                        continue
                    if "harness_error" in msg:  # a bug of the harness, not of surgtwin: reported apart
                        job = w.job or {}
                        msg.update(_result_for(job, "harness_error", msg["harness_error"], "", msg["trace"], corpus))
                    elif msg["elapsed_s"] > timeout_s:
                        msg.update(cls="hang", where=msg.get("where", ""), message=f"took {msg['elapsed_s']:.1f} s")
                    results.append(msg)
                    w.job = None
                    if progress:
                        progress(len(results), len(jobs))
            now = time.monotonic()
            for w in pool:
                if w.job is not None and now - w.started > timeout_s + 0.5:
                    job = w.job
                    time.sleep(0.2)  # let faulthandler's dump land
                    dump = w.tail("hang.txt", 20000)
                    results.append(_result_for(job, "hang", f"over {timeout_s:g} s (killed)", _where_from_dump(dump),
                                               dump[-1500:], corpus))
                    if progress:
                        progress(len(results), len(jobs))
                    restart(w)
    finally:
        for w in pool:
            w.kill()
    return results


_CORPORA: dict = {}


def _result_for(job: dict, cls: str, message: str, where: str, detail: str = "", corpus: Path | None = None) -> dict:
    """A result the parent writes itself (hang, crash); the descriptor is re-planned here."""
    from .inputs import input_id, plan
    from .seeds import Corpus

    desc = job.get("desc")
    if desc is None and corpus is not None:
        try:
            desc = plan(_CORPORA.setdefault(str(corpus), Corpus(corpus)), job["seed"], *job["plan"])
        except Exception:  # noqa: BLE001 - a harness bug in planning: reported as the job itself
            desc = None
    desc = desc or {"plan": job.get("plan"), "seed": job.get("seed")}
    kind = desc.get("kind") or job["plan"][0]
    ident = desc.get("id") or (input_id(*job["plan"]) if job.get("plan") else "?")
    out = {"id": ident, "kind": kind, "cls": cls, "message": message, "where": where, "surgtwin_where": where,
           "exc_type": cls, "elapsed_s": None, "desc": desc or {"plan": job.get("plan"), "seed": job.get("seed")}}
    if detail:
        out["detail"] = detail
    return out


def _died(job: dict, rc: int, w: Worker, corpus: Path) -> dict:
    text = w.tail("capture.txt", 4000) + w.tail("crash.txt", 4000)
    sig = -rc if rc < 0 else 0
    name = signal.Signals(sig).name if sig else f"exit {rc}"
    if sig == signal.SIGKILL or "bad_alloc" in text or "MemoryError" in text or "Cannot allocate memory" in text:
        cls = "memory_error"
    else:
        cls = "defect"
    return _result_for(job, cls, f"worker died ({name})", _where_from_dump(w.tail("crash.txt", 20000)), text[-1500:],
                       corpus)


# -- report ------------------------------------------------------------------------------------------------
def signature(r: dict) -> str:
    where = r.get("surgtwin_where") or r.get("where") or "?"
    if r["cls"] == "defect" and r.get("exc_type") == "SilentlyWrong":
        what = r.get("message", "").split(";")[0].replace("accepted silently wrong:", "")
        return "SilentlyWrong: " + what.split("[")[0].split("(")[0].strip()[:60]
    return f"{r.get('exc_type', r['cls'])} @ {where}"


def summarize(results: list[dict], wall_s: float, seed: int) -> dict:
    counts = Counter(r["cls"] for r in results)
    by_kind = {k: dict(Counter(r["cls"] for r in results if r["kind"] == k)) for k in ("dicom", "nifti", "bundle")}
    leaks = [r for r in results if r.get("leaks")]
    groups: dict[str, list[dict]] = {}
    for r in results:
        if r["cls"] in ("defect", "hang", "memory_error", "phi_leak", "harness_error"):
            key = f"[{r['cls']}] " + (signature(r) if r["cls"] != "phi_leak" else f"leak @ {_leak_where(r)}")
            groups.setdefault(key, []).append(r)
    findings = []
    for key, rs in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        rs = sorted(rs, key=lambda r: _size_hint(r))
        ex = rs[0]
        findings.append({
            "class": key, "count": len(rs), "message": ex.get("message", "")[:300], "where": ex.get("where", ""),
            "leaks": ex.get("leaks", []), "examples": [r["id"] for r in rs[:5]],
            "replay": f"python scripts/fuzz/fuzz.py --seed {seed} --replay {ex['id']}",
            "reproducer": ex.get("desc"),
        })
    n = len(results)
    return {
        "seed": seed, "inputs": n, "by_kind_inputs": {k: sum(v.values()) for k, v in by_kind.items()},
        "classes": {c: counts.get(c, 0) for c in CLASSES}, "by_kind": by_kind,
        "inputs_with_phi_leak": len(leaks), "wall_s": round(wall_s, 1),
        "inputs_per_s": round(n / wall_s, 2) if wall_s > 0 else None,
        "slowest_s": max((r.get("elapsed_s") or 0 for r in results), default=0),
        "slowest": [[r["id"], r["elapsed_s"], r["cls"]]
                    for r in sorted(results, key=lambda r: -(r.get("elapsed_s") or 0))[:5] if r.get("elapsed_s")],
        "findings": findings,
    }


def _leak_where(r: dict) -> str:
    """'[source] first words of the text' of the first leak (digits dropped, so one cause is one group)."""
    head = re.sub(r"\d+", "N", r["leaks"][0].split(" | ")[0])
    return " ".join(head.split()[:6])


def _size_hint(r: dict) -> tuple:
    d = r.get("desc") or {}
    return (d.get("context") == "series", len(d.get("mutations", []) or []), r["id"])


def format_summary(s: dict) -> str:
    lines = [
        f"fuzz campaign seed={s['seed']}: {s['inputs']} inputs "
        + ", ".join(f"{k} {v}" for k, v in s["by_kind_inputs"].items()),
        f"  wall {s['wall_s']} s, {s['inputs_per_s']} inputs/s, slowest input {s['slowest_s']} s "
        f"({', '.join(f'{i} {t:.2f} s' for i, t, _ in s.get('slowest', [])[:3])})",
        "  classes: " + ", ".join(f"{k} {v}" for k, v in s["classes"].items()),
        f"  inputs with a PHI leak (any class): {s['inputs_with_phi_leak']}",
    ]
    for k, v in s["by_kind"].items():
        if v:
            lines.append(f"  {k}: " + ", ".join(f"{c} {n}" for c, n in sorted(v.items())))
    if s["findings"]:
        lines.append("  findings:")
    for f in s["findings"]:
        lines.append(f"    {f['count']:5d} x {f['class']}")
        lines.append(f"          {f['message'][:160]!r}")
        if f["leaks"]:
            lines.append(f"          leak: {f['leaks'][0][:160]}")
        lines.append(f"          e.g. {', '.join(f['examples'])}; replay: {f['replay']}")
    return "\n".join(lines)
