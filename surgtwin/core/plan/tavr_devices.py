"""TAVR device sizing, the virtual valve and its predicted haemodynamics (pure functions, LPS mm).

* ``sizing_charts()``: the two generic families of ``surgtwin/data/tavr/sizing.json``
  (balloon-expandable 20/23/26/29 mm by CT annulus **area**, self-expanding 23/26/29/34 mm by
  annulus **perimeter**), each range with its cited source; representative only, check the IFU.
* ``size_valves(measurement)`` -> one ``SizingResult`` per family: the recommended size, the
  oversizing (balloon-expandable: area oversizing % = 100 (pi (size/2)^2 / A - 1); self-expanding:
  perimeter oversizing % = 100 (pi size / P - 1)) and warnings (between sizes / overlap, out of range,
  coronary height < 10 mm, calcium >= 235 mm^3, eccentricity > 0.1; thresholds cited in the data).
* ``place_valve(measurement, family, size, depth_mm)`` -> ``ValvePlacement``: the implant library's
  frame (``valve-balloon-expandable`` / ``valve-self-expanding``) coaxial with the annulus, its inflow
  ``depth_mm`` below the annulus plane (into the LVOT), as a 4x4 local -> LPS pose.
* ``mean_gradient(eoa_cm2, ...)``: simplified Bernoulli. Stroke volume SV = CO / HR; systolic
  ejection time SET from the heart rate (Weissler: LVET ms = 413 - 1.7 HR) unless given; mean
  systolic flow Q = SV / SET; mean velocity v = Q / EOA; the mean of 4 v(t)^2 over a half-sine
  ejection profile is 4 v^2 x pi^2 / 8 (``profile_factor``; 1.0 gives the plain 4 v^2).
* ``prosthesis_mismatch(eoa_cm2, bsa_m2, bmi)``: indexed EOA and VARC-3 PPM grade.
* ``pvl_risk(...)``: a paravalvular-leak **planning indicator** (low / moderate / high) from points:
  eccentricity > 0.1 (+1), > 0.25 (+2); calcium >= 235 mm^3 (+2); undersized (oversizing < 0 %, +2)
  or little oversizing (< 5 % area for balloon-expandable, < 10 % perimeter for self-expanding, +1);
  0-1 low, 2-3 moderate, >= 4 high. The rule follows the cited predictors (eccentricity, calcium,
  oversizing) but its weights are NOT validated.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from surgtwin.core.errors import SurgtwinError

PROFILE_FACTOR = math.pi ** 2 / 8.0  # <v^2> / <v>^2 for a half-sine ejection velocity


@lru_cache(maxsize=1)
def _data() -> dict:
    from surgtwin.resources import tavr_dir

    path = tavr_dir() / "sizing.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SurgtwinError(f"cannot read the TAVR sizing charts ({exc})", path=path) from None


def sizing_charts() -> dict:
    """{family name: chart dict} (see ``surgtwin/data/tavr/sizing.json``)."""
    return {f["name"]: f for f in _data()["families"]}


def thresholds() -> dict:
    return dict(_data()["thresholds"])


def families() -> list[str]:
    return list(sizing_charts())


def chart(family: str) -> dict:
    charts = sizing_charts()
    key = str(family).lower()
    for name, c in charts.items():
        if key in (name, c["implant_family"]):
            return c
    raise SurgtwinError(f"unknown TAVR valve family {family!r}", hint="families: " + ", ".join(charts))


def oversizing_percent(family: str, size: str, area_mm2: float, perimeter_mm: float) -> float:
    c = chart(family)
    d = float(size)
    if c["sized_by"] == "area":
        return 100.0 * (math.pi * (d / 2) ** 2 / area_mm2 - 1.0)
    return 100.0 * (math.pi * d / perimeter_mm - 1.0)


@dataclass
class SizingResult:
    family: str
    sized_by: str  # "area" or "perimeter"
    value: float  # the annulus value the chart is read with (mm^2 or mm)
    recommended: str | None
    candidates: list  # sizes whose range holds the value
    oversizing_percent: float | None
    rows: list  # per size: {"size", "min", "max", "in_range", "oversizing_percent"}
    warnings: list = field(default_factory=list)
    source: str = ""

    def to_record(self) -> dict:
        return {"family": self.family, "implant_family": chart(self.family)["implant_family"],
                "sized_by": self.sized_by, "value": float(self.value), "recommended": self.recommended,
                "candidates": list(self.candidates), "oversizing_percent": self.oversizing_percent,
                "oversizing_definition": chart(self.family)["oversizing"], "rows": list(self.rows),
                "warnings": list(self.warnings), "source": self.source}


def size_family(family: str, area_mm2: float, perimeter_mm: float, *, edge_percent: float = 1.5) -> SizingResult:
    """Read ``family``'s chart with the annulus area/perimeter (see the module text)."""
    c = chart(family)
    by = c["sized_by"]
    x = float(area_mm2 if by == "area" else perimeter_mm)
    unit = "mm^2" if by == "area" else "mm"
    rows, cands = [], []
    for s in c["sizes"]:
        inside = s["min"] <= x <= s["max"]
        rows.append({"size": s["size"], "min": s["min"], "max": s["max"], "in_range": inside,
                     "oversizing_percent": oversizing_percent(family, s["size"], area_mm2, perimeter_mm)})
        if inside:
            cands.append(s)
    warnings = []
    lo, hi = c["sizes"][0]["min"], c["sizes"][-1]["max"]
    if x < lo:
        rec = None
        warnings.append(f"annulus {by} {x:.1f} {unit} is below the {c['name']} chart ({lo:g}-{hi:g} {unit}): "
                        "no size fits")
    elif x > hi:
        rec = None
        warnings.append(f"annulus {by} {x:.1f} {unit} is above the {c['name']} chart ({lo:g}-{hi:g} {unit}): "
                        "no size fits")
    elif not cands:
        nearest = min(c["sizes"], key=lambda s: min(abs(x - s["min"]), abs(x - s["max"])))
        rec = nearest["size"]
        warnings.append(f"annulus {by} {x:.1f} {unit} falls between the chart's ranges: nearest size {rec}")
    else:
        # in an overlap the size whose range centre is nearest is proposed; both are listed
        best = min(cands, key=lambda s: abs(x - 0.5 * (s["min"] + s["max"])))
        rec = best["size"]
        if len(cands) > 1:
            warnings.append(f"between sizes: annulus {by} {x:.1f} {unit} is in the overlap of "
                            + " and ".join(s["size"] for s in cands) + f" mm (proposed {rec} mm)")
        else:
            s = best
            for bound, other in ((s["min"], -1), (s["max"], +1)):
                if abs(x - bound) <= edge_percent / 100.0 * x:
                    idx = c["sizes"].index(s) + other
                    if 0 <= idx < len(c["sizes"]):
                        warnings.append(f"between sizes: annulus {by} {x:.1f} {unit} is within {edge_percent:g} % "
                                        f"of the {rec} mm range's limit ({bound:g} {unit}); consider "
                                        f"{c['sizes'][idx]['size']} mm")
    over = None if rec is None else oversizing_percent(family, rec, area_mm2, perimeter_mm)
    return SizingResult(c["name"], by, x, rec, [s["size"] for s in cands], over, rows, warnings, c["chart_source"])


