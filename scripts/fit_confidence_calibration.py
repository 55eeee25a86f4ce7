"""Fit the bundled model's confidence calibration for the quality gate (held-out phantoms).

The model's raw per-structure score is the mean softmax inside the structure. Here it is mapped to
the probability that the structure is correct (Dice >= 0.5 against ground truth; a structure with no
ground truth at all is incorrect) by Platt scaling: a logistic fit on the logit of the raw score
(two numbers, one for all structures: too few samples per structure for more). Phantom seeds
9700.. are used: never the training (500, 1000+), benchmark (9000-9004) or tuning (9500-9501) seeds.
The expected calibration error (10 equal-width bins) is reported before and after, the "after" one
leave-one-case-out (each case scored by a fit on the others).

    .venv/bin/python scripts/fit_confidence_calibration.py --seeds 4 [--out surgtwin/data/anatomy/...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "surgtwin" / "data" / "anatomy" / "confidence_calibration.json"
KINDS = ("abdomen-pelvis", "cardiac-cta", "head")
SEED_BASE = 9700


def samples_of_case(kind: str, seed: int) -> list[tuple[str, float, float]]:
    """(structure, raw confidence, Dice) for every structure the model reports on one phantom."""
    from surgtwin.core.phantom import generate_case
    from surgtwin.core.segmentation import segment
    from surgtwin.core.segmentation.classes import CLASS_NAMES, phantom_to_channels

    case = generate_case(kind, seed)
    truth = phantom_to_channels(case.labels.array, case.labels.labels)
    res = segment(case.ct, device="cpu")
    out = []
    by_value = {lab.value: lab.name for lab in res.labels.labels}
    for s in res.structures:
        name = by_value[s.value]
        pred = res.labels.array == s.value
        gt = truth == CLASS_NAMES.index(name) if name in CLASS_NAMES else np.zeros_like(pred)
        denom = int(pred.sum()) + int(gt.sum())
        dice = 2.0 * int((pred & gt).sum()) / denom if denom else 0.0
        out.append((name, float(s.confidence), dice))
    return out


def _logit(p):
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def fit_platt(raw, y, *, l2: float = 1e-3, iters: int = 100) -> tuple[float, float]:
    """Logistic regression of ``y`` on logit(raw) by Newton's method (small ridge on the slope)."""
    x = _logit(raw)
    y = np.asarray(y, np.float64)
    a, b = 1.0, 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(a * x + b)))
        g = np.array([np.sum((p - y) * x) + l2 * a, np.sum(p - y)])
        w = p * (1 - p)
        h = np.array([[np.sum(w * x * x) + l2, np.sum(w * x)], [np.sum(w * x), np.sum(w) + 1e-9]])
        step = np.linalg.solve(h, g)
        a, b = a - step[0], b - step[1]
        if np.max(np.abs(step)) < 1e-9:
            break
    return float(a), float(b)


def apply_platt(raw, a: float, b: float):
    return 1 / (1 + np.exp(-(a * _logit(raw) + b)))


def ece(prob, y, bins: int = 10) -> float:
    prob, y = np.asarray(prob, np.float64), np.asarray(y, np.float64)
    idx = np.minimum((prob * bins).astype(int), bins - 1)
    tot = 0.0
    for k in range(bins):
        m = idx == k
        if m.any():
            tot += m.sum() / len(prob) * abs(prob[m].mean() - y[m].mean())
    return float(tot)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3, help="phantom seeds per kind (from 9700)")
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    from surgtwin.core.segmentation import default_bundle_dir, load_bundle

    bundle = load_bundle(default_bundle_dir())
    cases = []
    for kind in KINDS:
        for seed in range(SEED_BASE, SEED_BASE + a.seeds):
            t = time.perf_counter()
            s = samples_of_case(kind, seed)
            cases.append((f"{kind}:{seed}", s))
            print(f"{kind} seed {seed}: {len(s)} structures, {time.perf_counter() - t:.0f} s", flush=True)
    raw = np.array([c for _k, ss in cases for _n, c, _d in ss])
    y = np.array([d >= 0.5 for _k, ss in cases for _n, _c, d in ss], np.float64)
    case_of = np.array([i for i, (_k, ss) in enumerate(cases) for _ in ss])
    loo = np.zeros_like(raw)
    for i in range(len(cases)):
        m = case_of == i
        ai, bi = fit_platt(raw[~m], y[~m])
        loo[m] = apply_platt(raw[m], ai, bi)
    a_all, b_all = fit_platt(raw, y)
    before, after = ece(raw, y), ece(loo, y)
    doc = {"model": bundle.name, "model_version": bundle.version, "model_sha256": bundle.weights_sha256,
           "method": "platt: p = 1 / (1 + exp(-(a * logit(raw) + b))), one (a, b) for all structures",
           "target": "probability that the structure is correct (Dice >= 0.5 against ground truth)",
           "fitted_on": f"{len(cases)} held-out phantom cases (generate_case {', '.join(KINDS)}, seeds "
                        f"{SEED_BASE}-{SEED_BASE + a.seeds - 1}), {len(raw)} structures, {int(y.sum())} correct",
           "ece_before": round(before, 4), "ece_after": round(after, 4),
           "ece_after_note": "leave-one-case-out", "global": {"a": round(a_all, 5), "b": round(b_all, 5)},
           "per_structure": {}, "bins": 10}
    a.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"ECE before {before:.4f}, after {after:.4f} (leave-one-case-out); a={a_all:.3f} b={b_all:.3f}")
    print(f"accuracy {y.mean():.3f}, mean raw {raw.mean():.3f}; wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
