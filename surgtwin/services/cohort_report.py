"""The cohort report: a PDF of a cohort's results table and in-silico trial (issue 19).

``write_cohort_report(out_dir)`` reads the cohort's records (``services.cohort_table.results_table``),
runs the trial statistics (``services.trial``) and writes ``OUT/cohort_report.pdf`` (atomically: a
temporary file, then a rename):

* page 1: the overview (cases, ok / failed with each failure's case and error, steps, wall time per
  step, peak memory);
* segmentation: structure volumes (box plots, the phantom's true volumes marked) and Dice per structure;
* TAVR (when the cohort ran it): annulus area histogram (true vs measured), recommended size per
  family, predicted mean gradient against cardiac output by placed valve (and the physiology it was
  predicted at), Bland-Altman plots of the measured perimeter and area against the truth, the
  measurement error and sizing agreement tables;
* flow (Pd/Pp, pressure drop, measured vs true stenosis) and FE (stress shielding by zone and stem
  size, implant safety factor; stem sizes compared within the same patients when the cohort has trial
  arms) when present;
* a per-case table and the limitations.

Plots are drawn with matplotlib's Agg canvas (no display, no global backend change) and embedded as
PNG at 150 dpi. The layout reuses the plan report's blocks (``services.report_pages``); every page
carries "NOT FOR CLINICAL USE -- planning aid; virtual cohort results describe synthetic phantoms only"
and "Page X of Y".
"""

from __future__ import annotations

import io
import math
import time
from pathlib import Path

import numpy as np

from surgtwin.core.io import atomic_write
from surgtwin.core.progress import check, report
from surgtwin.services import report_pages as rp
from surgtwin.services import trial as tr
from surgtwin.services.cohort_table import results_table

REPORT_NAME = "cohort_report.pdf"
STATEMENT = "NOT FOR CLINICAL USE \u2014 planning aid; virtual cohort results describe synthetic phantoms only"
#: the footer of every page (the header says NOT FOR CLINICAL USE)
FOOTER = "Planning aid; virtual cohort results describe synthetic phantoms only."
DPI = 150
FIG_WIDTH_IN = 7.0
ARROW = " \u2192 "
LOWEST_DICE_ROWS = 6
NAVY, ORANGE, GREY, RED = "#1c3557", "#d9822b", "#8a97a6", "#b3261e"
LIMITATIONS = (
    "Virtual patients are synthetic phantoms drawn from the generator's parameter ranges "
    "(docs/cohorts.md); their anatomy, image noise and contrast are simplified, so the measurement error, "
    "Dice and size distributions shown here describe the pipeline on phantoms, not its accuracy on patients. "
    "Coarse voxel spacing (as used for fast cohorts) inflates segmentation and measurement errors. "
    "Device sizing uses representative charts of two generic valve families; predicted gradients use a "
    "simplified Bernoulli model at each patient's cardiac output and heart rate (a virtual patient's are "
    "drawn, docs/cohorts.md; 5 l/min and 70 bpm where none is given); the paravalvular-leak indicator "
    "and PPM grade are planning indicators with unvalidated weights. Flow results come from a steady or "
    "pulsatile reduced-order (0D) model; FE results from a linear-elastic model with density-derived bone "
    "stiffness and idealised loads. Failed cases are excluded from every statistic and listed on page 1; "
    "statistics over few cases are imprecise (limits of agreement need many cases to be meaningful)."
)


