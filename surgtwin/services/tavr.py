"""TAVR planning over a case: annulus measurement, device sizing and the virtual valve: the "tavr" step (issue 14).

Step ``tavr`` (inputs: ``labels`` and ``volume``). Options: ``hinge_points`` (three [x, y, z] LPS mm,
optional), ``family`` ("balloon-expandable" or "self-expanding", default balloon-expandable), ``size``
(default: the chart's recommendation), ``depth_mm`` (default per family), ``cardiac_output_l_min``
(5.0), ``heart_rate_bpm`` (70), ``bsa_m2`` (optional; when not given, from the source DICOM's
PatientSize and PatientWeight if both are there and plausible: ``body_size_from_header``), ``bmi``
(optional, likewise), ``calcium_hu`` (850). ``parameters.bsa_source`` says where the BSA came from.
The work is in ``surgtwin.core.plan.tavr`` (measurement) and ``surgtwin.core.plan.tavr_devices``.

It stores the item ``tavr`` (kind records; provenance: method "tavr", every option, the input hashes
of labels and volume) whose value is a JSON dict with exactly these fields:

* ``schema``: 1
* ``measurement``: ``TavrMeasurement.to_record()``:
  ``method`` ("labels" | "mask" | "hinge-labels" | "hinge-mask" | "hinge-ct"), ``centre_lps`` [3],
  ``normal_lps`` [3] (unit, ventricle -> aorta), ``u_lps`` [3] (in-plane, along the max diameter),
  ``v_lps`` [3] (normal x u), ``contour_lps`` [[x, y, z], ...] (closed, last point not repeated),
  ``perimeter_mm``, ``area_mm2``, ``diameter_min_mm``, ``diameter_max_mm``, ``diameter_method``,
  ``eccentricity`` (1 - Dmin/Dmax), ``area_derived_diameter_mm``, ``perimeter_derived_diameter_mm``,
  ``coronary`` {"left"|"right": {"height_mm", "lower_edge_lps" [3], "centre_lps" [3], "source"}},
  ``coronary_height_left_mm``, ``coronary_height_right_mm`` (null when not found),
  ``sinus_diameter_mm``, ``sinus_height_mm``, ``stj_diameter_mm``, ``stj_height_mm`` (null when not
  measurable), ``calcium`` {"source", "threshold_hu", "region", "total_mm3", "sectors" {name: mm^3},
  "sector_centres_deg" {name: degrees in the (u, v) plane}, "sector_reference"}, ``hinge_points_lps``
  (null or [[x, y, z] x 3]), ``sources`` {text}, ``warnings`` [text]
* ``sizing``: {family: ``SizingResult.to_record()``}: ``family``, ``implant_family``, ``sized_by``
  ("area" | "perimeter"), ``value``, ``recommended`` (size text or null), ``candidates`` [size],
  ``oversizing_percent`` (of the recommended size, or null), ``oversizing_definition``, ``rows``
  [{"size", "min", "max", "in_range", "oversizing_percent"}], ``warnings`` [text], ``source``
* ``valve``: the chosen valve (null when the family's chart has no size for this annulus and none was
  given): ``family``, ``implant_family`` (the implant library family of the frame), ``size``,
  ``depth_mm``, ``pose`` (``Pose.to_json()``: "matrix", "rotation_vector_deg", "translation_mm"),
  ``matrix_lps`` (4x4 local -> LPS: origin at the inflow centre, +z toward the outflow),
  ``frame_height_mm``, ``frame``, ``oversizing_percent``, ``eoa_cm2``
* ``hemodynamics``: null without a valve, else ``mean_gradient_mmhg``, ``mean_velocity_m_s``,
  ``stroke_volume_ml``, ``mean_systolic_flow_ml_s``, ``ejection_time_s``, ``eoa_cm2``,
  ``cardiac_output_l_min``, ``heart_rate_bpm``, ``profile_factor``, ``formula``
* ``ppm``: null without ``bsa_m2``, else ``indexed_eoa_cm2_m2``, ``ppm`` ("none" | "moderate" |
  "severe"), ``bsa_m2``, ``bmi``, ``thresholds``, ``source``
* ``pvl_risk``: null without a valve, else ``level`` ("low" | "moderate" | "high"), ``points``,
  ``reasons`` [text], ``rule``, ``note``
* ``parameters``: the options used (``family``, ``size``, ``depth_mm``, ``cardiac_output_l_min``,
  ``heart_rate_bpm``, ``bsa_m2``, ``bmi``, ``calcium_hu``, ``hinge_points``)
* ``warnings``: every warning (measurement, sizing of the chosen family, valve)

``replace_valve(record, family=..., size=..., depth_mm=..., ...)`` re-places the valve on a stored
record (new pose, gradient, PPM, PVL risk) without measuring again: milliseconds, for the app's depth
slider and size picker; ``store_valve(case, ...)`` writes the result back into the case.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from surgtwin.core.case import Case, Provenance
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import report, scaled
from surgtwin.services.pipeline import Step, StepJob, StepOutput, register_step

ITEM = "tavr"
DEFAULT_FAMILY = "balloon-expandable"
OPTION_KEYS = ("family", "size", "depth_mm", "cardiac_output_l_min", "heart_rate_bpm", "bsa_m2", "bmi", "calcium_hu",
               "hinge_points", "bsa_source")
#: plausible adult body size in a DICOM header (PatientSize is in metres, PatientWeight in kg)
HEIGHT_M, WEIGHT_KG = (1.0, 2.3), (25.0, 300.0)


def jsonable(value):
    """``value`` with numpy scalars/arrays turned into plain JSON types (NaN -> None)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    return value


