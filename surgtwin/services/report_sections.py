"""What the plan report says about each thing a case holds: one function per section, each returning a
``report_pages.Section`` (or None when the case has nothing for it). Numbers come from the case's
items as the planning services stored them (``surgtwin.services.{implants, simulate, flow, tavr,
trajectory, rehearsal, quality, measure}``); nothing is recomputed here except display sums.
"""

from __future__ import annotations

import numpy as np

from surgtwin.services.report_pages import Section, Swatch, Table, Text

#: the statement every report carries (the intended use of surgtwin's plans)
INTENDED_USE = ("NOT FOR CLINICAL USE \u2014 planning aid; model and simulations trained/validated only on the "
                "stated data")


def num(v, fmt: str = ".1f", unit: str = "") -> str:
    """A number for a table ("-" when missing or not finite)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "-"
    return f"{f:{fmt}}{unit}" if np.isfinite(f) else "-"


def lps(p, fmt: str = ".1f") -> str:
    return "-" if p is None else "(" + ", ".join(f"{float(x):{fmt}}" for x in p) + ")"


def records(case, key: str) -> list | None:
    """The records of item ``key`` (None when the case has none)."""
    it = case.item(key)
    return it.value if it is not None and it.value else None


def field_label(key: str) -> str:
    """``"offset_change_mm"`` -> ``"offset change (mm)"``."""
    for suffix, unit in (("_mm", "mm"), ("_deg", "deg"), ("_ml", "ml"), ("_mpa", "MPa"), ("_mmhg", "mmHg")):
        if key.endswith(suffix):
            return f"{key[:-len(suffix)].replace('_', ' ')} ({unit})"
    return key.replace("_", " ")


def brief_params(params: dict, limit: int = 240) -> str:
    """Provenance parameters as ``key=value, ...`` (nested in braces, long lists counted, cut at ``limit``)."""
    def text(v) -> str:
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k}={text(x)}" for k, x in v.items()) + "}"
        if isinstance(v, (list, tuple)):
            return f"[{len(v)} values]" if len(v) > 6 else "[" + ", ".join(text(x) for x in v) + "]"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    out = text(params or {})[1:-1] or "-"
    return out if len(out) <= limit else out[:limit - 1] + "\u2026"


# -- case, structures, measurements -----------------------------------------------------------------
def structures(case, stats: dict, quality_status: dict) -> Section | None:
    lab = case.labels
    if lab is None:
        return None
    rows = []
    for label in lab.labels:
        s = stats.get(label.value, {})
        q = quality_status.get(label.name, {})
        rows.append([Swatch(tuple(int(c) for c in label.color[:3])), label.name, num(s.get("volume_ml"), ".1f"),
                     num(s.get("mean_hu"), ".0f"), num(s.get("std_hu"), ".0f"), q.get("status", "-")])
    prov = case.item("labels").provenance
    how = prov.describe().split(";")[0]
    edited = " The label map was edited by hand since it was made." if case.labels_edited_by_hand() else ""
    cols = [0.05, 0.37, 0.15, 0.14, 0.12, 0.17]
    return Section("Structures", [
        Text(f"{len(rows)} structure{'s' if len(rows) != 1 else ''}, from {how}.{edited} Volumes are voxel counts times the voxel volume "
             f"({lab.voxel_volume_ml * 1000:.2f} mm\u00b3); intensities are the image's (HU for CT)."),
        Table(["", "structure", "volume (ml)", "mean HU", "SD HU", "quality gate"], rows, cols,
              verdict_columns=(5,))], stale=case.stale_reasons("labels"))


def measurements(case) -> Section | None:
    if not case.measurements:
        return None
    rows = [[str(m.id), m.kind, m.text, "  ".join(lps(p) for p in m.points_lps), m.plane or "3D"]
            for m in case.measurements]
    return Section("Measurements", [Table(["#", "kind", "value", "points (LPS mm)", "view"], rows,
                                          [0.06, 0.12, 0.14, 0.54, 0.14])])


def quality(case, rec: dict | None, statuses: dict) -> Section | None:
    if rec is None:
        return None
    from surgtwin.services.quality import counts_summary

    fov = rec.get("fov", {})
    c = counts_summary(rec)
    rows = [[n, s["status"], num(s.get("volume_ml"), ".1f"), num(s.get("confidence"), ".2f"),
             "; ".join(s.get("reasons", [])) or "-"] for n, s in statuses.items() if s["status"] != "ok"]
    blocks = [Text(f"The scan covers {', '.join(fov.get('regions', [])) or 'no recognised region'}. "
                   f"{c['ok']} structures passed the gate, {c['flagged']} flagged, {c['removed']} removed, "
                   f"{c['confirmed']} confirmed by the user.")]
    if rows:
        blocks.append(Table(["structure", "status", "volume (ml)", "confidence", "reasons"], rows,
                            [0.2, 0.1, 0.1, 0.1, 0.5], verdict_columns=(1,)))
    return Section("Segmentation quality gate", blocks, stale=case.stale_reasons("quality"))


# -- implants ---------------------------------------------------------------------------------------
def implants(case) -> Section | None:
    recs = records(case, "implants")
    if recs is None:
        return None
    blocks = []
    for rec in recs:
        imp, pose, chk = rec.get("implant", {}), rec.get("pose", {}), rec.get("checks", {})
        target = ", ".join(f"{k} {v}" for k, v in (rec.get("target") or {}).items()) or "-"
        verdict = "pass" if chk.get("passed") else "FAIL"
        blocks.append(Text(f"Implant {rec.get('id')}: {rec.get('name') or imp.get('family')}  \u2014  checks {verdict}",
                           "h2"))
        notes = rec.get("notes") or {}
        kv = [["family / size", f"{imp.get('family')} {imp.get('size')}", "material", str(imp.get("material", "-"))],
              ["target", target, "pose", f"{rec.get('method', '-')} placement"],
              ["position (LPS mm)", lps(pose.get("translation_mm")),
               "rotation vector (deg)", lps(pose.get("rotation_vector_deg"))]]
        extra = [(field_label(k), num(v, ".1f")) for k, v in notes.items() if isinstance(v, (int, float))]
        for i in range(0, len(extra), 2):
            pair = extra[i:i + 2] + [("", "")] * (2 - len(extra[i:i + 2]))
            kv.append([pair[0][0], pair[0][1], pair[1][0], pair[1][1]])
        blocks.append(Table([], kv, [0.22, 0.28, 0.22, 0.28], key_value=True))
        rows = []
        b = chk.get("breach") or {}
        if b:
            rows.append(["cortical breach", f"max depth {num(b.get('max_depth_mm'), '.1f')} mm, "
                         f"{num(b.get('volume_ml'), '.2f')} ml outside bone",
                         f"\u2264 {num(b.get('limit_depth_mm'), '.1f')} mm", "pass" if b.get("passed") else "FAIL"])
        far = []
        for d in chk.get("distances") or []:
            if d.get("min_distance_mm") is None:
                far.append(d.get("structure"))
                continue
            rows.append([f"distance to {d.get('structure')}", f"{num(d.get('min_distance_mm'), '.1f')} mm",
                         f"\u2265 {num(d.get('margin_mm'), '.1f')} mm", "pass" if d.get("passed") else "FAIL"])
        if far:
            rows.append([f"distance to {', '.join(far)}", "farther than the checked region", "-", "pass"])
        c = chk.get("contact") or {}
        if c:
            fr = c.get("fractions") or {}
            rows.append(["bone contact", ", ".join(f"{k} {100 * float(v):.0f} %" for k, v in fr.items()),
                         "-" if c.get("limit_cortical_fraction") is None else
                         f"cortical \u2264 {100 * float(c['limit_cortical_fraction']):.0f} %",
                         "pass" if c.get("passed") else "FAIL"])
        if rows:
            blocks.append(Table(["check", "result", "limit", "verdict"], rows, [0.3, 0.38, 0.17, 0.15],
                                verdict_columns=(3,)))
        for w in rec.get("warnings") or []:
            blocks.append(Text(f"Warning: {w}", "warning"))
    return Section("Implants", blocks, stale=case.stale_reasons("implants"))


# -- finite elements --------------------------------------------------------------------------------
def fem_keys(case) -> list[str]:
    return sorted(k for k in case.keys() if k.split(":")[0] == "fem")


def bone_sed_change_percent(a: dict) -> float:
    """Volume-weighted change of the bone zones' strain energy density, implanted vs intact (%)."""
    vol = np.asarray(a["zone_volume_ml"], float)
    before = float(np.sum(np.asarray(a["zone_sed_intact_kj_m3"], float) * vol))
    after = float(np.sum(np.asarray(a["zone_sed_implanted_kj_m3"], float) * vol))
    return 100.0 * (after / before - 1.0) if before > 0 else float("nan")