def anatomy_warnings(m) -> list[str]:
    """Warnings from the measured anatomy (coronary heights, calcium, eccentricity), thresholds cited."""
    th = thresholds()
    out = []
    lim = th["coronary_height_mm"]["value"]
    for side in ("left", "right"):
        h = m.coronary_height_mm(side)
        if h is not None and h < lim:
            out.append(f"{side} coronary height {h:.1f} mm < {lim:g} mm: risk of coronary obstruction")
    ca = (m.calcium or {}).get("total_mm3")
    lim = th["calcium_mm3"]["value"]
    if ca is not None and ca >= lim:
        out.append(f"heavy calcium: {ca:.0f} mm^3 >= {lim:g} mm^3 (risk of paravalvular leak)")
    lim = th["eccentricity"]["value"]
    if m.eccentricity > lim:
        out.append(f"elliptical annulus: eccentricity {m.eccentricity:.2f} > {lim:g}")
    return out


def size_valves(m) -> dict[str, SizingResult]:
    """The chart result of each family for measurement ``m`` (a ``TavrMeasurement``)."""
    extra = anatomy_warnings(m)
    out = {}
    for name in families():
        r = size_family(name, m.area_mm2, m.perimeter_mm)
        r.warnings.extend(extra)
        out[name] = r
    return out