def _options(opts: dict) -> dict:
    from surgtwin.core.plan.tavr import DEFAULT_CALCIUM_HU

    o = {k: opts.get(k) for k in OPTION_KEYS}
    o["family"] = o["family"] or DEFAULT_FAMILY
    o["cardiac_output_l_min"] = float(o["cardiac_output_l_min"] or 5.0)
    o["heart_rate_bpm"] = float(o["heart_rate_bpm"] or 70.0)
    o["calcium_hu"] = float(o["calcium_hu"] or DEFAULT_CALCIUM_HU)
    if o["hinge_points"] is not None:
        o["hinge_points"] = [[float(v) for v in p] for p in o["hinge_points"]]
    if o["size"] is not None:
        o["size"] = str(o["size"])
    return o


def valve_part(measurement, sizing: dict, opts: dict) -> dict:
    """``valve``, ``hemodynamics``, ``ppm``, ``pvl_risk`` and their warnings for a measurement."""
    from surgtwin.core.plan import tavr_devices as dev

    fam = dev.chart(opts["family"])["name"]
    rec = sizing[fam]
    size = opts.get("size") or rec["recommended"]
    out = {"valve": None, "hemodynamics": None, "ppm": None, "pvl_risk": None, "warnings": []}
    if size is None:
        out["warnings"].append(f"no {fam} size fits this annulus: no valve placed")
        return out
    placed = dev.place_valve(measurement, fam, size, opts.get("depth_mm"))
    over = dev.oversizing_percent(fam, size, measurement.area_mm2, measurement.perimeter_mm)
    eoa = dev.eoa_cm2(fam, size)
    valve = placed.to_record()
    valve.update({"oversizing_percent": over, "eoa_cm2": eoa})
    out["valve"] = valve
    out["hemodynamics"] = dev.mean_gradient(eoa, cardiac_output_l_min=opts["cardiac_output_l_min"],
                                            heart_rate_bpm=opts["heart_rate_bpm"])
    out["ppm"] = dev.prosthesis_mismatch(eoa, opts.get("bsa_m2"), opts.get("bmi"))
    out["pvl_risk"] = dev.pvl_risk(measurement, fam, over)
    if opts.get("size") and rec["recommended"] and str(opts["size"]) != rec["recommended"]:
        out["warnings"].append(f"chosen {fam} size {size} differs from the chart's {rec['recommended']}")
    if out["ppm"] and out["ppm"]["ppm"] != "none":
        out["warnings"].append(f"{out['ppm']['ppm']} prosthesis-patient mismatch predicted "
                               f"(indexed EOA {out['ppm']['indexed_eoa_cm2_m2']:.2f} cm^2/m^2)")
    return out