def fem(case, figures: dict) -> Section | None:
    keys = fem_keys(case)
    if not keys:
        return None
    blocks, stale = [], []
    for key in keys:
        it = case.item(key)
        a, p = it.value, it.provenance.parameters
        imp = p.get("implant") or {}
        blocks.append(Text(f"{key}: {imp.get('name') or imp.get('family')} (size {imp.get('size')}) in "
                           f"{p.get('structure')}{' ' + p['level'] if p.get('level') else ''}", "h2"))
        mat = p.get("bone_material", {}).get("relation", {})
        mesh = p.get("mesh", {})
        kv = [["study", str(p.get("study", "-")), "zone scheme", str(p.get("zone_scheme", "-"))],
              ["mesh", f"{mesh.get('elements', '-')} tetrahedra, {num(mesh.get('size_mm'), '.1f')} mm",
               "implant material", str((imp.get("material") or {}).get("name", "-"))],
              ["implant peak von Mises", f"{num(a.get('implant_peak_von_mises_mpa'), '.1f')} MPa "
               f"(99th pct {num(a.get('implant_p99_von_mises_mpa'), '.1f')})",
               "implant yield / safety factor", f"{num(a.get('implant_yield_mpa'), '.0f')} MPa / "
                                                f"{num(a.get('safety_factor'), '.1f')}"],
              ["bone SED change", f"{num(bone_sed_change_percent(a), '+.1f')} % (all zones)", "bone modulus",
               f"{mat.get('E_mpa', '-')} ({mat.get('site', '-')})"]]
        blocks.append(Table([], kv, [0.2, 0.3, 0.22, 0.28], key_value=True))
        loads = p.get("loads") or {}
        if loads.get("implanted_text"):
            blocks.append(Text(f"Load (implanted): {loads['implanted_text']}.", "small"))
        names = p.get("zone_names") or {}
        rows = []
        for z, v, si, sa, ch in zip(a["zone_ids"], a["zone_volume_ml"], a["zone_sed_intact_kj_m3"],
                                    a["zone_sed_implanted_kj_m3"], a["zone_change_percent"], strict=True):
            rows.append([names.get(str(int(z)), str(int(z))), num(v, ".1f"), num(si, ".2f"), num(sa, ".2f"),
                         num(ch, "+.1f")])
        blocks.append(Table(["zone", "volume (ml)", "SED intact (kJ/m\u00b3)", "SED implanted (kJ/m\u00b3)",
                             "change (%)"], rows, [0.34, 0.14, 0.18, 0.18, 0.16],
                            caption="Strain energy density (SED) per zone; a fall means stress shielding "
                                    "(bone loss risk). Linear-elastic model, "
                                    f"{mat.get('citation', 'density-modulus relation as stated')}."))
        for w in p.get("warnings") or []:
            blocks.append(Text(f"Warning: {w}", "warning"))
        blocks += figures.get(key, [])
        stale += [f"{key}: {r}" for r in case.stale_reasons(key)]
    return Section("Finite-element study", blocks, stale=stale)


