"""The cohort report's plots (``services.cohort_report``): one PNG per figure from a cohort's results
table (``services.cohort_table``) or its trial statistics (``services.trial``), drawn with matplotlib's
Agg canvas (no display, no global backend change) at ``DPI``; None when the table has nothing to plot.

``volumes_figure``, ``dice_figure``, ``annulus_figure`` (annulus area, predicted gradient against cardiac
output per placed valve), ``sizes_figure``, ``bland_altman_figure``, ``flow_figure``, ``fem_figure``.
"""

from __future__ import annotations

import io
import math

import numpy as np

from surgtwin.services import trial as tr

DPI = 150
FIG_WIDTH_IN = 7.0
NAVY, ORANGE, GREY, RED = "#1c3557", "#d9822b", "#8a97a6", "#b3261e"


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


def pretty(name: str) -> str:
    return name.replace("_", " ")


def _per_structure(ok, prefix: str) -> list[tuple[str, np.ndarray]]:
    """``[(structure, finite values)]`` of the ``prefix<structure>`` columns that have any."""
    data = [(c.split(":", 1)[1], _finite(tr_col(ok, c))) for c in ok.columns if c.startswith(prefix)]
    return [(n, v) for n, v in data if v.size]


def volumes_figure(df) -> bytes | None:
    """Box plots of the segmented volumes per structure (log scale), true volumes as orange marks."""
    ok = df[df["status"] == "ok"]
    data = _per_structure(ok, "volume_ml:")
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
    ax.set_yticks(pos, [pretty(n) for n, _ in data], fontsize=7)
    ax.set_xscale("log")
    _label(ax, f"Segmented structure volumes ({len(ok)} ok cases)", "volume (ml, log scale)")
    if shown_truth:
        ax.legend(fontsize=7, loc="lower right", frameon=False)
    return _png(fig)


def dice_figure(df) -> bytes | None:
    ok = df[df["status"] == "ok"]
    data = _per_structure(ok, "dice:")
    if not data:
        return None
    data.sort(key=lambda x: np.median(x[1]))
    fig, (ax,) = _figure(0.8 + 0.15 * len(data))
    rng = np.random.default_rng(0)
    for p, (_, v) in enumerate(data):
        ax.plot([v.min(), v.max()], [p, p], color=GREY, linewidth=0.8)
        ax.scatter(v, p + rng.uniform(-0.15, 0.15, v.size), s=9, color=NAVY, alpha=0.75, linewidths=0)
        ax.plot(np.median(v), p, "|", color=ORANGE, markersize=9, mew=1.6)
    ax.set_yticks(range(len(data)), [pretty(n) for n, _ in data], fontsize=7)
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
