"""In-silico trials over a cohort's results table (``services.cohort_table.results_table``).

Everything here is computed from the table's columns; nothing about the cohort is assumed. A case
that failed (status other than ``ok``) or lacks a value is left out of a statistic and counted
(``n_excluded_failed``, ``n_missing``). Every function returns plain JSON-able dicts.

* ``summarise(df)``: cases by status, the failures (case, step, error), time per step (median,
  total, max), peak memory, structure volume and Dice distributions.
* ``tavr_trial(df)``: recommended size distribution per valve family (count and share per size,
  "none" when no size fits), predicted mean gradient (median, IQR, share >= 20 mmHg; and per placed
  valve size), the physiology it was predicted at (cardiac output, heart rate, BSA), PPM and PVL
  shares, measurement error of the measured annulus and coronary heights against the phantom's
  truth (n, bias, SD, MAE, max |error|, 95 % limits of agreement), sizing agreement (the project's
  sizing chart, ``surgtwin/data/tavr/sizing.json``, applied to the TRUE annulus against the size
  recommended from the measured one) and the segmentation's Dice.
* ``flow_trial(df)``: Pd/Pp and pressure drop distributions, and the measured stenosis against the
  true one.
* ``hip_stem_trial(df)``: stress shielding (bone SED change, all and proximal zones) and implant
  safety factor by stem size; with trial arms (the same patients with several sizes), the sizes compared
  within patients (``paired``).

Error convention: error = measured - true (a positive bias: the measurement is too large).
"""

from __future__ import annotations

import math

import numpy as np

#: the gradient at or above which a valve is flagged (VARC-3: mean gradient >= 20 mmHg)
HIGH_GRADIENT_MMHG = 20.0
#: (measured column, true column, label, unit) of the TAVR measurements checked against the truth
TAVR_ERROR_PAIRS = (
    ("tavr:perimeter_mm", "truth:annulus_perimeter_mm", "annulus perimeter", "mm"),
    ("tavr:area_mm2", "truth:annulus_area_mm2", "annulus area", "mm^2"),
    ("tavr:diameter_min_mm", "truth:annulus_diameter_min_mm", "annulus minimum diameter", "mm"),
    ("tavr:diameter_max_mm", "truth:annulus_diameter_max_mm", "annulus maximum diameter", "mm"),
    ("tavr:coronary_height_left_mm", "truth:coronary_height_left_mm", "left coronary height", "mm"),
    ("tavr:coronary_height_right_mm", "truth:coronary_height_right_mm", "right coronary height", "mm"),
)


# -- small statistics ------------------------------------------------------------------------------
def _f(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _r(v, nd: int = 4) -> float | None:
    v = _f(v)
    return None if v is None else round(v, nd)


def describe(values) -> dict:
    """n, mean, SD, min, quartiles, median, max of the finite ``values``."""
    a = np.asarray([v for v in values if _f(v) is not None], float)
    if a.size == 0:
        return {"n": 0, "mean": None, "sd": None, "min": None, "q1": None, "median": None, "q3": None, "max": None}
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"n": int(a.size), "mean": _r(a.mean()), "sd": _r(a.std(ddof=1)) if a.size > 1 else None,
            "min": _r(a.min()), "q1": _r(q1), "median": _r(med), "q3": _r(q3), "max": _r(a.max())}


def agreement(measured, true) -> dict:
    """Bland-Altman statistics of ``measured`` against ``true`` (pairs with both finite): n, bias (mean
    of measured - true), SD, MAE, max |error|, 95 % limits of agreement (bias +- 1.96 SD), relative
    bias (% of the mean true value) and the mean true value."""
    m, t = np.asarray(measured, float), np.asarray(true, float)
    ok = np.isfinite(m) & np.isfinite(t)
    e = m[ok] - t[ok]
    n = int(e.size)
    if n == 0:
        return {"n": 0, "bias": None, "sd": None, "mae": None, "max_abs": None, "loa_low": None, "loa_high": None,
                "relative_bias_percent": None, "mean_true": None}
    bias = float(e.mean())
    sd = float(e.std(ddof=1)) if n > 1 else None
    mean_true = float(t[ok].mean())
    return {"n": n, "bias": _r(bias), "sd": _r(sd), "mae": _r(np.abs(e).mean()), "max_abs": _r(np.abs(e).max()),
            "loa_low": _r(bias - 1.96 * sd) if sd is not None else None,
            "loa_high": _r(bias + 1.96 * sd) if sd is not None else None,
            "relative_bias_percent": _r(100.0 * bias / mean_true) if mean_true else None,
            "mean_true": _r(mean_true)}