# -- virtual valve -----------------------------------------------------------------------------------


@dataclass
class ValvePlacement:
    family: str
    implant_family: str
    size: str
    depth_mm: float
    pose: object  # surgtwin.core.plan.pose.Pose (local frame -> LPS)
    implant: object  # surgtwin.core.plan.implants.Implant

    def to_record(self) -> dict:
        return {"family": self.family, "implant_family": self.implant_family, "size": self.size,
                "depth_mm": float(self.depth_mm), "pose": self.pose.to_json(),
                "matrix_lps": [[float(v) for v in row] for row in self.pose.matrix],
                "frame_height_mm": float(self.implant.params.get("height_mm", 0.0)),
                "frame": "implant-library local frame: origin at the inflow centre, +z toward the outflow"}


def default_depth_mm(family: str) -> float:
    return float(chart(family)["default_depth_mm"])


def place_valve(m, family: str, size: str, depth_mm: float | None = None) -> ValvePlacement:
    """The family's frame coaxial with the annulus, its inflow ``depth_mm`` below the annulus plane."""
    from surgtwin.core.plan.implants import family as implant_family
    from surgtwin.core.plan.pose import Pose

    c = chart(family)
    sizes = [s["size"] for s in c["sizes"]]
    if str(size) not in sizes:
        raise SurgtwinError(f"{c['name']} has no size {size!r}", hint="sizes: " + ", ".join(sizes))
    depth = default_depth_mm(family) if depth_mm is None else float(depth_mm)
    if not (-30.0 <= depth <= 30.0) or not math.isfinite(depth):
        raise SurgtwinError(f"implantation depth {depth} mm is out of range", hint="use 0-10 mm into the LVOT")
    implant = implant_family(c["implant_family"]).implant(str(size))
    n = np.asarray(m.normal_lps, float)
    origin = np.asarray(m.centre_lps, float) - depth * n
    pose = Pose.from_axis(origin, n, x_hint_lps=np.asarray(m.u_lps, float))
    return ValvePlacement(c["name"], c["implant_family"], str(size), depth, pose, implant)


# -- haemodynamics -------------------------------------------------------------------------------------


def eoa_cm2(family: str, size: str) -> float:
    for s in chart(family)["sizes"]:
        if s["size"] == str(size):
            return float(s["eoa_cm2"])
    raise SurgtwinError(f"{family} has no size {size!r}")


def ejection_time_s(heart_rate_bpm: float) -> float:
    """Weissler's left-ventricular ejection time (men): 413 - 1.7 HR ms."""
    return (413.0 - 1.7 * float(heart_rate_bpm)) / 1000.0