# -- flow -------------------------------------------------------------------------------------------
def flow(case, figures: dict) -> Section | None:
    from surgtwin.services.flow_view import flow_keys, flow_result

    keys = flow_keys(case)
    if not keys:
        return None
    blocks, stale = [], []
    for key in keys:
        for k in (key, f"{key}:stent"):
            view = flow_result(case, k)
            if view is None:
                continue
            a, p = view.arrays, case.item(k).provenance.parameters
            stent = p.get("stent")
            title = f"{k}: inflow {num(p.get('inflow_ml_s'), '.0f')} ml/s, " + (
                "pulsatile" if p.get("pulsatile") else "steady") + (
                f"; virtual stent {', '.join(f'{s} {d:g} mm' for s, d in stent.items())}" if stent else "")
            blocks.append(Text(title, "h2"))
            rows = [[r["segment"], r["vessel"], num(r["length_mm"], ".0f"), num(r["min_radius_mm"], ".1f"),
                     f"{r['stenosis']} {r['stenosis_percent']:.0f} %" if r["stenosis"] else "-",
                     num(r["mean_flow_ml_s"], ".1f"), num(r["pressure_drop_mmhg"], ".2f"),
                     num(r["pressure_ratio"], ".3f")] for r in view.rows()]
            blocks.append(Table(["segment", "vessel", "length (mm)", "min r (mm)", "stenosis", "flow (ml/s)",
                                 "\u0394P (mmHg)", "Pd/Pp"], rows, [0.09, 0.27, 0.1, 0.1, 0.12, 0.11, 0.11, 0.1]))
            ratio = np.asarray(a.get("stenosis_pressure_ratio", []), float)
            if ratio.size and np.isfinite(ratio).any():
                blocks.append(Text(f"Lowest pressure ratio across a stenosis (Pd/Pp): {np.nanmin(ratio):.3f}.",
                                   "small"))
            stale += [f"{k}: {r}" for r in case.stale_reasons(k)]
        blocks += figures.get(key, [])
    if not blocks:  # results without their centerlines: nothing to show
        return None
    blocks.append(Text("Reduced-order (0D) model: Poiseuille segments with stenosis losses and three-element "
                       "Windkessel outlets; a planning estimate, not a measured pressure.", "note"))
    return Section("Blood flow", blocks, stale=stale)


