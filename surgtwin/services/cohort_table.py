"""A cohort's results table: one row per case, built from the per-case records of ``services.cohort``.

``results_table(source)`` reads an output folder (``results/<id>.json`` in the order of
``cohort.json``'s cases, then any other records by name) or takes a list of records (dicts) and returns a
``pandas.DataFrame``; ``write_table(df, out_dir)`` writes ``cohort_results.csv`` and
``cohort_results.parquet`` atomically. The in-silico trial (``services.trial``) and the cohort report
(``services.cohort_report``) read only this table.

Columns (stable names; a column is present only when some case has a value for it, except the base
columns, which are always present; units are in the names):

=========================================  ===================================================================
column                                     meaning
=========================================  ===================================================================
``case_id``                                the case's id in the cohort
``status``                                 ``ok`` | ``failed`` | ``partial`` | ``running`` | ``missing`` (no record)
``failed_step``                            the step that failed (``open`` when the study could not be read)
``error``                                  the failure's message (empty when none)
``source_kind``                            ``virtual`` | ``dicom`` | ``image`` | ``sample`` | ``case``
``source_path``                            the study's path (empty for a virtual patient)
``phantom``, ``seed``                      a virtual patient's phantom kind and seed
``pixel_mm``, ``slice_mm``                 a virtual patient's requested spacing (empty: drawn from the seed)
``arm``                                    the case's trial arm, e.g. ``implant.size=4`` (after the base
                                           columns, when some case is in an arm)
``steps``                                  the requested steps, comma-separated
``seconds``                                wall time of the case (open + steps), s
``open_seconds``                           time to open/generate the study, s
``peak_rss_mb``                            peak resident memory of the process that ran the case, MB
``seconds:<step>``                         wall time of each step, s
``status:<step>``                          ``ok`` | ``failed`` per step
``volume_ml:<structure>``                  segmented structure volume (segment step), ml
``confidence:<structure>``                 the segmentation's mean confidence per structure (0-1)
``dice:<structure>``                       Dice of the segmentation against the phantom's true labels
``tavr:method``                            how the annulus was found (``labels``, ``hinge-ct``, ...)
``tavr:perimeter_mm``, ``tavr:area_mm2``   measured annulus perimeter and area
``tavr:diameter_min_mm``, ``..._max_mm``   measured annulus minimum and maximum diameter
``tavr:eccentricity``                      1 - Dmin/Dmax
``tavr:coronary_height_left_mm``, right    measured coronary ostium heights above the annulus
``tavr:recommended:<family>``              the chart's size for each valve family (text; empty: none fits)
``tavr:valve_family``, ``tavr:valve_size``  the placed virtual valve
``tavr:valve_depth_mm``                    its implantation depth
``tavr:eoa_cm2``                           the valve's effective orifice area *
``tavr:oversizing_percent``                oversizing of the placed valve *
``tavr:mean_gradient_mmhg``                predicted mean transvalvular gradient *
``tavr:cardiac_output_l_min``              the cardiac output the gradient was predicted at, l/min *
``tavr:heart_rate_bpm``                    the heart rate it was predicted at, bpm *
``tavr:bsa_m2``                            the body surface area the PPM grade used (empty: none given) *
``tavr:indexed_eoa_cm2_m2``, ``tavr:ppm``  indexed EOA and prosthesis-patient mismatch grade (needs a BSA) *
``tavr:pvl_risk``                          paravalvular-leak indicator ``low`` | ``moderate`` | ``high`` *
``tavr:warnings``                          number of TAVR warnings
``flow:inflow_ml_s``                       inflow of the reduced-order model, ml/s
``flow:stenoses``                          number of stenoses found on the centerlines
``flow:min_pd_pp``                         lowest distal/proximal pressure ratio over the stenoses
``flow:max_stenosis_drop_mmhg``            largest pressure drop across a stenosis, mmHg
``flow:worst_stenosis_percent``            diameter stenosis (%) of the stenosis with the lowest Pd/Pp
``flow:s<k>:pd_pp``                        Pd/Pp of stenosis ``s<k>``
``flow:s<k>:pressure_drop_mmhg``           its pressure drop, mmHg
``flow:s<k>:diameter_percent``             its measured diameter stenosis, %
``flow:stenosis_percent:<vessel>``        the most severe diameter stenosis found in a vessel (e.g. ``aorta``), %
``flow:pd_pp:<vessel>``                    the lowest stenosis Pd/Pp in that vessel
``flow:min_segment_pd_pp``                 lowest Pd/Pp over all segments
``flow:max_segment_drop_mmhg``             largest segment pressure drop, mmHg
``fem:implant_family``, ``fem:implant_size``  the simulated implant
``fem:study``, ``fem:zone_scheme``         the FE study (e.g. ``hip-stem``) and its zones (e.g. ``gruen``)
``fem:bone_sed_change_percent``            change of the bone's strain-energy density, all zones, %
``fem:proximal_sed_change_percent``        the same over the proximal zones (Gruen 1 and 7), %
``fem:zone<k>:sed_change_percent``         per zone ``k``, %
``fem:implant_peak_von_mises_mpa``         peak implant stress (away from loads/supports), MPa
``fem:implant_p99_von_mises_mpa``          its 99th percentile, MPa
``fem:implant_yield_mpa``                  the implant material's yield stress, MPa
``fem:implant_safety_factor``              yield / peak stress
``fem:elements``                           tetrahedra of the FE mesh
``implant:family``, ``implant:size``       the placed implant (implant step)
``implant:passed``                         whether its placement checks passed (bool)
``implant:method``                         ``auto`` | ``manual`` pose
``implant:breach_volume_ml``               implant volume outside the bone, ml
``implant:cortical_contact_fraction``      share of the implant surface points on cortical bone
``implant:offset_change_mm``               femoral offset change of an automatic stem pose, mm
``truth:<name>``                           a virtual patient's known quantity (the phantom's ground truth),
                                           e.g. ``truth:annulus_perimeter_mm``, ``truth:stenosis_percent``
``truth:volume_ml:<structure>``            the true structure volume, ml
=========================================  ===================================================================

\\* The TAVR step's summary holds the measurement, the sizing and the valve; the haemodynamics, PPM and
PVL fields come from the case's ``tavr`` item (``cases/<id>.stwin``) when the source is an output folder
and the summary lacks them. Ground truth that is a point or a direction (lists) is left out.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.io import atomic_write

TABLE_STEM = "cohort_results"
#: the columns every table has, in this order
BASE_COLUMNS = ("case_id", "status", "failed_step", "error", "source_kind", "source_path", "phantom", "seed",
                "pixel_mm", "slice_mm", "steps", "seconds", "open_seconds", "peak_rss_mb")
#: column group order after the base columns (by prefix)
GROUP_ORDER = ("seconds:", "status:", "volume_ml:", "confidence:", "dice:", "tavr:", "flow:", "fem:", "implant:",
               "truth:")
TAVR_MEASURES = ("perimeter_mm", "area_mm2", "diameter_min_mm", "diameter_max_mm", "eccentricity",
                 "coronary_height_left_mm", "coronary_height_right_mm")
#: FE zones counted as proximal per zone scheme (Gruen 1 and 7 for a femoral stem)
PROXIMAL_ZONES = {"gruen": (1, 7)}


# -- reading the records ---------------------------------------------------------------------------
def read_records(out_dir) -> list[dict]:
    """The records of an output folder: ``cohort.json``'s cases in order (a case without a readable
    record gets ``{"status": "missing"}``), then other ``results/*.json`` by name."""
    from surgtwin.services import cohort

    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise SurgtwinError("is not a cohort output folder", path=out_dir, hint="give the folder of 'cohort run --out'")
    ids: list[str] = []
    manifest = out_dir / cohort.MANIFEST
    entries = {}
    if manifest.is_file():
        for e in cohort.read_manifest(manifest):
            ids.append(e.case_id)
            entries[e.case_id] = e
    results = out_dir / cohort.RESULTS_DIR
    if results.is_dir():
        seen = set(ids)
        ids += sorted(p.stem for p in results.glob("*.json") if not p.name.startswith(".") and p.stem not in seen)
    if not ids:
        raise SurgtwinError("holds no cohort results (no cohort.json and no results/*.json)", path=out_dir,
                            hint="run a cohort into it first: surgtwin cohort run ... --out DIR")
    out = []
    for cid in ids:
        rec = _read_json(cohort.record_path(out_dir, cid))
        if rec is None:
            src = entries[cid].source if cid in entries else {}
            rec = {"case_id": cid, "source": src, "status": "missing", "error": "no readable record", "steps": {},
                   "arm": entries[cid].arm_label if cid in entries else ""}
        out.append(rec)
    return out


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def case_item(out_dir, record: dict, key: str) -> dict | None:
    """The JSON value of item ``key`` of a record's saved case (``cases/<id>.stwin``), or None when the
    case, its manifest or the item is missing or unreadable."""
    from surgtwin.core.case import read_manifest

    rel = record.get("case_path")
    if not rel or out_dir is None:
        return None
    folder = Path(out_dir) / rel
    try:
        doc = read_manifest(folder)
    except SurgtwinError:
        return None
    entry = (doc.get("items") or {}).get(key)
    name = ((entry or {}).get("file") or {}).get("name")
    if not name or Path(name).is_absolute() or ".." in Path(name).parts:
        return None
    return _read_json(folder / name)


# -- one row ---------------------------------------------------------------------------------------
def _num(v):
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return None


def _step_summary(rec: dict, step: str) -> dict | None:
    st = (rec.get("steps") or {}).get(step) or {}
    if st.get("status") != "ok" or not isinstance(st.get("summary"), dict):
        return None
    return st["summary"]


def _tavr_columns(summary: dict, full: dict | None) -> dict:
    row = {}
    m = summary.get("measurement") or {}
    row["tavr:method"] = m.get("method")
    for k in TAVR_MEASURES:
        row[f"tavr:{k}"] = _num(m.get(k))
    for fam, size in (summary.get("recommended") or {}).items():
        row[f"tavr:recommended:{fam}"] = None if size is None else str(size)
    valve = summary.get("valve") or {}
    row["tavr:valve_family"] = valve.get("family")
    row["tavr:valve_size"] = None if valve.get("size") is None else str(valve["size"])
    row["tavr:valve_depth_mm"] = _num(valve.get("depth_mm"))
    src = summary if "hemodynamics" in summary else (full or {})
    fvalve = (full or {}).get("valve") or summary.get("valve") or {}
    hemo = src.get("hemodynamics") or {}
    ppm = src.get("ppm") or {}
    pvl = src.get("pvl_risk") or {}
    row["tavr:eoa_cm2"] = _num(hemo.get("eoa_cm2", fvalve.get("eoa_cm2")))
    row["tavr:oversizing_percent"] = _num(fvalve.get("oversizing_percent"))
    row["tavr:mean_gradient_mmhg"] = _num(hemo.get("mean_gradient_mmhg"))
    row["tavr:cardiac_output_l_min"] = _num(hemo.get("cardiac_output_l_min"))
    row["tavr:heart_rate_bpm"] = _num(hemo.get("heart_rate_bpm"))
    row["tavr:bsa_m2"] = _num(ppm.get("bsa_m2"))
    row["tavr:indexed_eoa_cm2_m2"] = _num(ppm.get("indexed_eoa_cm2_m2"))
    row["tavr:ppm"] = ppm.get("ppm")
    row["tavr:pvl_risk"] = pvl.get("level")
    row["tavr:warnings"] = float(len(summary.get("warnings") or []))
    return row


def _flow_columns(summary: dict) -> dict:
    row = {"flow:inflow_ml_s": _num(summary.get("inflow_ml_s"))}
    sten = [s for s in (summary.get("stenoses") or []) if isinstance(s, dict)]
    row["flow:stenoses"] = float(len(sten))
    worst = None
    for k, s in enumerate(sten):
        sid = s.get("id") or f"s{k}"
        pr, dp = _num(s.get("pressure_ratio")), _num(s.get("pressure_drop_mmhg"))
        row[f"flow:{sid}:pd_pp"] = pr
        row[f"flow:{sid}:pressure_drop_mmhg"] = dp
        row[f"flow:{sid}:diameter_percent"] = _num(s.get("diameter_percent"))
        if pr is not None and (worst is None or pr < worst[0]):
            worst = (pr, s)
    prs = [v for k, v in row.items() if k.endswith(":pd_pp") and v is not None]
    dps = [v for k, v in row.items() if k.endswith(":pressure_drop_mmhg") and v is not None]
    row["flow:min_pd_pp"] = min(prs) if prs else None
    row["flow:max_stenosis_drop_mmhg"] = max(dps) if dps else None
    row["flow:worst_stenosis_percent"] = _num(worst[1].get("diameter_percent")) if worst else None
    rows = [r for r in (summary.get("rows") or []) if isinstance(r, dict)]
    vessel = {r.get("segment"): r.get("vessel") for r in rows}
    for s in sten:  # per vessel: its most severe stenosis (by diameter) and lowest Pd/Pp
        v = vessel.get(s.get("segment"))
        pct, pr = _num(s.get("diameter_percent")), _num(s.get("pressure_ratio"))
        if not v:
            continue
        if pct is not None and (row.get(f"flow:stenosis_percent:{v}") is None
                                or pct > row[f"flow:stenosis_percent:{v}"]):
            row[f"flow:stenosis_percent:{v}"] = pct
        if pr is not None and (row.get(f"flow:pd_pp:{v}") is None or pr < row[f"flow:pd_pp:{v}"]):
            row[f"flow:pd_pp:{v}"] = pr
    seg_pr = [_num(r.get("pressure_ratio")) for r in rows]
    seg_dp = [_num(r.get("pressure_drop_mmhg")) for r in rows]
    seg_pr, seg_dp = [v for v in seg_pr if v is not None], [v for v in seg_dp if v is not None]
    row["flow:min_segment_pd_pp"] = min(seg_pr) if seg_pr else None
    row["flow:max_segment_drop_mmhg"] = max(seg_dp) if seg_dp else None
    return row


def _zone_change(zones: list, keep) -> float | None:
    """Volume-weighted SED change (%) over the zone rows whose zone is in ``keep``."""
    rows = [z for z in zones if z.get("zone") in keep]
    a = sum((z.get("sed_intact_kj_m3") or 0.0) * (z.get("volume_ml") or 0.0) for z in rows)
    b = sum((z.get("sed_implanted_kj_m3") or 0.0) * (z.get("volume_ml") or 0.0) for z in rows)
    return 100.0 * (b - a) / a if rows and a > 0 else None


def _fem_columns(summary: dict) -> dict:
    keys = sorted(k for k, v in summary.items() if k.startswith("fem:") and isinstance(v, dict))
    if not keys:  # a what-if summary ("a"/"b") or an unexpected shape: its "a" side, else nothing
        s = summary.get("a") if isinstance(summary.get("a"), dict) else None
    else:
        s = summary[keys[0]]
    if not s:
        return {}
    imp = s.get("implant") or {}
    zones = [z for z in (s.get("zones") or []) if isinstance(z, dict)]
    row = {"fem:implant_family": imp.get("family"),
           "fem:implant_size": None if imp.get("size") is None else str(imp["size"]),
           "fem:study": s.get("study"), "fem:zone_scheme": s.get("zone_scheme"),
           "fem:bone_sed_change_percent": _num(s.get("bone_sed_change_percent")),
           "fem:proximal_sed_change_percent": _zone_change(zones, PROXIMAL_ZONES.get(s.get("zone_scheme"), ())),
           "fem:implant_peak_von_mises_mpa": _num(imp.get("peak_von_mises_mpa")),
           "fem:implant_p99_von_mises_mpa": _num(imp.get("p99_von_mises_mpa")),
           "fem:implant_yield_mpa": _num(imp.get("yield_mpa")),
           "fem:implant_safety_factor": _num(imp.get("safety_factor")),
           "fem:elements": _num((s.get("mesh") or {}).get("elements"))}
    for z in zones:
        if z.get("zone") is not None:
            row[f"fem:zone{int(z['zone'])}:sed_change_percent"] = _num(z.get("change_percent"))
    return row


def _implant_columns(summary: dict) -> dict:
    p = summary.get("placement") or {}
    imp = p.get("implant") or {}
    checks = p.get("checks") or {}
    contact = (checks.get("contact") or {}).get("fractions") or {}
    return {"implant:family": imp.get("family"),
            "implant:size": None if imp.get("size") is None else str(imp["size"]),
            "implant:passed": bool(summary["passed"]) if summary.get("passed") is not None else None,
            "implant:method": p.get("method"),
            "implant:breach_volume_ml": _num((checks.get("breach") or {}).get("volume_ml")),
            "implant:cortical_contact_fraction": _num(contact.get("cortical")),
            "implant:offset_change_mm": _num((p.get("notes") or {}).get("offset_change_mm"))}


def _truth_columns(truth: dict | None) -> dict:
    row = {}
    for k, v in (truth or {}).items():
        if k in ("phantom", "seed"):
            continue
        if isinstance(v, dict):
            for sub, x in v.items():
                if isinstance(x, (int, float, str)) and not isinstance(x, bool):
                    row[f"truth:{k}:{sub}"] = float(x) if isinstance(x, (int, float)) else x
        elif isinstance(v, bool):
            row[f"truth:{k}"] = v
        elif isinstance(v, (int, float)):
            row[f"truth:{k}"] = float(v)
        elif isinstance(v, str):
            row[f"truth:{k}"] = v
    return row


def record_row(rec: dict, out_dir=None) -> dict:
    """One table row (a dict of the documented columns) for one record; ``out_dir``: the output folder
    the record belongs to (to read what the summary lacks from the saved case), or None."""
    src = rec.get("source") or {}
    virtual = src.get("kind") == "virtual"
    row = {
        "case_id": str(rec.get("case_id", "")), "status": rec.get("status") or "missing",
        "failed_step": rec.get("failed_step"), "error": rec.get("error"), "source_kind": src.get("kind"),
        "source_path": None if virtual else src.get("path"), "phantom": src.get("phantom"),
        "seed": _num(src.get("seed")), "pixel_mm": _num(src.get("pixel_mm")), "slice_mm": _num(src.get("slice_mm")),
        "steps": ",".join(rec.get("steps_requested") or list(rec.get("steps") or {})) or None,
        "seconds": _num(rec.get("seconds")), "open_seconds": _num(rec.get("open_seconds")),
        "peak_rss_mb": _num(rec.get("peak_rss_mb")),
    }
    if rec.get("arm"):
        row["arm"] = str(rec["arm"])
    steps = rec.get("steps") or {}
    for name, st in steps.items():
        if isinstance(st, dict):
            row[f"seconds:{name}"] = _num(st.get("seconds"))
            row[f"status:{name}"] = st.get("status")
    seg = _step_summary(rec, "segment")
    for name, s in ((seg or {}).get("structures") or {}).items():
        if isinstance(s, dict):
            row[f"volume_ml:{name}"] = _num(s.get("volume_ml"))
            if s.get("confidence") is not None:
                row[f"confidence:{name}"] = _num(s.get("confidence"))
    for name, d in sorted((rec.get("dice") or {}).items()):
        row[f"dice:{name}"] = _num(d)
    tavr = _step_summary(rec, "tavr")
    if tavr is not None:
        full = case_item(out_dir, rec, "tavr") if out_dir is not None and "hemodynamics" not in tavr else None
        row.update(_tavr_columns(tavr, full))
    flow = _step_summary(rec, "flow")
    if flow is not None:
        row.update(_flow_columns(flow))
    fem = _step_summary(rec, "fem")
    if fem is not None:
        row.update(_fem_columns(fem))
    imp = _step_summary(rec, "implant")
    if imp is not None:
        row.update(_implant_columns(imp))
    row.update(_truth_columns(rec.get("ground_truth")))
    return row


def _column_order(columns) -> list[str]:
    cols = list(dict.fromkeys(columns))
    rest = [c for c in cols if c not in BASE_COLUMNS and c != "arm"]

    def key(c):
        for g, prefix in enumerate(GROUP_ORDER):
            if c.startswith(prefix):
                return (g, 0)
        return (len(GROUP_ORDER), 0)

    groups: dict = {}
    for c in rest:  # first-seen order inside a group (steps in run order, structures as segmented)
        groups.setdefault(key(c), []).append(c)
    return list(BASE_COLUMNS) + (["arm"] if "arm" in cols else []) + [c for k in sorted(groups) for c in groups[k]]


def results_table(source):
    """The cohort's results as a ``pandas.DataFrame``, one row per case (columns: the module text).

    ``source``: an output folder (``results/*.json`` in ``cohort.json``'s order), a ``CohortRun``, or a
    list of records (dicts)."""
    import pandas as pd

    out_dir = None
    if isinstance(source, (str, os.PathLike)):
        out_dir = Path(source)
        records = read_records(out_dir)
    elif hasattr(source, "records") and hasattr(source, "out_dir"):
        out_dir, records = Path(source.out_dir), list(source.records)
    else:
        records = list(source)
        if not all(isinstance(r, dict) for r in records):
            raise SurgtwinError("a results table needs an output folder or a list of case records (dicts)")
    rows = [record_row(r, out_dir) for r in records]
    cols = _column_order([c for r in rows for c in r])
    df = pd.DataFrame(rows, columns=cols)
    for c in df.columns:  # all-empty numeric groups stay float; text columns stay object
        if df[c].dtype == object and df[c].map(lambda v: v is None or isinstance(v, float)).all():
            df[c] = df[c].astype(float)
    return df


# -- writing ---------------------------------------------------------------------------------------
def write_table(df, out_dir) -> tuple[Path, Path]:
    """Write ``df`` as ``out_dir/cohort_results.csv`` and ``.parquet`` (each atomically: a temporary file,
    then a rename); returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, pq_path = out_dir / f"{TABLE_STEM}.csv", out_dir / f"{TABLE_STEM}.parquet"
    atomic_write(csv_path, lambda p: df.to_csv(p, index=False))
    pq = df.copy()
    for c in pq.columns:  # parquet columns hold one type: mixed text/number columns become text
        if pq[c].dtype == object:
            kinds = {type(v) for v in pq[c] if v is not None and not (isinstance(v, float) and v != v)}
            if len(kinds) > 1:
                pq[c] = pq[c].map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v))
    atomic_write(pq_path, lambda p: pq.to_parquet(p, index=False, engine="pyarrow"))
    return csv_path, pq_path
