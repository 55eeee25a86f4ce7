"""Auto-suggest: the safest straight entries to a target from an allowed entry region, and a risk map.

Candidates (``entry_candidates``): the outer-surface voxels of the entry region (a structure such
as ``skull`` or ``skin``; ``skin``/``body`` mean the body's outer surface), optionally only a patch
(``patch_centre_lps`` + ``patch_radius_mm``), at most ``max_candidates`` (a deterministic subset,
seed 0) of their voxel centres (LPS mm).

Scoring (``score_entries``), vectorised over all candidates at once: every path entry -> target is
sampled at the same ``S`` fractions (a ``(K, S, 3)`` array; steps of at most ``score_step_mm`` = 1 mm
on the longest path), each critical structure's clearance map is read at all samples (trilinear),
and the minimum along each path less the instrument's radius is its surface clearance ``c_j``
(a distance map is 1-Lipschitz, so the sampled minimum overestimates the true one by at most half
a step; the top-k are then measured exactly by ``evaluate``). Per candidate:

* ``ratio = min_j c_j / max(margin_j, 0.5 mm)`` (the worst normalised clearance; >= 1 clears all);
* ``feasible``: every ``c_j >= margin_j``, the path no longer than the instrument and the angle to
  the entry surface's inward normal at most ``max_angle_deg`` (default 60);
* ``score = min(ratio, CAP) - 0.25 * length / longest - 0.25 * angle / 90`` (CAP = 3: clearance
  beyond three margins earns nothing more; shorter and more perpendicular paths break ties),
  less 10 when infeasible (every feasible entry ranks first);
* ``risk`` in [0, 1] for the scene's colour map: 1 infeasible, else ``(CAP - ratio) / (CAP - 1)``
  clipped to [0, 0.99] (0: at least CAP margins everywhere).

The top-k (``suggest``) are the best scores taken greedily at least ``min_separation_mm`` apart
(spread over the region, not k neighbours), each with its full ``TrajectoryMetrics``.
``Suggestions.risk_at(vertices)`` carries the risk map onto a mesh (nearest candidate).

Public API: ``entry_candidates``, ``score_entries -> EntryScores``, ``suggest -> Suggestions``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.plan.clearance import BODY, ClearanceMaps
from surgtwin.core.plan.trajectory import (
    TrajectoryMetrics,
    as_point,
    critical_margins,
    evaluate,
    instrument,
    resolve_target,
)

CAP = 3.0
MAX_ANGLE_DEG = 60.0
SCORE_STEP_MM = 1.0
COARSE_STEP_MM = 4.0
MIN_MARGIN_NORM_MM = 0.5
INFEASIBLE_PENALTY = 10.0
MAX_CANDIDATES = 10_000
CHUNK_POINTS = 400_000


def _surface_name(region: str) -> str:
    return BODY if region in ("skin", BODY) else region


def entry_candidates(maps: ClearanceMaps, region: str = "skin", *, patch_centre_lps=None,
                     patch_radius_mm: float | None = None, max_candidates: int = MAX_CANDIDATES,
                     seed: int = 0) -> np.ndarray:
    """``(N, 3)`` LPS candidate entries on ``region``'s outer surface (see the module text)."""
    surface = _surface_name(region)
    if not maps.has(surface):
        raise SurgtwinError(f"no entry region {region!r} in the label map",
                            hint="use skin or a structure: " + ", ".join(maps.structure_names()))
    solid = maps.solid_map(surface)
    arr = maps.labels.array
    mask = arr != 0 if surface == BODY else arr == maps.value_of(surface)
    idx = np.argwhere(mask)
    local = idx - solid.lo.astype(int)
    inb = np.all((local >= 0) & (local < np.array(solid.values.shape)), axis=1)
    idx, local = idx[inb], local[inb]
    shell = float(np.max(maps.spacing_mm))
    outer = solid.values[tuple(local.T)] > -shell  # within a voxel of the solid's outer surface
    pts = maps.world(idx[outer])
    if patch_centre_lps is not None:
        c = as_point(patch_centre_lps, "patch centre")
        r = float(patch_radius_mm if patch_radius_mm is not None else 20.0)
        pts = pts[np.linalg.norm(pts - c, axis=1) <= r]
    if len(pts) == 0:
        raise SurgtwinError(f"no candidate entry on the {region} surface" + (" in the patch" if patch_centre_lps
                                                                               is not None else ""),
                            hint="enlarge the patch radius or move its centre onto the surface")
    if len(pts) > max_candidates:
        rng = np.random.default_rng(seed)
        pts = pts[np.sort(rng.choice(len(pts), max_candidates, replace=False))]
    return pts