# -- TAVR -------------------------------------------------------------------------------------------
def tavr(case, figures: dict) -> Section | None:
    rec = records(case, "tavr")
    if rec is None:
        return None
    m = rec["measurement"]
    kv = [["perimeter", num(m.get("perimeter_mm"), ".1f", " mm"), "area", num(m.get("area_mm2"), ".1f", " mm\u00b2")],
          ["min / max diameter", f"{num(m.get('diameter_min_mm'))} / {num(m.get('diameter_max_mm'))} mm",
           "eccentricity", num(m.get("eccentricity"), ".2f")],
          ["area-derived diameter", num(m.get("area_derived_diameter_mm"), ".1f", " mm"),
           "perimeter-derived diameter", num(m.get("perimeter_derived_diameter_mm"), ".1f", " mm")],
          ["coronary height L / R", f"{num(m.get('coronary_height_left_mm'))} / "
                                    f"{num(m.get('coronary_height_right_mm'))} mm",
           "sinus / STJ diameter", f"{num(m.get('sinus_diameter_mm'))} / {num(m.get('stj_diameter_mm'))} mm"],
          ["calcium volume", num((m.get("calcium") or {}).get("total_mm3"), ".0f", " mm\u00b3"),
           "method", str(m.get("method", "-"))]]
    blocks = [Text("Aortic annulus", "h2"), Table([], kv, [0.22, 0.28, 0.24, 0.26], key_value=True)]
    rows = []
    for fam, s in (rec.get("sizing") or {}).items():
        for r in s.get("rows", []):
            fits = "yes" if r.get("in_range") else "no"
            rec_mark = "recommended" if r.get("size") == s.get("recommended") else ""
            rows.append([fam, str(r.get("size")), f"{num(r.get('min'), '.1f')} \u2013 {num(r.get('max'), '.1f')}",
                         s.get("sized_by", "-"), fits, num(r.get("oversizing_percent"), "+.1f"), rec_mark])
    blocks += [Text("Device sizing", "h2"),
               Table(["family", "size (mm)", "chart range", "sized by", "fits", "oversizing (%)", ""], rows,
                     [0.22, 0.1, 0.17, 0.12, 0.08, 0.14, 0.17], verdict_columns=(4,),
                     caption="; ".join(f"{f}: {s.get('source', '')}" for f, s in (rec.get("sizing") or {}).items()))]
    v, h, ppm, pvl = rec.get("valve"), rec.get("hemodynamics"), rec.get("ppm"), rec.get("pvl_risk")
    if v:
        kv = [["valve", f"{v.get('family')} {v.get('size')} mm", "implant depth", num(v.get("depth_mm"), ".1f", " mm")],
              ["oversizing", num(v.get("oversizing_percent"), "+.1f", " %"), "effective orifice area",
               num(v.get("eoa_cm2"), ".2f", " cm\u00b2")],
              ["mean gradient", num((h or {}).get("mean_gradient_mmhg"), ".1f", " mmHg"), "prosthesis-patient mismatch",
               "-" if not ppm else f"{ppm.get('ppm')} (iEOA {num(ppm.get('indexed_eoa_cm2_m2'), '.2f')} cm\u00b2/m\u00b2)"],
              ["predicted at", f"{num((h or {}).get('cardiac_output_l_min'), '.1f', ' l/min')}, "
               f"{num((h or {}).get('heart_rate_bpm'), '.0f', ' bpm')}", "body surface area", _bsa_text(rec)],
              ["paravalvular leak risk", "-" if not pvl else str(pvl.get("level")), "reasons",
               "-" if not pvl else "; ".join(pvl.get("reasons", [])) or "-"]]
        blocks += [Text("Virtual valve", "h2"), Table([], kv, [0.22, 0.28, 0.24, 0.26], key_value=True)]
        if pvl and pvl.get("note"):
            blocks.append(Text(f"PVL indicator: {pvl.get('rule', '')}. {pvl['note']}.", "note"))
    for w in rec.get("warnings") or []:
        blocks.append(Text(f"Warning: {w}", "warning"))
    blocks += figures.get("tavr", [])
    return Section("TAVR planning", blocks, stale=case.stale_reasons("tavr"))