# -- figures (matplotlib, Agg, PNG) ----------------------------------------------------------------
def _figure(height_in: float, ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(FIG_WIDTH_IN, height_in), dpi=DPI)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    for ax in axes:
        ax.tick_params(labelsize=7)
        ax.grid(True, color="#e3e7ec", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    return fig, list(axes)


def _integer_y(*axes) -> None:
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.tight_layout(pad=0.6)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return buf.getvalue()


def _horizontal() -> dict:
    """boxplot's keyword for horizontal boxes (``orientation`` since matplotlib 3.10, ``vert`` before)."""
    import matplotlib

    major, minor = (int(x) for x in matplotlib.__version__.split(".")[:2])
    return {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}


def _finite(values) -> np.ndarray:
    a = np.asarray([v for v in values], float)
    return a[np.isfinite(a)]


def _label(ax, title: str, xlabel: str = "", ylabel: str = "") -> None:
    ax.set_title(title, fontsize=8.5, loc="left", color="#222222")
    ax.set_xlabel(xlabel, fontsize=7.5)
    ax.set_ylabel(ylabel, fontsize=7.5)


def _pretty(name: str) -> str:
    return name.replace("_", " ")


def volumes_figure(df) -> bytes | None:
    """Box plots of the segmented volumes per structure (log scale), true volumes as orange marks."""
    ok = df[df["status"] == "ok"]
    names = [c.split(":", 1)[1] for c in df.columns if c.startswith("volume_ml:")]
    data = [(n, _finite(tr_col(ok, f"volume_ml:{n}"))) for n in names]
    data = [(n, v) for n, v in data if v.size]
    if not data:
        return None
    data.sort(key=lambda x: -np.median(x[1]))
    fig, (ax,) = _figure(0.8 + 0.15 * len(data))
    pos = np.arange(len(data))[::-1]
    ax.boxplot([v for _, v in data], positions=pos, **_horizontal(), widths=0.6, patch_artist=True,
               boxprops={"facecolor": "#c9d6e8", "edgecolor": NAVY, "linewidth": 0.8},
               medianprops={"color": NAVY, "linewidth": 1.2}, whiskerprops={"color": NAVY, "linewidth": 0.8},
               capprops={"color": NAVY, "linewidth": 0.8}, flierprops={"markersize": 2.5, "markeredgecolor": NAVY})
    shown_truth = False
    for p, (n, _) in zip(pos, data, strict=True):
        t = _finite(tr_col(ok, f"truth:volume_ml:{n}"))
        if t.size:
            ax.plot(t, np.full(t.size, p), "|", color=ORANGE, markersize=7, mew=1.2,
                    label="true (phantom)" if not shown_truth else None)
            shown_truth = True
    ax.set_yticks(pos, [_pretty(n) for n, _ in data], fontsize=7)
    ax.set_xscale("log")
    _label(ax, f"Segmented structure volumes ({len(ok)} ok cases)", "volume (ml, log scale)")
    if shown_truth:
        ax.legend(fontsize=7, loc="lower right", frameon=False)
    return _png(fig)


def dice_figure(df) -> bytes | None:
    ok = df[df["status"] == "ok"]
    names = [c.split(":", 1)[1] for c in df.columns if c.startswith("dice:")]
    data = [(n, _finite(tr_col(ok, f"dice:{n}"))) for n in names]
    data = [(n, v) for n, v in data if v.size]
    if not data:
        return None
    data.sort(key=lambda x: np.median(x[1]))
    fig, (ax,) = _figure(0.8 + 0.15 * len(data))
    rng = np.random.default_rng(0)
    for p, (_, v) in enumerate(data):
        ax.plot([v.min(), v.max()], [p, p], color=GREY, linewidth=0.8)
        ax.scatter(v, p + rng.uniform(-0.15, 0.15, v.size), s=9, color=NAVY, alpha=0.75, linewidths=0)
        ax.plot(np.median(v), p, "|", color=ORANGE, markersize=9, mew=1.6)
    ax.set_yticks(range(len(data)), [_pretty(n) for n, _ in data], fontsize=7)
    lo = min(float(v.min()) for _, v in data)
    ax.set_xlim(max(0.0, min(0.8, lo - 0.02)), 1.0)
    _label(ax, "Dice of the segmentation against the phantom's true labels (dots: cases, orange: median)", "Dice")
    return _png(fig)


def tr_col(df, c):
    """Column ``c`` of ``df`` as floats (NaN where missing)."""
    import pandas as pd

    if c not in df.columns:
        return pd.Series(np.nan, index=df.index, dtype=float)
    return pd.to_numeric(df[c], errors="coerce").astype(float)


def _tavr_rows(df):
    ok = df[df["status"] == "ok"]
    return ok[ok["status:tavr"] == "ok"] if "status:tavr" in ok.columns else ok.iloc[0:0]


def annulus_figure(df) -> bytes | None:
    tv = _tavr_rows(df)
    m, t = _finite(tr_col(tv, "tavr:area_mm2")), _finite(tr_col(tv, "truth:annulus_area_mm2"))
    g = tr_col(tv, "tavr:mean_gradient_mmhg").to_numpy()
    if not m.size:
        return None
    fig, (a1, a2) = _figure(2.5, 2)
    both = np.concatenate([m, t]) if t.size else m
    bins = np.histogram_bin_edges(both, bins=min(20, max(5, int(np.sqrt(both.size)) + 3)))
    a1.hist(m, bins=bins, color=NAVY, alpha=0.75, label=f"measured (n={m.size})")
    if t.size:
        a1.hist(t, bins=bins, histtype="step", color=ORANGE, linewidth=1.6, label=f"true (n={t.size})")
    a1.legend(fontsize=7, frameon=False)
    _label(a1, "Annulus area", "area (mm\u00b2)", "cases")
    _integer_y(a1, a2)
    if np.isfinite(g).any():
        _gradient_scatter(a2, tv, g)
    else:
        a2.text(0.5, 0.5, "no predicted gradients\n(no valve placed)", ha="center", va="center", fontsize=8,
                transform=a2.transAxes, color=GREY)
        a2.set_axis_off()
    return _png(fig)


def _gradient_scatter(ax, tv, g) -> None:
    """Predicted mean gradient against the cardiac output it was predicted at, one colour per valve."""
    co = tr_col(tv, "tavr:cardiac_output_l_min").to_numpy()
    fams = [tr.text_value(f) for f in _cells(tv, "tavr:valve_family")]
    sizes = [tr.text_value(s) for s in _cells(tv, "tavr:valve_size")]
    keep = np.isfinite(g) & np.isfinite(co)
    one_family = len({fams[i] for i in np.flatnonzero(keep)}) == 1
    valves = [(f"{s} mm" if one_family else f"{f} {s} mm") if s else "?" for f, s in zip(fams, sizes, strict=True)]
    colours = ["#1c3557", "#d9822b", "#2e7d6b", "#8e44ad", "#b3261e", "#5d6d7e", "#c0a000"]
    for k, v in enumerate(sorted({valves[i] for i in np.flatnonzero(keep)}, key=lambda x: tr.valve_sort_key(x[:-3]))):
        sel = keep & np.array([x == v for x in valves])
        ax.scatter(co[sel], g[sel], s=14, color=colours[k % len(colours)], label=f"{v} (n={int(sel.sum())})",
                   alpha=0.85, edgecolors="none")
    top = max(tr.HIGH_GRADIENT_MMHG, float(np.nanmax(g[keep])) if keep.any() else 0.0)
    ax.set_ylim(0, top * 1.5)  # head room for the legend above the points
    ax.axhline(tr.HIGH_GRADIENT_MMHG, color=RED, linestyle="--", linewidth=1)
    ax.text(1.0, tr.HIGH_GRADIENT_MMHG, f"{tr.HIGH_GRADIENT_MMHG:g} mmHg ", color=RED, fontsize=7, va="bottom",
            ha="right", transform=ax.get_yaxis_transform())
    title = f"placed {fams[int(np.flatnonzero(keep)[0])]} valve" if one_family and keep.any() else "placed valve"
    ax.legend(fontsize=6, frameon=False, loc="upper left", title=title, title_fontsize=6, ncol=2)
    _label(ax, f"Predicted mean gradient (n={int(keep.sum())})", "cardiac output (l/min)", "mean gradient (mmHg)")


def _cells(df, c) -> list:
    return list(df[c]) if c in df.columns else [None] * len(df)


def sizes_figure(trial: dict) -> bytes | None:
    fams = [(f, s) for f, s in trial.get("sizes", {}).items() if s["n"]]
    if not fams:
        return None
    fig, axes = _figure(2.3, len(fams))
    for ax, (fam, s) in zip(axes, fams, strict=True):
        labels = list(s["counts"])
        counts = [s["counts"][k] for k in labels]
        colors = [GREY if k == "none" else NAVY for k in labels]
        bars = ax.bar([("none fits" if k == "none" else f"{k} mm") for k in labels], counts, color=colors, width=0.6)
        for b, c in zip(bars, counts, strict=True):
            if c:
                ax.text(b.get_x() + b.get_width() / 2, c, f"{c} ({100 * c / s['n']:.0f}%)", ha="center",
                        va="bottom", fontsize=6.5)
        ax.set_ylim(0, max(counts) * 1.25 + 0.5)
        _integer_y(ax)
        _label(ax, f"{fam}: recommended size (n={s['n']})", "", "cases")
    return _png(fig)


def bland_altman_figure(df) -> bytes | None:
    tv = _tavr_rows(df)
    pairs = [("tavr:perimeter_mm", "truth:annulus_perimeter_mm", "Annulus perimeter", "mm"),
             ("tavr:area_mm2", "truth:annulus_area_mm2", "Annulus area", "mm\u00b2")]
    have = []
    for mc, tc, title, unit in pairs:
        m, t = tr_col(tv, mc).to_numpy(), tr_col(tv, tc).to_numpy()
        ok = np.isfinite(m) & np.isfinite(t)
        if ok.any():
            have.append((m[ok], t[ok], title, unit))
    if not have:
        return None
    fig, axes = _figure(2.6, len(have))
    for ax, (m, t, title, unit) in zip(axes, have, strict=True):
        mean, diff = (m + t) / 2, m - t
        a = tr.agreement(m, t)
        ax.scatter(mean, diff, s=12, color=NAVY, alpha=0.8, linewidths=0)
        ax.axhline(0, color=GREY, linewidth=0.8)
        ax.axhline(a["bias"], color=ORANGE, linewidth=1.2)
        txt = f"bias {a['bias']:+.2f}"
        if a["sd"] is not None:
            for y in (a["loa_low"], a["loa_high"]):
                ax.axhline(y, color=ORANGE, linewidth=0.9, linestyle="--")
            txt += f", 95% LoA {a['loa_low']:+.2f} to {a['loa_high']:+.2f}"
        _label(ax, f"{title}: measured \u2212 true (n={a['n']})", f"mean of measured and true ({unit})",
               f"difference ({unit})")
        ax.text(0.02, 0.97, txt + f" {unit}", transform=ax.transAxes, fontsize=7, va="top", color="#333333")
    return _png(fig)


def flow_figure(df, flow: dict) -> bytes | None:
    ok = df[df["status"] == "ok"]
    fl = ok[ok["status:flow"] == "ok"] if "status:flow" in ok.columns else ok.iloc[0:0]
    pr = _finite(tr_col(fl, "flow:min_pd_pp"))
    if not pr.size:
        return None
    fig, (a1, a2) = _figure(2.5, 2)
    a1.hist(pr, bins=np.histogram_bin_edges(pr, bins=min(15, max(5, pr.size + 2))), color=NAVY, alpha=0.75)
    a1.axvline(0.9, color=RED, linestyle="--", linewidth=1)
    _integer_y(a1)
    _label(a1, f"Lowest stenosis Pd/Pp per case (n={pr.size})", "Pd/Pp", "cases")
    vessels = [str(v) for v in fl.get("truth:stenosis_vessel", [])]
    meas, true = [], []
    for i, v in enumerate(vessels):
        meas.append(tr_col(fl.iloc[[i]], f"flow:stenosis_percent:{v}").iloc[0])
        true.append(tr_col(fl.iloc[[i]], "truth:stenosis_percent").iloc[0])
    meas, true = np.asarray(meas, float), np.asarray(true, float)
    sel = np.isfinite(meas) & np.isfinite(true)
    if sel.any():
        lo, hi = min(meas[sel].min(), true[sel].min()) - 5, max(meas[sel].max(), true[sel].max()) + 5
        a2.plot([lo, hi], [lo, hi], color=GREY, linewidth=0.8)
        a2.scatter(true[sel], meas[sel], s=14, color=NAVY, linewidths=0)
        e = flow.get("stenosis_error") or {}
        if e.get("bias") is not None:
            a2.text(0.02, 0.97, f"bias {e['bias']:+.1f} %, MAE {e['mae']:.1f} %", transform=a2.transAxes,
                    fontsize=7, va="top")
        _label(a2, "Stenosis in the narrowed vessel", "true diameter stenosis (%)", "measured (%)")
    else:
        a2.text(0.5, 0.5, "no ground truth stenosis", ha="center", va="center", transform=a2.transAxes,
                fontsize=8, color=GREY)
        a2.set_axis_off()
    return _png(fig)


def fem_figure(df) -> bytes | None:
    ok = df[df["status"] == "ok"]
    fe = ok[ok["status:fem"] == "ok"] if "status:fem" in ok.columns else ok.iloc[0:0]
    zones = sorted({c.split(":")[1] for c in fe.columns if c.startswith("fem:zone")},
                   key=lambda s: int(s[4:]) if s[4:].isdigit() else 0)
    data = [(z[4:], _finite(tr_col(fe, f"fem:{z}:sed_change_percent"))) for z in zones]
    data = [(z, v) for z, v in data if v.size]
    sf = [(str(s), v) for s, v in zip(fe.get("fem:implant_size", []), tr_col(fe, "fem:implant_safety_factor"),
                                      strict=False) if math.isfinite(v)]
    if not data and not sf:
        return None
    fig, (a1, a2) = _figure(2.5, 2)
    if data:
        a1.boxplot([v for _, v in data], positions=range(len(data)), widths=0.55, patch_artist=True,
                   boxprops={"facecolor": "#c9d6e8", "edgecolor": NAVY}, medianprops={"color": NAVY})
        a1.set_xticks(range(len(data)), [z for z, _ in data], fontsize=7)
        a1.axhline(0, color=GREY, linewidth=0.8)
        _label(a1, f"Bone SED change by zone, implanted vs intact (n={fe.shape[0]})", "zone", "SED change (%)")
    if sf:
        sizes = sorted({s for s, _ in sf}, key=lambda s: (len(s), s))
        for i, s in enumerate(sizes):
            v = [x for k, x in sf if k == s]
            a2.scatter(np.full(len(v), i), v, s=14, color=NAVY)
        a2.set_xticks(range(len(sizes)), sizes, fontsize=7)
        a2.set_xlim(-0.6, len(sizes) - 0.4)
        _label(a2, "Implant safety factor (yield / peak stress)", "stem size", "safety factor")
    else:
        a2.set_axis_off()
    return _png(fig)


# -- the document ----------------------------------------------------------------------------------
def _n(v, fmt=".1f", unit="") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "\u2013"
    return f"{v:{fmt}}{(' ' + unit) if unit else ''}"


def _dur(s) -> str:
    if s is None:
        return "\u2013"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def _add_plot(blocks: list, png: bytes | None, caption: str) -> None:
    """A matplotlib figure (PNG bytes) as a lossless report figure with its caption."""
    if png is None:
        return
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        rgb = np.asarray(im.convert("RGB"))
    blocks.append(rp.Figure([("", rgb)], caption=caption, max_height_mm=200.0, lossless=True))


def _overview(df, s: dict, out_dir: Path) -> rp.Section:
    kinds = sorted({str(k) for k in df.get("source_kind", []) if isinstance(k, str)})
    rows = [["Cases", str(s["n_cases"]), "Completed (ok)", str(s["n_ok"])],
            ["Failed or incomplete", str(s["n_failed"]), "Steps", ", ".join(s["steps"]) or "\u2013"],
            ["Sources", ", ".join(kinds) or "\u2013", "Phantoms", ", ".join(s["phantoms"]) or "\u2013"],
            ["Case time, median", _dur(s["case_seconds"]["median"]), "Case time, total (all workers)",
             _dur(s["case_seconds"]["total"])],
            ["Peak memory per case, median", _n(s["peak_rss_mb"]["median"], ".0f", "MB"),
             "Peak memory, max", _n(s["peak_rss_mb"]["max"], ".0f", "MB")],
            ["Output folder", str(out_dir), "", ""]]
    blocks: list = [rp.Table([], rows, widths=[0.24, 0.26, 0.26, 0.24], key_value=True)]
    step_rows = [[name, str(p["n_ok"]), str(p["n_failed"]), _dur(p["median_s"]), _dur(p["max_s"]),
                  _dur(p["total_s"])] for name, p in s["per_step"].items()]
    if step_rows:
        blocks.append(rp.Text("Wall time per step", "h2"))
        blocks.append(rp.Table(["step", "ok", "failed", "median", "max", "total"], step_rows,
                               widths=[0.2, 0.1, 0.1, 0.2, 0.2, 0.2],
                               caption="Seconds per case and step as recorded by the worker that ran it; "
                                       "total is summed over cases (wall time of a parallel run is shorter)."))
    blocks.append(rp.Text(f"Failures ({len(s['failures'])})", "h2"))
    if s["failures"]:
        blocks.append(rp.Table(["case", "status", "step", "error"],
                               [[f["case_id"], f["status"], f["failed_step"] or "\u2013", f["error"] or "\u2013"]
                                for f in s["failures"]], widths=[0.2, 0.1, 0.1, 0.6], verdict_columns=(1,),
                               caption="Failed and incomplete cases are excluded from every statistic below."))
    else:
        blocks.append(rp.Text("None: every case completed its steps.", "note"))
    return rp.Section("Overview", blocks)


def _segmentation(df, s: dict) -> rp.Section | None:
    blocks: list = []
    _add_plot(blocks, volumes_figure(df), "Box: quartiles and median of the segmented volume over the ok cases; "
             "whiskers 1.5 IQR. Orange ticks: the phantom's true volume of each case (virtual patients only).")
    _add_plot(blocks, dice_figure(df), "Dice = 2|A\u2229B| / (|A| + |B|) of each structure's segmentation "
             "against the phantom's true label on the same grid.")
    if s["dice"]:
        rows = []
        ranked = sorted(s["dice"].items(), key=lambda kv: (kv[1]["median"] is None, kv[1]["median"] or 0))
        for name, d in ranked[:LOWEST_DICE_ROWS]:
            worst = ""
            col = tr_col(df[df["status"] == "ok"], f"dice:{name}")
            if col.notna().any():
                worst = str(df.loc[col.idxmin(), "case_id"])
            rows.append([_pretty(name), str(d["n"]), _n(d["mean"], ".3f"), _n(d["median"], ".3f"),
                         _n(d["min"], ".3f"), worst])
        blocks.append(rp.Table(["structure", "n", "mean", "median", "min", "lowest case"], rows,
                               widths=[0.28, 0.08, 0.14, 0.14, 0.14, 0.22],
                               caption=f"The {len(rows)} structure(s) with the lowest median Dice "
                                       f"(of {len(ranked)}; all are in the plot)."))
    if not blocks:
        return None
    return rp.Section("Segmentation", blocks, new_page=True)


def _tavr(df, t: dict) -> rp.Section | None:
    if not t["n_tavr"]:
        return None
    blocks: list = [rp.Text(
        f"{t['n_tavr']} case(s) with a TAVR plan; {t['n_excluded_failed']} failed case(s) excluded"
        + (f"; {t['n_tavr_not_run']} ok case(s) without one" if t["n_tavr_not_run"] else "") + ".", "note")]
    _add_plot(blocks, annulus_figure(df), "Left: measured annulus area (bars) and the phantom's true area (line). "
             "Right: predicted mean transvalvular gradient of the placed valve against the patient's cardiac "
             f"output; dashed: {tr.HIGH_GRADIENT_MMHG:g} mmHg.")
    _add_plot(blocks, sizes_figure(t), "Size recommended by each family's sizing chart from the measured annulus "
             "(balloon-expandable by area, self-expanding by perimeter).")
    g = t["gradient_mmhg"]
    rows = [["Mean gradient, median (IQR)",
             f"{_n(g['median'])} ({_n(g['q1'])}\u2013{_n(g['q3'])}) mmHg" if g["n"] else "\u2013",
             f"\u2265 {tr.HIGH_GRADIENT_MMHG:g} mmHg", _share(g.get("share_high"), g["n"])]]
    for valve, d in t.get("gradient_by_valve", {}).items():
        rows.append([f"{valve} mm", f"{_n(d['median'])} ({_n(d['min'])}\u2013{_n(d['max'])}) mmHg",
                     "median (range)", f"n = {d['n']}"])
    ph = t.get("physiology", {})
    if ph.get("cardiac_output_l_min", {}).get("n"):
        co, hr, bsa = ph["cardiac_output_l_min"], ph["heart_rate_bpm"], ph["bsa_m2"]
        rows.append(["Predicted at (median, range)",
                     f"{_n(co['median'])} ({_n(co['min'])}\u2013{_n(co['max'])}) l/min, "
                     f"{_n(hr['median'], '.0f')} ({_n(hr['min'], '.0f')}\u2013{_n(hr['max'], '.0f')}) bpm",
                     "BSA", f"{_n(bsa['median'], '.2f')} ({_n(bsa['min'], '.2f')}\u2013{_n(bsa['max'], '.2f')}) m\u00b2"
                     if bsa["n"] else "not given (no PPM grade)"])
    for key, title in (("ppm", "Prosthesis-patient mismatch"), ("pvl_risk", "Paravalvular-leak indicator")):
        d = t[key]
        txt = ", ".join(f"{k} {c} ({100 * d['shares'][k]:.0f}%)" for k, c in d["counts"].items()) or "\u2013"
        rows.append([title, txt, "cases with a value", f"{d['n']} (missing {d['n_missing']})"])
    blocks.append(rp.Table([], rows, widths=[0.27, 0.33, 0.18, 0.22], key_value=True))
    _add_plot(blocks, bland_altman_figure(df), "Bland\u2013Altman: difference measured \u2212 true against their "
             "mean; solid orange: bias, dashed: 95% limits of agreement (bias \u00b1 1.96 SD).")
    rows = []
    for e in t["measurement_error"].values():
        u = e["unit"]
        rows.append([e["label"], str(e["n"]), _n(e["bias"], "+.2f"), _n(e["sd"], ".2f"), _n(e["mae"], ".2f"),
                     _n(e["max_abs"], ".2f"),
                     f"{_n(e['loa_low'], '+.2f')} to {_n(e['loa_high'], '+.2f')}" if e["sd"] is not None else "\u2013",
                     (u or "\u2013").replace("^2", "\u00b2"), str(e["n_missing_measured"])])
    blocks.append(rp.Text("Measurement error against the phantom's truth", "h2"))
    blocks.append(rp.Table(["quantity", "n", "bias", "SD", "MAE", "max |err|", "95% LoA", "unit", "not found"], rows,
                           widths=[0.24, 0.05, 0.09, 0.08, 0.08, 0.1, 0.2, 0.07, 0.09],
                           caption="Error = measured \u2212 true. 'not found': cases with a true value where "
                                   "the measurement found none (e.g. coronary ostia)."))
    rows = []
    for fam, a in t["sizing_agreement"].items():
        conf = ", ".join(f"{k.replace('->', ARROW)}: {v}" for k, v in a["confusion"].items()) or "\u2013"
        rows.append([fam, str(a["n"]), f"{a['agree']} ({_share(a['share_agree'], a['n'])})", conf,
                     ", ".join(d["case_id"] for d in a["disagreeing"]) or "\u2013"])
    blocks.append(rp.Text("Sizing agreement: chart on the true annulus vs on the measured annulus", "h2"))
    blocks.append(rp.Table(["family", "n", "agree", "true \u2192 measured size (cases)", "disagreeing cases"], rows,
                           widths=[0.18, 0.06, 0.14, 0.36, 0.26],
                           caption="The project's sizing chart (surgtwin/data/tavr/sizing.json) applied to the "
                                   "phantom's true annulus area/perimeter and compared with the size recommended "
                                   "from the measurement; 'none': no size of the family fits."))
    return rp.Section("TAVR in-silico trial", blocks, new_page=True)


def _share(v, n) -> str:
    return "\u2013" if v is None or not n else f"{100 * v:.0f}%"


def _flow(df, f: dict) -> rp.Section | None:
    if not f["n_flow"]:
        return None
    blocks: list = []
    _add_plot(blocks, flow_figure(df, f), "Left: the lowest distal/proximal mean pressure ratio over each case's "
             "stenoses (dashed: 0.9). Right: the most severe stenosis found in the vessel the phantom narrowed, "
             "against its true diameter stenosis.")
    p, e = f["min_pd_pp"], f["stenosis_error"]
    rows = [["Lowest Pd/Pp, median (range)", f"{_n(p['median'], '.3f')} ({_n(p['min'], '.3f')}\u2013"
             f"{_n(p['max'], '.3f')})", "Pd/Pp < 0.9", _share(f["share_pd_pp_below_0_9"], p["n"])],
            ["Largest stenosis drop, median", _n(f["max_stenosis_drop_mmhg"]["median"], ".2f", "mmHg"),
             "Stenoses found per case, median", _n(f["stenoses_found"]["median"], ".0f")],
            ["Stenosis error, bias (SD)", f"{_n(e['bias'], '+.1f')} ({_n(e['sd'], '.1f')}) %",
             "n (not found)", f"{e['n']} ({e.get('n_not_found', 0)})"]]
    blocks.append(rp.Table([], rows, widths=[0.28, 0.27, 0.25, 0.2], key_value=True))
    return rp.Section(f"Blood flow (reduced-order model, {f['n_flow']} cases)", blocks, new_page=True)


def _fem(df, h: dict) -> rp.Section | None:
    ok = df[df["status"] == "ok"]
    if "status:fem" not in ok.columns or not (ok["status:fem"] == "ok").any():
        return None
    blocks: list = []
    _add_plot(blocks, fem_figure(df), "Left: change of the volume-weighted strain-energy density per zone "
             "(Gruen zones for a femoral stem), implanted vs intact: negative = stress shielding. Right: implant "
             "safety factor by stem size.")
    rows = []
    for size, b in h["by_size"].items():
        rows.append([size, str(b["n"]), _n(b["bone_sed_change_percent"]["median"], "+.1f", "%"),
                     _n(b["proximal_sed_change_percent"]["median"], "+.1f", "%"),
                     _n(b["implant_safety_factor"]["min"], ".2f"), _n(b["implant_safety_factor"]["median"], ".2f"),
                     f"{b['checks_passed']['passed']}/{b['checks_passed']['n']}"])
    if rows:
        blocks.append(rp.Table(["stem size", "n", "SED change (all zones), median", "proximal (1+7), median",
                                "safety factor, min", "median", "checks passed"], rows,
                               widths=[0.1, 0.06, 0.22, 0.2, 0.16, 0.1, 0.16]))
    pr = h.get("paired") or {}
    if pr.get("n_patients"):
        rows = [[f"{st['from']}{ARROW}{st['to']}", str(st["n"]), _n(st["median_delta_percent"], "+.1f", " points"),
                 f"{st['n_more_shielding']} of {st['n']}"] for st in pr["steps"] if st["n"]]
        blocks.append(rp.Text("The same patients with each stem size (trial arms)", "h2"))
        blocks.append(rp.Table(["stem size step", "patients", "proximal SED change, median within-patient "
                                "difference", "patients shielded more"], rows, widths=[0.18, 0.12, 0.45, 0.25],
                               caption=f"{pr['n_monotone_more_shielding']} of {pr['n_patients']} patient(s) had "
                                       "more proximal stress shielding at every larger size. Difference = larger "
                                       "minus smaller stem, in percentage points of SED change (negative: the "
                                       "larger stem takes more load from the proximal bone)."))
    return rp.Section("Finite elements: stress shielding", blocks, new_page=True)


def _cases(df) -> rp.Section:
    cols = [("case", "case_id", None), ("status", "status", None), ("time", "seconds", "dur")]
    optional = [("area mm\u00b2", "tavr:area_mm2", ".0f"), ("true", "truth:annulus_area_mm2", ".0f"),
                ("BE size", "tavr:recommended:balloon-expandable", None),
                ("SE size", "tavr:recommended:self-expanding", None),
                ("gradient", "tavr:mean_gradient_mmhg", ".1f"), ("Pd/Pp min", "flow:min_pd_pp", ".3f"),
                ("SED change %", "fem:bone_sed_change_percent", "+.1f"),
                ("safety f.", "fem:implant_safety_factor", ".2f")]
    cols += [c for c in optional if c[1] in df.columns and df[c[1]].notna().any()]
    rows = []
    numbers = {c: tr_col(df, c) for _, c, fmt in cols if fmt}
    for i, (_row_index, r) in enumerate(df.iterrows()):
        row = []
        for _, c, fmt in cols:
            v = r.get(c)
            if fmt == "dur":
                x = numbers[c].iloc[i]
                row.append(_dur(x if math.isfinite(x) else None))
            elif fmt:
                row.append(_n(numbers[c].iloc[i], fmt))
            else:
                row.append("\u2013" if v is None or (isinstance(v, float) and v != v) else str(v))
        rows.append(row)
    first = 0.22 if len(cols) > 5 else 0.4
    widths = [first] + [(1 - first) / (len(cols) - 1)] * (len(cols) - 1)
    return rp.Section("Cases", [rp.Table([h for h, _, _ in cols], rows, widths=widths, verdict_columns=(1,))],
                      new_page=True)


def build_document(out_dir, df=None) -> rp.ReportDoc:
    """The report of the cohort in ``out_dir`` as a ``ReportDoc`` (its plots as lossless figures)."""
    from surgtwin import __version__

    out_dir = Path(out_dir)
    df = results_table(out_dir) if df is None else df
    s = tr.summarise(df)
    name = out_dir.resolve().name
    doc = rp.ReportDoc(
        title="Cohort report",
        subtitle=f"{name}: {s['n_cases']} case(s), {s['n_ok']} ok, {s['n_failed']} failed \u2014 "
                 f"steps {', '.join(s['steps']) or 'none'}",
        case_label=f"cohort {name}", banner=STATEMENT + ". In-silico results; not evidence of clinical performance.",
        generated=time.strftime("%Y-%m-%d %H:%M"), version=__version__, kind="cohort report", footer=FOOTER)
    doc.sections.append(_overview(df, s, out_dir))
    for sec in (_segmentation(df, s), _tavr(df, tr.tavr_trial(df)), _flow(df, tr.flow_trial(df)),
                _fem(df, tr.hip_stem_trial(df))):
        if sec is not None:
            doc.sections.append(sec)
    doc.sections.append(_cases(df))
    doc.sections.append(rp.Section("Limitations", [rp.Text(LIMITATIONS)]))
    return doc


def write_cohort_report(out_dir, path=None, *, progress=None, cancel=None) -> Path:
    """Write the cohort report of output folder ``out_dir`` (default ``out_dir/cohort_report.pdf``);
    returns its path. Raises ``SurgtwinError`` when the folder holds no cohort results."""

    out_dir = Path(out_dir)
    path = Path(path) if path is not None else out_dir / REPORT_NAME
    report(progress, 0.0, "cohort report: reading the results")
    df = results_table(out_dir)
    check(cancel)
    report(progress, 0.2, "cohort report: statistics and figures")
    doc = build_document(out_dir, df)
    check(cancel)
    report(progress, 0.7, "cohort report: writing the PDF")
    atomic_write(path, lambda tmp: rp.build_pdf(doc, tmp))
    report(progress, 1.0, f"cohort report: {path}")
    return path