def plan_tavr(labels, volume, opts: dict, *, progress=None, cancel=None) -> dict:
    """The ``tavr`` record (see the module text) for a label map (or None) and a CT (or None)."""
    from surgtwin.core.plan import tavr_devices as dev
    from surgtwin.core.plan.tavr import measure_annulus

    o = _options(opts)
    dev.chart(o["family"])  # an unknown family fails before the measurement
    ct = volume if volume is not None and (volume.modality or "CT").upper() == "CT" else None
    m = measure_annulus(labels, ct, hinge_points_lps=o["hinge_points"], calcium_hu=o["calcium_hu"],
                        progress=scaled(progress, 0.0, 0.9), cancel=cancel)
    sizing = {k: v.to_record() for k, v in dev.size_valves(m).items()}
    part = valve_part(m, sizing, o)
    fam = dev.chart(o["family"])["name"]
    warnings = list(m.warnings) + list(sizing[fam]["warnings"]) + part.pop("warnings")
    if opts.get("header_warning"):
        warnings.append(str(opts["header_warning"]))
    rec = {"schema": 1, "measurement": m.to_record(), "sizing": sizing, **part, "parameters": o,
           "warnings": warnings}
    report(progress, 1.0, "tavr: planned")
    return jsonable(rec)


def replace_valve(record: dict, *, family=None, size=None, depth_mm=None, cardiac_output_l_min=None,
                  heart_rate_bpm=None, bsa_m2=None, bmi=None) -> dict:
    """A copy of a ``tavr`` record with the valve re-placed (another family/size/depth or
    haemodynamic parameters) without measuring again. Arguments left None keep the record's."""
    from surgtwin.core.plan import tavr_devices as dev
    from surgtwin.core.plan.tavr import TavrMeasurement

    rec = copy.deepcopy(record)
    m = TavrMeasurement.from_record(rec["measurement"])
    o = dict(rec.get("parameters") or {})
    new = {"family": family, "size": size, "depth_mm": depth_mm, "cardiac_output_l_min": cardiac_output_l_min,
           "heart_rate_bpm": heart_rate_bpm, "bsa_m2": bsa_m2, "bmi": bmi}
    if family is not None and dev.chart(family)["name"] != dev.chart(o.get("family") or DEFAULT_FAMILY)["name"]:
        o["size"] = None  # another family: its own recommendation unless a size is given
        o["depth_mm"] = None
    o.update({k: v for k, v in new.items() if v is not None})
    o = _options(o)
    part = valve_part(m, rec["sizing"], o)
    fam = dev.chart(o["family"])["name"]
    rec.update({k: part[k] for k in ("valve", "hemodynamics", "ppm", "pvl_risk")})
    rec["parameters"] = o
    rec["warnings"] = list(m.warnings) + list(rec["sizing"][fam]["warnings"]) + part["warnings"]
    return jsonable(rec)


def _provenance(rec: dict, hashes: dict) -> Provenance:
    p = rec["parameters"]
    params = {**p, "method": rec["measurement"]["method"],
              "valve": None if rec["valve"] is None else {"family": rec["valve"]["family"], "size": rec["valve"]["size"],
                                                          "depth_mm": rec["valve"]["depth_mm"]}}
    return Provenance("tavr", jsonable(params), {k: v for k, v in hashes.items() if v is not None})