def mean_gradient(eoa: float, *, cardiac_output_l_min: float = 5.0, heart_rate_bpm: float = 70.0,
                  ejection_time: float | None = None, profile_factor: float = PROFILE_FACTOR) -> dict:
    """Predicted mean transvalvular gradient (mmHg) by the simplified Bernoulli equation."""
    for name, v in (("EOA", eoa), ("cardiac output", cardiac_output_l_min), ("heart rate", heart_rate_bpm)):
        if not (math.isfinite(v) and v > 0):
            raise SurgtwinError(f"{name} must be a positive number, got {v}")
    set_s = ejection_time_s(heart_rate_bpm) if ejection_time is None else float(ejection_time)
    if not (0.05 <= set_s <= 0.6):
        raise SurgtwinError(f"systolic ejection time {set_s:.3f} s is implausible", hint="check the heart rate")
    sv_ml = cardiac_output_l_min * 1000.0 / heart_rate_bpm
    q_ml_s = sv_ml / set_s
    v_m_s = q_ml_s / eoa / 100.0
    dp = 4.0 * v_m_s ** 2 * profile_factor
    return {"mean_gradient_mmhg": dp, "mean_velocity_m_s": v_m_s, "stroke_volume_ml": sv_ml,
            "mean_systolic_flow_ml_s": q_ml_s, "ejection_time_s": set_s, "eoa_cm2": float(eoa),
            "cardiac_output_l_min": float(cardiac_output_l_min), "heart_rate_bpm": float(heart_rate_bpm),
            "profile_factor": float(profile_factor),
            "formula": "dP = 4 v^2 x profile factor, v = (CO / HR) / SET / EOA (simplified Bernoulli)"}


def prosthesis_mismatch(eoa: float, bsa_m2: float | None, bmi: float | None = None) -> dict | None:
    """Indexed EOA (cm^2/m^2) and the VARC-3 prosthesis-patient mismatch grade, or None without BSA."""
    if bsa_m2 is None:
        return None
    if not (math.isfinite(bsa_m2) and 0.5 <= bsa_m2 <= 3.5):
        raise SurgtwinError(f"body surface area {bsa_m2} m^2 is implausible", hint="give it in m^2, e.g. 1.9")
    th = thresholds()["ppm_indexed_eoa_cm2_m2"]
    obese = bmi is not None and bmi >= 30
    mod, sev = (th["moderate_bmi30"], th["severe_bmi30"]) if obese else (th["moderate"], th["severe"])
    ieoa = eoa / bsa_m2
    grade = "severe" if ieoa <= sev else "moderate" if ieoa <= mod else "none"
    return {"indexed_eoa_cm2_m2": ieoa, "ppm": grade, "bsa_m2": float(bsa_m2), "bmi": bmi,
            "thresholds": {"moderate": mod, "severe": sev}, "source": th["source"]}


def pvl_risk(m, family: str, oversizing: float | None) -> dict:
    """The paravalvular-leak planning indicator (see the module text)."""
    th = thresholds()
    points, reasons = 0, []
    e = m.eccentricity
    if e > 0.25:
        points += 2
        reasons.append(f"eccentricity {e:.2f} > 0.25 (+2)")
    elif e > th["eccentricity"]["value"]:
        points += 1
        reasons.append(f"eccentricity {e:.2f} > {th['eccentricity']['value']:g} (+1)")
    ca = (m.calcium or {}).get("total_mm3")
    if ca is not None and ca >= th["calcium_mm3"]["value"]:
        points += 2
        reasons.append(f"calcium {ca:.0f} mm^3 >= {th['calcium_mm3']['value']:g} mm^3 (+2)")
    if oversizing is not None:
        little = 5.0 if chart(family)["sized_by"] == "area" else 10.0
        if oversizing < 0:
            points += 2
            reasons.append(f"undersized ({oversizing:+.1f} %) (+2)")
        elif oversizing < little:
            points += 1
            reasons.append(f"little oversizing ({oversizing:+.1f} % < {little:g} %) (+1)")
    level = "low" if points <= 1 else "moderate" if points <= 3 else "high"
    return {"level": level, "points": points, "reasons": reasons,
            "rule": "eccentricity > 0.1 (+1) / > 0.25 (+2); calcium >= 235 mm^3 (+2); undersized (+2) or oversizing "
                    "< 5 % area (balloon) / < 10 % perimeter (self-expanding) (+1); 0-1 low, 2-3 moderate, >= 4 high",
            "note": "planning indicator from published predictors; the rule is not validated"}
