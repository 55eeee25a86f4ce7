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

Plots (``services.cohort_figures``) are drawn with matplotlib's Agg canvas (no display, no global
backend change) and embedded as PNG at 150 dpi. The layout reuses the plan report's blocks
(``services.report_pages``); every page carries "NOT FOR CLINICAL USE -- planning aid; virtual cohort
results describe synthetic phantoms only" and "Page X of Y".
"""

from __future__ import annotations

import io
import math
import time
from pathlib import Path

import numpy as np

from surgtwin.core.io import atomic_write
from surgtwin.core.progress import check, report
from surgtwin.services import cohort_figures as cf
from surgtwin.services import report_pages as rp
from surgtwin.services import trial as tr
from surgtwin.services.cohort_table import results_table

REPORT_NAME = "cohort_report.pdf"
STATEMENT = "NOT FOR CLINICAL USE \u2014 planning aid; virtual cohort results describe synthetic phantoms only"
#: the footer of every page (the header says NOT FOR CLINICAL USE)
FOOTER = "Planning aid; virtual cohort results describe synthetic phantoms only."
ARROW = " \u2192 "
LOWEST_DICE_ROWS = 6
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
    _add_plot(blocks, cf.volumes_figure(df), "Box: quartiles and median of the segmented volume over the ok cases; "
             "whiskers 1.5 IQR. Orange ticks: the phantom's true volume of each case (virtual patients only).")
    _add_plot(blocks, cf.dice_figure(df), "Dice = 2|A\u2229B| / (|A| + |B|) of each structure's segmentation "
             "against the phantom's true label on the same grid.")
    if s["dice"]:
        rows = []
        ranked = sorted(s["dice"].items(), key=lambda kv: (kv[1]["median"] is None, kv[1]["median"] or 0))
        for name, d in ranked[:LOWEST_DICE_ROWS]:
            worst = ""
            col = cf.tr_col(df[df["status"] == "ok"], f"dice:{name}")
            if col.notna().any():
                worst = str(df.loc[col.idxmin(), "case_id"])
            rows.append([cf.pretty(name), str(d["n"]), _n(d["mean"], ".3f"), _n(d["median"], ".3f"),
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
    _add_plot(blocks, cf.annulus_figure(df), "Left: measured annulus area (bars) and the phantom's true area (line). "
             "Right: predicted mean transvalvular gradient of the placed valve against the patient's cardiac "
             f"output; dashed: {tr.HIGH_GRADIENT_MMHG:g} mmHg.")
    _add_plot(blocks, cf.sizes_figure(t), "Size recommended by each family's sizing chart from the measured annulus "
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
    _add_plot(blocks, cf.bland_altman_figure(df), "Bland\u2013Altman: difference measured \u2212 true against their "
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
    _add_plot(blocks, cf.flow_figure(df, f), "Left: the lowest distal/proximal mean pressure ratio over each case's "
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
    _add_plot(blocks, cf.fem_figure(df), "Left: change of the volume-weighted strain-energy density per zone "
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
    numbers = {c: cf.tr_col(df, c) for _, c, fmt in cols if fmt}
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