def _bsa_text(rec: dict) -> str:
    p = rec.get("parameters") or {}
    if p.get("bsa_m2") is None:
        return "not given (no PPM grade)"
    src = p.get("bsa_source") or "given"
    return num(p["bsa_m2"], ".2f", " m\u00b2") + ("" if src == "given" else " (DICOM header)")


# -- trajectories and rehearsals --------------------------------------------------------------------
def trajectories(case, figures: dict) -> Section | None:
    recs = records(case, "trajectories")
    if recs is None:
        return None
    blocks = []
    for t in recs:
        met = t.get("metrics") or {}
        inst = t.get("instrument")
        inst_text = inst.get("label") or inst.get("name") if isinstance(inst, dict) else str(inst or "-")
        verdict = t.get("verdict") or ("pass" if t.get("passed") else "-")
        blocks.append(Text(f"Trajectory {t.get('id')}: {t.get('name')}  \u2014  {verdict.upper()}", "h2"))
        kv = [["entry (LPS mm)", lps(t.get("entry_lps")), "target (LPS mm)",
               lps(t.get("target_lps")) + (f" in {t['target_structure']}" if t.get("target_structure") else "")],
              ["instrument", f"{inst_text}" + (f", {num(inst.get('diameter_mm'), '.1f')} mm" if isinstance(inst, dict)
                                               else ""),
               "path length", num(met.get("length_mm"), ".1f", " mm")],
              ["entry angle", num(met.get("entry_angle_deg"), ".0f", "\u00b0 from perpendicular"), "planned by",
               str(t.get("method", "-"))]]
        blocks.append(Table([], kv, [0.18, 0.32, 0.18, 0.32], key_value=True))
        rows = [[c.get("structure"), num(c.get("min_distance_mm"), ".1f"), num(c.get("margin_mm"), ".1f"),
                 "yes" if c.get("entered") else "no", "pass" if c.get("passed") else "FAIL"]
                for c in met.get("clearances") or []]
        if rows:
            blocks.append(Table(["critical structure", "clearance (mm)", "margin (mm)", "entered", "verdict"], rows,
                                [0.34, 0.17, 0.17, 0.14, 0.18], verdict_columns=(4,),
                                caption="Clearance from the instrument's surface to the structure along the whole path."))
        crossed = [c.get("structure") for c in met.get("crossed") or []]
        if crossed:
            blocks.append(Text("Crosses, from entry to target: " + " \u2192 ".join(crossed) + ".", "small"))
        for r in met.get("reasons") or []:
            blocks.append(Text(f"Reason: {r}", "warning"))
        blocks += figures.get(f"trajectory:{t.get('id')}", [])
    return Section("Trajectories", blocks, stale=case.stale_reasons("trajectories"))


def rehearsals(case) -> Section | None:
    recs = records(case, "rehearsals")
    if recs is None:
        return None
    rows = []
    note = ""
    for r in recs:
        s = r.get("score") or {}
        c = s.get("components") or {}
        fin = r.get("final") or {}
        rows.append([r.get("id"), r.get("trajectory_name") or r.get("trajectory_id"), r.get("trainee") or "-",
                     (r.get("started") or "")[:16].replace("T", " "), num(r.get("duration_s"), ".0f", " s"),
                     num(fin.get("tip_to_target_mm"), ".1f", " mm"),
                     str(len((r.get("recording") or {}).get("events") or [])), num(s.get("total"), ".0f"),
                     " / ".join(num(c.get(k), ".0f") for k in ("accuracy", "safety", "time", "smoothness"))])
        note = s.get("note") or note
    return Section("Rehearsals", [
        Table(["#", "trajectory", "trainee", "started (UTC)", "duration", "tip to target", "events", "score",
               "accuracy / safety / time / smoothness"], rows, [0.05, 0.2, 0.1, 0.13, 0.08, 0.1, 0.07, 0.07, 0.2],
              caption=note)], stale=case.stale_reasons("rehearsals"))