def _tavr(labels, volume, hashes, opts, *, progress=None, cancel=None) -> StepOutput:
    rec = plan_tavr(labels, volume, opts, progress=progress, cancel=cancel)
    summary = {"measurement": {k: rec["measurement"][k] for k in (
        "method", "perimeter_mm", "area_mm2", "diameter_min_mm", "diameter_max_mm", "eccentricity",
        "coronary_height_left_mm", "coronary_height_right_mm")},
        "recommended": {k: v["recommended"] for k, v in rec["sizing"].items()},
        "valve": rec["valve"] and {k: rec["valve"][k] for k in ("family", "size", "depth_mm")},
        "warnings": rec["warnings"]}
    return StepOutput("tavr", items={ITEM: (rec, _provenance(rec, hashes))}, summary=summary, result=rec)


def body_size_from_header(case: Case) -> tuple[dict | None, str | None]:
    """``({"bsa_m2", "bmi", "height_m", "weight_kg", "source"}, None)`` from the source DICOM's PatientSize
    (m) and PatientWeight (kg); ``(None, why)`` when they are there but implausible (e.g. a height in cm);
    ``(None, None)`` when the source is not DICOM, is gone, or lacks either value."""
    import warnings

    from surgtwin.core.phantom.physiology import mosteller_bsa
    from surgtwin.services.report import source_dicom_file

    f = source_dicom_file(case)
    if f is None:
        return None, None
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(str(f), stop_before_pixels=True, specific_tags=["PatientSize", "PatientWeight"])
        height, weight = (float(ds.get(k)) if ds.get(k) not in (None, "") else None
                          for k in ("PatientSize", "PatientWeight"))
    except Exception:  # noqa: BLE001 - an unreadable value is as good as none
        return None, None
    if height is None or weight is None or height == 0 or weight == 0:
        return None, None
    if not (HEIGHT_M[0] <= height <= HEIGHT_M[1] and WEIGHT_KG[0] <= weight <= WEIGHT_KG[1]):
        return None, (f"BSA not taken from the DICOM header: PatientSize {height:g} (metres expected, "
                      f"{HEIGHT_M[0]:g}-{HEIGHT_M[1]:g}) or PatientWeight {weight:g} (kg, {WEIGHT_KG[0]:g}-"
                      f"{WEIGHT_KG[1]:g}) is implausible; give the BSA")
    bsa = round(mosteller_bsa(height * 100.0, weight), 2)
    return {"bsa_m2": bsa, "bmi": round(weight / height ** 2, 1), "height_m": height, "weight_kg": weight,
            "source": f"DICOM header: PatientSize {height:g} m, PatientWeight {weight:g} kg (Mosteller)"}, None


def _prepare(case: Case, **options) -> StepJob:
    from dataclasses import replace

    if options.get("bsa_m2") is None:
        body, why = body_size_from_header(case)
        if body is not None:
            options.update(bsa_m2=body["bsa_m2"], bsa_source=body["source"])
            if options.get("bmi") is None:
                options["bmi"] = body["bmi"]
        elif why:
            options["header_warning"] = why
    else:
        options.setdefault("bsa_source", "given")
    lab = case.labels
    if lab is None and not options.get("hinge_points"):
        raise SurgtwinError("the tavr step needs a label map (aortic root or aorta mask) or three hinge points",
                            hint="segment the case, import a mask, or give hinge points")
    labels = None if lab is None else replace(lab, array=lab.array.copy())
    hashes = {"labels": case.current_hash("labels") if lab is not None else None, "volume": case.volume_hash}
    return StepJob("tavr", _tavr, (labels, case.volume, hashes, dict(options)))


register_step(Step("tavr", "TAVR: annulus measurement, device sizing per family, virtual valve, gradient and "
                   "paravalvular-leak indicator", ("volume",), _prepare))


def tavr_record(case: Case) -> dict | None:
    it = case.item(ITEM)
    return None if it is None else it.value


def store_valve(case: Case, **changes) -> dict:
    """Re-place the case's valve (``replace_valve``) and store it (on the case's thread)."""
    it = case.item(ITEM)
    if it is None:
        raise SurgtwinError("the case has no TAVR plan yet", hint="run the tavr step first: surgtwin plan tavr CASE")
    rec = replace_valve(it.value, **changes)
    prov = _provenance(rec, dict(it.provenance.inputs))
    case.set_item(ITEM, rec, prov)
    return rec