def _ok(df):
    return df[df["status"] == "ok"] if "status" in df.columns else df


def _n_failed(df) -> int:
    return int((df["status"] != "ok").sum()) if "status" in df.columns else 0


def _col(df, c):
    """Column ``c`` as floats (NaN where missing or not a number); all NaN when the table lacks it."""
    import pandas as pd

    if c not in df.columns:
        return pd.Series(np.nan, index=df.index, dtype=float)
    return pd.to_numeric(df[c], errors="coerce").astype(float)


def text_value(v) -> str | None:
    """A table cell as text (None when empty; a size read back from CSV as 23.0 gives "23")."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    s = str(v)
    if s.endswith(".0") and s[:-2].isdigit():  # a size read back from CSV as a number
        s = s[:-2]
    return s or None


def _prefixed(df, prefix: str) -> list[str]:
    return [c[len(prefix):] for c in df.columns if c.startswith(prefix)]


def _numeric_group(df, prefix: str) -> dict:
    """{name: describe(...) + n_missing} over the ok cases for every ``prefix<name>`` column."""
    ok = _ok(df)
    out = {}
    for name in _prefixed(df, prefix):
        v = _col(ok, prefix + name)
        d = describe(v)
        d["n_missing"] = int(v.isna().sum())
        out[name] = d
    return out


# -- the cohort in general -------------------------------------------------------------------------
def summarise(df) -> dict:
    """Counts (by status), failures, time per step, peak memory, volumes and Dice of a results table."""
    statuses = {str(k): int(v) for k, v in df["status"].value_counts().items()} if len(df) else {}
    failures = [{"case_id": str(r["case_id"]), "status": str(r["status"]),
                 "failed_step": text_value(r.get("failed_step")), "error": text_value(r.get("error")) or ""}
                for _, r in df.iterrows() if r["status"] != "ok"]
    steps = []
    for s in df.get("steps", []):
        for name in (text_value(s) or "").split(","):
            if name and name not in steps:
                steps.append(name)
    for name in _prefixed(df, "seconds:"):
        if name not in steps:
            steps.append(name)
    per_step = {}
    for name in steps:
        v = _col(df, f"seconds:{name}")
        ran = v.dropna()
        st = df[f"status:{name}"] if f"status:{name}" in df.columns else None
        per_step[name] = {"n": int(ran.size), "n_ok": int((st == "ok").sum()) if st is not None else int(ran.size),
                          "n_failed": int((st == "failed").sum()) if st is not None else 0,
                          "median_s": _r(ran.median()) if ran.size else None,
                          "total_s": _r(ran.sum()) if ran.size else None,
                          "max_s": _r(ran.max()) if ran.size else None}
    secs, rss = _col(df, "seconds").dropna(), _col(df, "peak_rss_mb").dropna()
    return {
        "n_cases": int(len(df)), "n_ok": int(statuses.get("ok", 0)), "n_failed": int(len(df) - statuses.get("ok", 0)),
        "by_status": statuses, "failures": failures, "steps": steps, "per_step": per_step,
        "case_seconds": {"median": _r(secs.median()) if secs.size else None,
                         "total": _r(secs.sum()) if secs.size else None, "max": _r(secs.max()) if secs.size else None},
        "peak_rss_mb": {"median": _r(rss.median()) if rss.size else None, "max": _r(rss.max()) if rss.size else None},
        "phantoms": sorted({str(p) for p in df.get("phantom", []) if text_value(p)}),
        "volumes_ml": _numeric_group(df, "volume_ml:"),
        "dice": _numeric_group(df, "dice:"),
    }


# -- TAVR -------------------------------------------------------------------------------------------
def _size_order(family: str, sizes) -> list[str]:
    from surgtwin.core.plan import tavr_devices as dev

    try:
        chart = [s["size"] for s in dev.chart(family)["sizes"]]
    except Exception:  # noqa: BLE001 - a family the charts no longer hold: natural order
        chart = []
    extra = sorted((s for s in sizes if s not in chart and s != "none"), key=lambda s: (len(s), s))
    return chart + extra + ["none"]


def true_sizes(df, family: str) -> list[str | None]:
    """Per row, the size the project's chart gives for the TRUE annulus (``truth:annulus_area_mm2`` and
    ``truth:annulus_perimeter_mm``); ``"none"`` when no size fits, None without the truth."""
    from surgtwin.core.plan import tavr_devices as dev

    area, per = _col(df, "truth:annulus_area_mm2"), _col(df, "truth:annulus_perimeter_mm")
    out = []
    for a, p in zip(area, per, strict=True):
        if not (math.isfinite(a) and math.isfinite(p)):
            out.append(None)
            continue
        rec = dev.size_family(family, float(a), float(p)).recommended
        out.append("none" if rec is None else str(rec))
    return out


def _families(df) -> list[str]:
    fams = _prefixed(df, "tavr:recommended:")
    try:
        from surgtwin.core.plan import tavr_devices as dev

        fams += [f for f in dev.families() if f not in fams]
    except Exception:  # noqa: BLE001
        pass
    return fams


def valve_sort_key(label: str):
    """Sort "family 23" labels by family, then by size as a number where it is one."""
    fam, _, size = label.rpartition(" ")
    try:
        return fam, float(size), size
    except ValueError:
        return fam, math.inf, size


def tavr_trial(df) -> dict:
    """The TAVR in-silico trial of a results table (see the module text)."""
    ok = _ok(df)
    tv = ok[ok["status:tavr"] == "ok"] if "status:tavr" in ok.columns else ok.iloc[0:0]
    out = {"n_cases": int(len(df)), "n_tavr": int(len(tv)), "n_excluded_failed": _n_failed(df),
           "n_tavr_not_run": int(len(ok) - len(tv)), "high_gradient_mmhg": HIGH_GRADIENT_MMHG}
    # sizes per family
    sizes = {}
    for fam in _families(df):
        col = f"tavr:recommended:{fam}"
        if col not in tv.columns:
            continue
        vals = [text_value(v) or "none" for v in tv[col]]
        n = len(vals)
        counts = {s: vals.count(s) for s in _size_order(fam, set(vals))}
        sizes[fam] = {"n": n, "counts": counts, "shares": {s: _r(c / n) if n else None for s, c in counts.items()}}
    out["sizes"] = sizes
    # gradient, PPM, PVL
    g = _col(tv, "tavr:mean_gradient_mmhg")
    gd = describe(g)
    gd["iqr"] = _r(gd["q3"] - gd["q1"]) if gd["n"] else None
    gd["n_missing"] = int(g.isna().sum())
    gd["share_high"] = _r(float((g.dropna() >= HIGH_GRADIENT_MMHG).mean())) if gd["n"] else None
    out["gradient_mmhg"] = gd
    sizes_placed, fams_placed = ([text_value(v) for v in tv[c]] if c in tv.columns else [None] * len(tv)
                                 for c in ("tavr:valve_size", "tavr:valve_family"))
    by_size: dict[str, list] = {}
    for fam, size, grad in zip(fams_placed, sizes_placed, g, strict=True):
        if size:
            by_size.setdefault(f"{fam} {size}" if fam else size, []).append(grad)
    out["gradient_by_valve"] = {k: describe(v) for k, v in sorted(by_size.items(), key=lambda kv: valve_sort_key(kv[0]))}
    out["physiology"] = {k: describe(_col(tv, f"tavr:{k}"))
                         for k in ("cardiac_output_l_min", "heart_rate_bpm", "bsa_m2")}
    for key, col in (("ppm", "tavr:ppm"), ("pvl_risk", "tavr:pvl_risk"), ("valve_size", "tavr:valve_size")):
        vals = [text_value(v) for v in tv[col]] if col in tv.columns else []
        have = [v for v in vals if v]
        out[key] = {"n": len(have), "n_missing": len(tv) - len(have),
                    "counts": {k: have.count(k) for k in sorted(set(have))},
                    "shares": {k: _r(have.count(k) / len(have)) for k in sorted(set(have))}}
    # measurement error against the truth
    errors = {}
    for mcol, tcol, label, unit in TAVR_ERROR_PAIRS:
        m, t = _col(tv, mcol), _col(tv, tcol)
        a = agreement(m, t)
        a.update(label=label, unit=unit, measured=mcol, true=tcol,
                 n_missing=int((m.isna() | t.isna()).sum()),
                 n_missing_measured=int((m.isna() & t.notna()).sum()))
        errors[mcol.split(":", 1)[1]] = a
    m, t = _col(tv, "tavr:eccentricity"), 1.0 - _col(tv, "truth:annulus_diameter_min_mm") / _col(
        tv, "truth:annulus_diameter_max_mm")
    e = agreement(m, t)
    e.update(label="annulus eccentricity (1 - Dmin/Dmax)", unit="", measured="tavr:eccentricity",
             true="1 - truth:annulus_diameter_min_mm / truth:annulus_diameter_max_mm",
             n_missing=int((m.isna() | t.isna()).sum()), n_missing_measured=int((m.isna() & t.notna()).sum()))
    errors["eccentricity"] = e
    out["measurement_error"] = errors
    # sizing agreement: the chart on the true annulus vs the recommendation from the measured one
    agree = {}
    for fam in sizes:
        truth = true_sizes(tv, fam)
        meas = [text_value(v) or "none" for v in tv[f"tavr:recommended:{fam}"]]
        pairs = [(cid, ts, ms) for cid, ts, ms in zip(tv["case_id"], truth, meas, strict=True) if ts is not None]
        n = len(pairs)
        same = sum(ts == ms for _, ts, ms in pairs)
        confusion = {}
        for _, ts, ms in pairs:
            confusion[f"{ts}->{ms}"] = confusion.get(f"{ts}->{ms}", 0) + 1
        agree[fam] = {"n": n, "n_missing_truth": len(tv) - n, "agree": same,
                      "share_agree": _r(same / n) if n else None,
                      "confusion": dict(sorted(confusion.items())),
                      "disagreeing": [{"case_id": str(c), "true_size": ts, "measured_size": ms}
                                      for c, ts, ms in pairs if ts != ms]}
    out["sizing_agreement"] = agree
    out["dice"] = {k: v for k, v in _numeric_group(df, "dice:").items()}
    return out


# -- flow -------------------------------------------------------------------------------------------
def flow_trial(df) -> dict:
    """Pd/Pp and pressure drops over the cohort, and the measured stenosis against the true one."""
    ok = _ok(df)
    fl = ok[ok["status:flow"] == "ok"] if "status:flow" in ok.columns else ok.iloc[0:0]
    pr = _col(fl, "flow:min_pd_pp")
    out = {"n_cases": int(len(df)), "n_flow": int(len(fl)), "n_excluded_failed": _n_failed(df),
           "min_pd_pp": {**describe(pr), "n_missing": int(pr.isna().sum())},
           "max_stenosis_drop_mmhg": describe(_col(fl, "flow:max_stenosis_drop_mmhg")),
           "max_segment_drop_mmhg": describe(_col(fl, "flow:max_segment_drop_mmhg")),
           "stenoses_found": describe(_col(fl, "flow:stenoses")),
           "share_pd_pp_below_0_9": _r(float((pr.dropna() < 0.9).mean())) if pr.notna().any() else None}
    # the stenosis found in the vessel the phantom narrowed (truth:stenosis_vessel) against its true degree
    vessels = [text_value(v) for v in fl["truth:stenosis_vessel"]] if "truth:stenosis_vessel" in fl.columns else [None] * len(fl)
    meas = [_col(fl.iloc[[i]], f"flow:stenosis_percent:{v}").iloc[0] if v else np.nan
            for i, v in enumerate(vessels)]
    t = _col(fl, "truth:stenosis_percent")
    a = agreement(meas, t)
    a.update(label="diameter stenosis in the narrowed vessel", unit="%",
             measured="flow:stenosis_percent:<truth:stenosis_vessel>", true="truth:stenosis_percent",
             n_missing=int(sum(1 for m, tt in zip(meas, t, strict=True) if not (np.isfinite(m) and np.isfinite(tt)))),
             n_not_found=int(sum(1 for m, tt in zip(meas, t, strict=True) if np.isfinite(tt) and not np.isfinite(m))))
    out["stenosis_error"] = a
    return out


# -- hip stem ---------------------------------------------------------------------------------------
def hip_stem_trial(df) -> dict:
    """Stress shielding and implant safety by stem size (cases whose fem step simulated a hip stem)."""
    ok = _ok(df)
    fe = ok[ok["status:fem"] == "ok"] if "status:fem" in ok.columns else ok.iloc[0:0]
    if "fem:implant_family" in fe.columns:
        fe = fe[fe["fem:implant_family"] == "hip-stem"]
    else:
        fe = fe.iloc[0:0]
    by = {}
    sizes = sorted({text_value(s) for s in fe.get("fem:implant_size", []) if text_value(s)},
                   key=lambda s: (len(s), s))
    for size in sizes:
        g = fe[[text_value(s) == size for s in fe["fem:implant_size"]]]
        passed = [bool(v) for v in g.get("implant:passed", []) if v is not None and v == v]
        by[size] = {"n": int(len(g)),
                    "bone_sed_change_percent": describe(_col(g, "fem:bone_sed_change_percent")),
                    "proximal_sed_change_percent": describe(_col(g, "fem:proximal_sed_change_percent")),
                    "implant_safety_factor": describe(_col(g, "fem:implant_safety_factor")),
                    "implant_peak_von_mises_mpa": describe(_col(g, "fem:implant_peak_von_mises_mpa")),
                    "checks_passed": {"n": len(passed), "passed": sum(passed)}}
    zones = {z: describe(_col(fe, f"fem:{z}:sed_change_percent"))
             for z in sorted({c.split(":")[1] for c in fe.columns if c.startswith("fem:zone")},
                             key=lambda s: int(s[4:]) if s[4:].isdigit() else 0)}
    return {"n_cases": int(len(df)), "n_stems": int(len(fe)), "n_excluded_failed": _n_failed(df),
            "by_size": by, "zones": zones, "paired": _paired_sizes(fe, sizes)}


def _patient(row) -> str | None:
    """Who a row is: a virtual patient's kind and seed, or the study's path (the same in every trial arm)."""
    if text_value(row.get("phantom")) and _f(row.get("seed")) is not None:
        return f"{row['phantom']}-{int(row['seed'])}"
    return text_value(row.get("source_path"))


def _paired_sizes(fe, sizes: list[str]) -> dict:
    """Stem sizes compared within the same patients (trial arms): per step between consecutive sizes, the
    median within-patient difference of the proximal SED change (larger minus smaller stem; negative: the
    larger stem shields more), and the share of patients with more proximal shielding at every larger size."""
    per: dict[str, dict[str, float]] = {}
    for _, row in fe.iterrows():
        who, size = _patient(row), text_value(row.get("fem:implant_size"))
        v = _f(row.get("fem:proximal_sed_change_percent"))
        if who and size and v is not None:
            per.setdefault(who, {})[size] = v
    per = {k: v for k, v in per.items() if len(v) >= 2}
    steps = []
    for lo, hi in zip(sizes, sizes[1:], strict=False):
        d = [v[hi] - v[lo] for v in per.values() if lo in v and hi in v]
        steps.append({"from": lo, "to": hi, "n": len(d), "median_delta_percent": _r(np.median(d)) if d else None,
                      "n_more_shielding": int(sum(x < 0 for x in d))})
    mono = [all(b < a for a, b in zip(vals, vals[1:], strict=False))
            for vals in ([v[s] for s in sizes if s in v] for v in per.values())]
    return {"n_patients": len(per), "steps": steps, "n_monotone_more_shielding": int(sum(mono)),
            "share_monotone_more_shielding": _r(sum(mono) / len(mono)) if mono else None}