@dataclass
class EntryScores:
    """Per candidate: ``clearance_mm (K, J)`` surface clearance per structure (``names``), ``length_mm``,
    ``angle_deg``, ``ratio``, ``feasible``, ``score``, ``risk`` (see the module text)."""

    entries: np.ndarray
    names: list
    margins_mm: np.ndarray
    clearance_mm: np.ndarray
    length_mm: np.ndarray
    angle_deg: np.ndarray
    ratio: np.ndarray
    feasible: np.ndarray
    score: np.ndarray
    risk: np.ndarray
    steps: int
    elapsed_ms: float = 0.0


def _min_along(m, e_loc: np.ndarray, t_loc: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Minimum of map ``m`` along paths from crop indices ``e_loc (K, 3)`` to ``t_loc (3,)`` at
    fractions ``s``, in chunks of at most ``CHUNK_POINTS`` samples."""
    out = np.empty(len(e_loc), np.float32)
    per = max(1, CHUNK_POINTS // len(s))
    for a in range(0, len(e_loc), per):
        e = e_loc[a:a + per]
        pts = e[:, None, :] + s[None, :, None] * (t_loc - e)[:, None, :]
        out[a:a + per] = m.sample_index(pts).min(axis=1)
    return out


def path_clearances(maps: ClearanceMaps, entries: np.ndarray, target: np.ndarray, names, radius_mm: float,
                    steps: int, *, coarse_steps: int | None = None, exact_below_mm=None,
                    workers: int | None = None) -> np.ndarray:
    """``(K, J)`` minimum surface clearance (mm) along each path ``entries[k] -> target`` to each
    structure, from ``steps`` samples per path (a ``(K, S, 3)`` array per chunk, in index space).

    With ``coarse_steps`` and ``exact_below_mm`` (per structure): a first pass with ``coarse_steps``
    samples bounds every clearance from below (a distance map changes by at most 1 mm per mm, so the
    true minimum is at least the sampled one less half a sample spacing); only the pairs whose bound
    is below ``exact_below_mm[j]`` are sampled with ``steps`` (the others keep the coarse value, which
    is within half a coarse spacing and above the bound). The work is shared over ``workers``
    threads (numpy releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    entries = np.asarray(entries, float)
    e_idx = maps.index_of(entries).astype(np.float32)
    t_idx = maps.index_of(np.asarray(target, float)).astype(np.float32)
    lengths = np.linalg.norm(np.asarray(target, float) - entries, axis=1).astype(np.float32)
    maps_ = [maps.map(n) for n in names]
    out = np.empty((len(entries), len(names)), np.float32)
    jobs = []  # (structure, candidate indices, fractions)
    fine = np.linspace(0.0, 1.0, steps, dtype=np.float32)
    if coarse_steps is not None and exact_below_mm is not None and coarse_steps < steps:
        coarse = np.linspace(0.0, 1.0, coarse_steps, dtype=np.float32)
        first = [(j, np.arange(len(entries)), coarse) for j in range(len(names))]
        _run(first, maps_, e_idx, t_idx, out, workers, ThreadPoolExecutor)
        half = lengths / (2.0 * (coarse_steps - 1))
        for j in range(len(names)):
            need = np.flatnonzero(out[:, j] - radius_mm - half < float(exact_below_mm[j]))
            if len(need):
                jobs.append((j, need, fine))
    else:
        jobs = [(j, np.arange(len(entries)), fine) for j in range(len(names))]
    _run(jobs, maps_, e_idx, t_idx, out, workers, ThreadPoolExecutor)
    return out - np.float32(radius_mm)


def _run(jobs, maps_, e_idx, t_idx, out, workers, pool_cls):
    """Run (structure, candidates, fractions) jobs split into chunks over a thread pool."""
    import os

    workers = workers or min(4, os.cpu_count() or 1)
    tasks = []
    for j, sel, s in jobs:
        per = max(1, -(-len(sel) // workers))
        for a in range(0, len(sel), per):
            tasks.append((j, sel[a:a + per], s))

    def one(task):
        j, sel, s = task
        m = maps_[j]
        out[sel, j] = _min_along(m, e_idx[sel] - m.lo.astype(np.float32), t_idx - m.lo.astype(np.float32), s)

    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            one(task)
        return
    with pool_cls(max_workers=workers) as pool:
        list(pool.map(one, tasks))


def score_entries(maps: ClearanceMaps, entries, target_lps, instrument_=None, margins: dict | None = None, *,
                  target_structure: str | None = None, region: str = "skin", max_angle_deg: float = MAX_ANGLE_DEG,
                  score_step_mm: float = SCORE_STEP_MM, workers: int | None = None) -> EntryScores:
    """Scores of straight paths from each of ``entries (K, 3)`` to the target (see the module text)."""
    t0 = time.perf_counter()
    ins = instrument(instrument_)
    target = as_point(target_lps, "target")
    entries = np.asarray(entries, float).reshape(-1, 3)
    crit = critical_margins(maps, margins, target_structure)
    names = list(crit)
    marg = np.array([crit[n] for n in names], np.float32)
    v = target - entries
    length = np.linalg.norm(v, axis=1)
    steps = max(2, int(np.ceil(float(length.max()) / score_step_mm)) + 1)
    coarse = max(2, int(np.ceil(float(length.max()) / COARSE_STEP_MM)) + 1)
    exact_below = CAP * np.maximum(marg, MIN_MARGIN_NORM_MM) + 1.0
    clear = path_clearances(maps, entries, target, names, ins.radius_mm, steps, coarse_steps=coarse,
                            exact_below_mm=exact_below, workers=workers) if names else \
        np.zeros((len(entries), 0), np.float32)
    d = v / np.maximum(length, 1e-9)[:, None]
    n = maps.normal(_surface_name(region), entries)
    angle = np.degrees(np.arccos(np.clip(-np.einsum("ij,ij->i", n, d), -1.0, 1.0)))
    ratio = (clear / np.maximum(marg, MIN_MARGIN_NORM_MM)).min(axis=1) if names else np.full(len(entries), np.inf)
    feasible = np.all(clear >= marg, axis=1) & (length <= ins.length_mm) & (angle <= max_angle_deg)
    lmax = max(float(length.max()), 1e-9)
    score = np.minimum(ratio, CAP) - 0.25 * length / lmax - 0.25 * angle / 90.0 - INFEASIBLE_PENALTY * ~feasible
    risk = np.where(feasible, np.clip((CAP - ratio) / (CAP - 1.0), 0.0, 0.99), 1.0)
    return EntryScores(entries, names, marg, clear, length, angle, ratio, feasible, score, risk, steps,
                       (time.perf_counter() - t0) * 1000.0)


def spread_top(points: np.ndarray, score: np.ndarray, k: int, min_separation_mm: float) -> list[int]:
    """Indices of the ``k`` best scores taken greedily at least ``min_separation_mm`` apart."""
    chosen: list[int] = []
    for i in np.argsort(-score, kind="stable"):
        if len(chosen) >= k:
            break
        if all(np.linalg.norm(points[i] - points[j]) >= min_separation_mm for j in chosen):
            chosen.append(int(i))
    return chosen


@dataclass
class Suggestions:
    """The suggested entries (best first) with their metrics, and the scores of every candidate."""

    target_lps: np.ndarray
    target_structure: str | None
    region: str
    instrument: str
    margins_mm: dict
    scores: EntryScores
    top: list = field(default_factory=list)  # TrajectoryMetrics, best first
    top_index: list = field(default_factory=list)
    elapsed_ms: float = 0.0

    @property
    def candidates(self) -> np.ndarray:
        return self.scores.entries

    @property
    def risk(self) -> np.ndarray:
        return self.scores.risk

    def risk_at(self, vertices_lps) -> np.ndarray:
        """The risk map carried to other points (e.g. a skin mesh's vertices): nearest candidate's."""
        from scipy.spatial import cKDTree

        _, j = cKDTree(self.candidates).query(np.asarray(vertices_lps, float).reshape(-1, 3))
        return self.risk[j]

    def summary(self) -> dict:
        s = self.scores
        return {"candidates": int(len(s.entries)), "feasible": int(s.feasible.sum()), "steps": int(s.steps),
                "structures": list(s.names), "scoring_ms": round(s.elapsed_ms, 1),
                "elapsed_ms": round(self.elapsed_ms, 1)}

    def to_json(self) -> dict:
        """The suggestion set without the per-candidate arrays (``arrays()``)."""
        s = self.scores
        return {"target_lps": np.round(self.target_lps, 3).tolist(), "target_structure": self.target_structure,
                "region": self.region, "instrument": self.instrument, "margins_mm": dict(self.margins_mm),
                **self.summary(),
                "top": [{"rank": n + 1, "score": round(float(s.score[i]), 4), "risk": round(float(s.risk[i]), 4),
                         "metrics": m.to_json()} for n, (i, m) in enumerate(zip(self.top_index, self.top, strict=True))]}

    def arrays(self) -> dict:
        """Per-candidate arrays for an ``arrays`` case item: entries, risk, score, feasible,
        length, angle and the clearance per structure (``clearance_names``)."""
        s = self.scores
        return {"entries_lps": s.entries.astype(np.float32), "risk": s.risk.astype(np.float32),
                "score": s.score.astype(np.float32), "feasible": s.feasible.astype(np.uint8),
                "length_mm": s.length_mm.astype(np.float32), "angle_deg": s.angle_deg.astype(np.float32),
                "clearance_mm": s.clearance_mm.astype(np.float32), "clearance_names": np.array(s.names, dtype=str),
                "target_lps": np.asarray(self.target_lps, np.float64)}


def suggest(maps: ClearanceMaps, target, region: str = "skin", *, k: int = 3, instrument_=None,
            margins: dict | None = None, patch_centre_lps=None, patch_radius_mm: float | None = None,
            max_candidates: int = MAX_CANDIDATES, min_separation_mm: float = 10.0,
            max_angle_deg: float = MAX_ANGLE_DEG, progress=None, cancel=None) -> Suggestions:
    """The ``k`` safest entries from ``region`` to ``target`` (a point or a structure name; see
    ``resolve_target``) with their full metrics, and every candidate's score and risk."""
    from surgtwin.core.progress import check, report

    t0 = time.perf_counter()
    ins = instrument(instrument_)
    tgt, tname = resolve_target(maps, target)
    report(progress, 0.05, "trajectory: clearance maps")
    crit = critical_margins(maps, margins, tname)
    for n, name in enumerate(crit):
        maps.map(name)
        report(progress, 0.05 + 0.5 * (n + 1) / max(1, len(crit)), f"trajectory: distance to {name}")
        check(cancel)
    report(progress, 0.6, "trajectory: candidate entries")
    entries = entry_candidates(maps, region, patch_centre_lps=patch_centre_lps, patch_radius_mm=patch_radius_mm,
                               max_candidates=max_candidates)
    check(cancel)
    report(progress, 0.7, f"trajectory: scoring {len(entries)} paths")
    scores = score_entries(maps, entries, tgt, ins, margins, target_structure=tname, region=region,
                           max_angle_deg=max_angle_deg)
    check(cancel)
    top_index = spread_top(entries, scores.score, int(k), min_separation_mm)
    surfaces = (BODY,) if _surface_name(region) == BODY else (BODY, region)
    top: list[TrajectoryMetrics] = [evaluate(maps, entries[i], tgt, ins, margins, target_structure=tname,
                                             surfaces=surfaces) for i in top_index]
    report(progress, 1.0, f"trajectory: {int(scores.feasible.sum())} of {len(entries)} entries feasible")
    return Suggestions(tgt, tname, region, ins.name, crit, scores, top, top_index,
                       (time.perf_counter() - t0) * 1000.0)
