"""Segmentation quality gate: field of view, per-structure plausibility and calibrated confidence.

A model can label a pelvis in a chest CT. The gate decides what the scan can contain from the image
itself, then checks every structure of a label map against adult anatomy::

    from surgtwin.core.segmentation.quality import assess, apply_removals
    qa = assess(volume, labels, confidences={value: raw_confidence})
    qa.fov.regions                 # ["chest", "abdomen"]: body regions the scan covers
    qa.structures["pelvis"]        # StructureQuality(status="removed", reasons=[...], ...)
    labels = apply_removals(labels, qa)   # removed structures' voxels become background

**Field of view** (``field_of_view``): from the image, never from the labels: the lungs (large
regions of air-like HU, -960..-500 median, inside the body outline, over >= 30 mm of slices) give the
lung apex and base; a bone ring enclosing brain-like HU in a head-sized body section gives the
skull; two separate body sections give the legs. Each region (head, neck, chest, abdomen, pelvis,
legs) gets a superior-inferior interval in this patient relative to those landmarks (``REGION_SPANS``);
where a landmark lies beyond the scan's end, the most permissive position is assumed.

**Statuses** per structure: ``ok``; ``removed`` (outside the field of view: most of its voxels lie
where none of its regions can be, or its regions are not in the scan; its voxels are set to
background by ``apply_removals``); ``flagged`` (implausible: volume outside the adult range,
wrong side or level relative to a neighbour, too many pieces); ``confirmed`` (flagged, then confirmed
by the user: see ``surgtwin.services.quality``). Each non-ok status carries plain-language reasons.

Adult ranges, regions and neighbour relations are package data
(``surgtwin/data/anatomy/adult_structures.json``, "planning defaults"); a structure not in that table
(a hospital bundle's own classes) is only checked for what is known about it (nothing: ``ok``).

**Confidence**: ``calibrate(raw, name, calibration)`` maps the model's raw per-structure score (mean
softmax inside the structure) to a calibrated probability that the structure is correct (Dice >=
0.5 against ground truth), by a Platt (logistic) fit stored as package data
(``surgtwin/data/anatomy/confidence_calibration.json``; fitted by
``scripts/fit_confidence_calibration.py``). Without a calibration the raw score is reported as is.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

import numpy as np

from surgtwin.core.types import LabelMap, LabelTable, Volume

REGIONS = ("head", "neck", "chest", "abdomen", "pelvis", "legs")
STATUSES = ("ok", "flagged", "removed", "confirmed")

#: region -> (landmark, lower offset mm, upper offset mm): the region's superior-inferior interval
#: relative to the lung apex ("apex") or the lowest point of the lungs ("base"); None = open end.
#: Adult trunk proportions (planning defaults): the liver dome reaches ~15 cm above the posterior
#: lung bases, the iliac crests lie ~17-30 cm below them, the lesser trochanters ~45 cm.
REGION_SPANS = {
    "head": ("apex", 60.0, None),
    "neck": ("apex", -20.0, 160.0),
    "chest": ("base", -20.0, None),  # up to apex + 30 (below)
    "abdomen": ("base", -300.0, 150.0),
    "pelvis": ("base", -480.0, -170.0),
    "legs": ("base", None, -380.0),
}
#: a structure is removed when less than this fraction of its voxels lies where its regions can be
INSIDE_FRACTION = 0.5
#: a region counts as covered when the scan spans at least this much of it (mm)
MIN_REGION_OVERLAP_MM = 20.0
#: lung detection: air-like voxels inside the body on a slice (cm^2, fraction of the body section)
LUNG_MIN_AREA_CM2, LUNG_MIN_FRACTION, LUNG_MIN_RUN_MM = 20.0, 0.08, 30.0
#: typical adult lung height when only one end of the lungs is in the scan (mm)
LUNG_HEIGHT_MM = 220.0
#: skull slices: head-sized body section, bone ring enclosing brain-like HU
HEAD_MAX_AREA_CM2, SKULL_MIN_INTERIOR_CM2 = 420.0, 25.0
#: components smaller than this fraction of the largest piece (or 1 ml) are specks, not pieces
PIECE_MIN_FRACTION, PIECE_MIN_ML = 0.1, 1.0


# -- package data ----------------------------------------------------------------------------------
_ANATOMY: dict | None = None


def anatomy() -> dict:
    """The adult structure table (regions, volume ranges, pieces) and neighbour relations."""
    global _ANATOMY
    if _ANATOMY is None:
        from surgtwin import resources

        _ANATOMY = json.loads((resources.anatomy_dir() / "adult_structures.json").read_text(encoding="utf-8"))
    return _ANATOMY


def default_calibration() -> dict | None:
    """The bundled model's confidence calibration (None when not installed)."""
    from surgtwin import resources

    f = resources.anatomy_dir() / "confidence_calibration.json"
    if not f.is_file():
        return None
    return json.loads(f.read_text(encoding="utf-8"))


def calibrate(raw: float | None, name: str, calibration: dict | None) -> float | None:
    """Calibrated probability that structure ``name`` is correct, from the model's raw score."""
    if raw is None or calibration is None:
        return raw
    p = calibration.get("per_structure", {}).get(name) or calibration.get("global")
    if not p:
        return raw
    x = math.log(max(min(raw, 1 - 1e-6), 1e-6) / (1 - max(min(raw, 1 - 1e-6), 1e-6)))
    z = p["a"] * x + p["b"]
    return float(1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0))))


# -- records ---------------------------------------------------------------------------------------
@dataclass
class FieldOfView:
    """Body regions a scan covers, from the image. ``z_range_mm``: the scan's extent along LPS z
    (superior positive); ``intervals``: each region's z interval in this patient (None = open);
    ``landmarks``: lung apex/base z (None when not in the scan) and whether each end lies beyond it,
    skull z range, legs; ``evidence``: what was seen, in words."""

    regions: list[str]
    z_range_mm: tuple[float, float]
    intervals: dict
    landmarks: dict
    evidence: list[str]

    def to_json(self) -> dict:
        return {"regions": list(self.regions), "z_range_mm": [round(float(z), 1) for z in self.z_range_mm],
                "intervals": {k: [None if x is None else round(float(x), 1) for x in v]
                              for k, v in self.intervals.items()},
                "landmarks": self.landmarks, "evidence": list(self.evidence)}

    @classmethod
    def from_json(cls, d: dict) -> FieldOfView:
        return cls(list(d.get("regions", [])), tuple(d.get("z_range_mm", (0.0, 0.0))),
                   {k: tuple(v) for k, v in d.get("intervals", {}).items()}, dict(d.get("landmarks", {})),
                   list(d.get("evidence", [])))


@dataclass
class StructureQuality:
    """One structure's verdict. ``confidence``: calibrated probability (or the raw score when no
    calibration applies; ``raw_confidence`` keeps the model's score); ``voxels``: its voxel count
    when assessed (an edit that changes it counts as the user's decision)."""

    name: str
    value: int
    status: str = "ok"
    reasons: list[str] = field(default_factory=list)
    confidence: float | None = None
    raw_confidence: float | None = None
    volume_ml: float = 0.0
    voxels: int = 0
    pieces: int = 1
    cut_by_fov: bool = False

    def to_json(self) -> dict:
        r = lambda x: None if x is None else round(float(x), 4)  # noqa: E731
        return {"name": self.name, "value": int(self.value), "status": self.status, "reasons": list(self.reasons),
                "confidence": r(self.confidence), "raw_confidence": r(self.raw_confidence),
                "volume_ml": round(float(self.volume_ml), 2), "voxels": int(self.voxels), "pieces": int(self.pieces),
                "cut_by_fov": bool(self.cut_by_fov)}

    @classmethod
    def from_json(cls, d: dict) -> StructureQuality:
        return cls(d["name"], int(d["value"]), d.get("status", "ok"), list(d.get("reasons", [])),
                   d.get("confidence"), d.get("raw_confidence"), float(d.get("volume_ml", 0.0)),
                   int(d.get("voxels", 0)), int(d.get("pieces", 1)), bool(d.get("cut_by_fov", False)))


@dataclass
class QualityAssessment:
    """The gate's verdict on a label map: ``structures`` by name, the field of view, the calibration
    used, and how long it took."""

    structures: dict[str, StructureQuality]
    fov: FieldOfView
    calibration: dict | None = None
    timings_s: dict = field(default_factory=dict)

    def with_status(self, *statuses: str) -> list[str]:
        return [n for n, s in self.structures.items() if s.status in statuses]

    @property
    def flagged(self) -> list[str]:
        return self.with_status("flagged")

    @property
    def removed(self) -> list[str]:
        return self.with_status("removed")

    def to_json(self) -> dict:
        cal = None
        if self.calibration:
            cal = {k: self.calibration.get(k) for k in ("method", "fitted_on", "target", "ece_before", "ece_after")}
        return {"structures": {n: s.to_json() for n, s in self.structures.items()}, "fov": self.fov.to_json(),
                "calibration": cal, "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()}}

    @classmethod
    def from_json(cls, d: dict) -> QualityAssessment:
        return cls({n: StructureQuality.from_json(s) for n, s in d.get("structures", {}).items()},
                   FieldOfView.from_json(d.get("fov", {})), d.get("calibration"), dict(d.get("timings_s", {})))


# -- geometry helpers ------------------------------------------------------------------------------
def _axis_of(affine: np.ndarray, world_axis: int) -> int:
    return int(np.argmax(np.abs(affine[world_axis, :3])))


def _world_coord(affine: np.ndarray, shape, axis: int, world_axis: int) -> np.ndarray:
    """World coordinate ``world_axis`` of each index along array ``axis`` (at the array's centre)."""
    centre = (np.asarray(shape, np.float64) - 1) / 2.0
    idx = np.tile(centre, (shape[axis], 1))
    idx[:, axis] = np.arange(shape[axis])
    return idx @ affine[world_axis, :3] + affine[world_axis, 3]


def _profiles(array: np.ndarray, axis: int, n_values: int) -> np.ndarray:
    """Voxels per (index along ``axis``, label value): shape (array.shape[axis], n_values)."""
    out = np.zeros((array.shape[axis], n_values), np.int64)
    for i in range(array.shape[axis]):
        sl = np.take(array, i, axis=axis)
        out[i] = np.bincount(sl.ravel(), minlength=n_values)[:n_values]
    return out


# -- field of view ---------------------------------------------------------------------------------
def field_of_view(volume: Volume) -> FieldOfView:
    """The body regions ``volume`` (a CT in HU) covers, from image cues only (see module doc)."""
    from scipy import ndimage

    aff = volume.affine
    za = _axis_of(aff, 2)
    arr = np.moveaxis(volume.array, za, 0)
    sp = np.asarray(volume.spacing_mm, np.float64)
    sp_moved = np.array([sp[za], *[sp[a] for a in range(3) if a != za]])
    step = [max(1, int(round(2.0 / sp_moved[0]))), *(max(1, int(round(3.0 / s))) for s in sp_moved[1:])]
    sub = arr[::step[0], ::step[1], ::step[2]].astype(np.float32)
    pix_cm2 = sp_moved[1] * step[1] * sp_moved[2] * step[2] / 100.0
    zs_full = _world_coord(aff, volume.shape, za, 2)
    zs = zs_full[::step[0]][:sub.shape[0]]
    slab_mm = abs(float(aff[2, za])) * step[0]
    z_lo, z_hi = float(zs_full.min()), float(zs_full.max())
    evidence = [f"scan spans {z_hi - z_lo:.0f} mm head-foot (z {z_lo:.0f}..{z_hi:.0f} mm LPS)"]

    plane = np.zeros((3, 3, 3), bool)
    plane[1] = ndimage.generate_binary_structure(2, 1)
    body = sub > -500
    lab, n = ndimage.label(body)
    if n > 1:  # the patient: components holding >= 10 % of the tissue (both legs; not the table)
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        body = (sizes >= 0.1 * sizes.max())[lab]
    filled = ndimage.binary_fill_holes(body, structure=plane)
    # air inside the body: per slice, every air region except those that touch the image's edge and
    # are pure air (mean < -960 HU: the room). A lung cut by a small reconstruction field of view
    # touches the edge too, but its mean is lung parenchyma (~-850 HU).
    air = sub < -400
    alab, na = ndimage.label(air, structure=plane)
    outside = np.zeros(na + 1, bool)
    if na:
        edge = np.zeros_like(air)
        edge[:, [0, -1], :] = True
        edge[:, :, [0, -1]] = True
        touching = np.unique(alab[edge & air])
        means = np.asarray(ndimage.mean(sub, alab, index=np.arange(1, na + 1)))
        outside[touching[touching > 0]] = means[touching[touching > 0] - 1] < -960.0
    air_in = air & ~outside[alab]
    del alab
    air_area = air_in.sum(axis=(1, 2)) * pix_cm2
    body_area = np.maximum(filled.sum(axis=(1, 2)) * pix_cm2, air_area)
    lungish = (air_area >= LUNG_MIN_AREA_CM2) & (air_area >= LUNG_MIN_FRACTION * np.maximum(body_area, 1e-6))
    landmarks: dict = {"lung_apex_z": None, "lung_base_z": None, "apex_beyond_scan": False,
                       "base_beyond_scan": False, "skull_z": None, "legs": False}
    run = _longest_run(lungish, max_gap=max(1, int(round(10.0 / slab_mm))))
    lungs = None
    if run is not None and (run[1] - run[0] + 1) * slab_mm >= LUNG_MIN_RUN_MM:
        med = float(np.median(sub[run[0]:run[1] + 1][air_in[run[0]:run[1] + 1]]))
        if -960.0 <= med <= -500.0:
            lungs = run
            za_, zb_ = zs[run[0]], zs[run[1]]
            top, bottom = max(za_, zb_), min(za_, zb_)
            apex_cut = top >= z_hi - 1.5 * slab_mm
            base_cut = bottom <= z_lo + 1.5 * slab_mm
            landmarks.update(lung_apex_z=None if apex_cut else round(float(top), 1),
                             lung_base_z=None if base_cut else round(float(bottom), 1),
                             apex_beyond_scan=bool(apex_cut), base_beyond_scan=bool(base_cut))
            evidence.append(f"lungs (air-like HU, median {med:.0f}) over {top - bottom:.0f} mm: apex "
                            + ("beyond the scan's top" if apex_cut else f"at z {top:.0f}")
                            + ", base " + ("beyond the scan's bottom" if base_cut else f"at z {bottom:.0f}"))
    if lungs is None:
        evidence.append("no lungs in the image")
    # skull: a bone ring enclosing brain-like HU in a head-sized section, no lungs on that slice
    bone = (sub > 300) & filled
    ring = ndimage.binary_fill_holes(bone, structure=plane) & ~bone
    inner = ring & (sub > -100) & (sub < 120)
    inner_area = inner.sum(axis=(1, 2)) * pix_cm2
    skull = (inner_area >= SKULL_MIN_INTERIOR_CM2) & (body_area <= HEAD_MAX_AREA_CM2) & ~lungish
    if skull.any():
        # brain-like HU inside: median of the enclosed voxels 0..80 HU
        ks = np.nonzero(skull)[0]
        vals = sub[ks][inner[ks]]
        if len(ks) * slab_mm >= 15.0 and 0.0 <= float(np.median(vals)) <= 80.0:
            sz = zs[ks]
            landmarks["skull_z"] = [round(float(sz.min()), 1), round(float(sz.max()), 1)]
            evidence.append(f"skull (bone ring around brain-like HU) over z {sz.min():.0f}..{sz.max():.0f}")
    # legs: two separate body sections of similar size below everything else
    two = 0
    for k in range(0, sub.shape[0], max(1, sub.shape[0] // 12)):
        if not body[k].any():
            continue
        bl, bn = ndimage.label(body[k])
        if bn >= 2:
            s = np.sort(np.bincount(bl.ravel())[1:])[::-1] * pix_cm2
            if s[1] >= 40.0 and s[1] >= 0.4 * s[0]:
                two += 1
    if two >= 2 and lungs is None and landmarks["skull_z"] is None:
        landmarks["legs"] = True
        evidence.append("two separate body sections (legs)")

    intervals = _region_intervals(landmarks, z_lo, z_hi)
    regions = [r for r in REGIONS if r in intervals and _overlap(intervals[r], z_lo, z_hi) >= MIN_REGION_OVERLAP_MM]
    return FieldOfView(regions, (z_lo, z_hi), intervals, landmarks, evidence)


def _longest_run(flags: np.ndarray, max_gap: int = 1):
    best, start, last = None, None, None
    for i, f in enumerate(flags):
        if not f:
            continue
        if start is None or i - last > max_gap:
            start = i
        last = i
        if best is None or last - start > best[1] - best[0]:
            best = (start, last)
    return best


def _overlap(iv, lo: float, hi: float) -> float:
    a = lo if iv[0] is None else max(lo, iv[0])
    b = hi if iv[1] is None else min(hi, iv[1])
    return max(0.0, b - a)


def _region_intervals(lm: dict, z_lo: float, z_hi: float) -> dict:
    """Each region's z interval from the landmarks; regions that cannot be placed are left out when
    the image says they are absent, or get an open interval when nothing can be said."""
    apex, base = lm["lung_apex_z"], lm["lung_base_z"]
    have_lungs = apex is not None or base is not None or lm["apex_beyond_scan"] or lm["base_beyond_scan"]
    if have_lungs:
        # beyond the scan: the most permissive position (apex at the top, base at the bottom)
        if apex is None and lm["apex_beyond_scan"]:
            apex = max(z_hi, base + LUNG_HEIGHT_MM if base is not None else z_hi)
        if base is None and lm["base_beyond_scan"]:
            base = min(z_lo, apex - LUNG_HEIGHT_MM if apex is not None else z_lo)
        ref = {"apex": apex, "base": base}
        out = {}
        for r, (mark, lo, hi) in REGION_SPANS.items():
            z0 = ref[mark]
            out[r] = (None if lo is None else z0 + lo, None if hi is None else z0 + hi)
        out["chest"] = (base - 20.0, apex + 30.0)
        return out
    if lm["skull_z"] is not None:
        s_lo = lm["skull_z"][0]
        return {"head": (s_lo - 80.0, None), "neck": (s_lo - 220.0, s_lo + 20.0)}
    if lm["legs"]:
        return {"legs": (None, None), "pelvis": (z_hi - 60.0, None)}
    # no lungs, no skull, one body section: below the chest (abdomen / pelvis / thighs)
    return {"abdomen": (None, None), "pelvis": (None, None), "legs": (None, None)}


# -- the assessment --------------------------------------------------------------------------------
def assess(volume: Volume, labels: LabelMap, *, confidences: dict | None = None, calibration: dict | None = None,
           fov: FieldOfView | None = None) -> QualityAssessment:
    """Field of view, plausibility and calibrated confidence of every structure in ``labels``.

    ``confidences``: raw model score per label value (None for classical / imported labels);
    ``calibration``: see ``calibrate`` (e.g. ``default_calibration()`` for the bundled model).
    Nothing is changed: ``apply_removals`` takes the removed structures out of a label map.
    """
    t0 = time.perf_counter()
    if fov is None:
        fov = field_of_view(volume)
    t1 = time.perf_counter()
    table = anatomy()["structures"]
    aff = labels.affine
    arr = labels.array
    n_values = max([lab.value for lab in labels.labels] + [0]) + 1
    n_values = max(n_values, int(arr.max(initial=0)) + 1)
    za, xa = _axis_of(aff, 2), _axis_of(aff, 0)
    ya = ({0, 1, 2} - {za, xa}).pop() if za != xa else (za + 1) % 3
    prof = {a: _profiles(arr, a, n_values) for a in (za, xa, ya)}
    zc = _world_coord(aff, arr.shape, za, 2)
    xc = _world_coord(aff, arr.shape, xa, 0)
    vml = labels.voxel_volume_ml
    geo: dict[str, dict] = {}
    out: dict[str, StructureQuality] = {}
    for lab in labels.labels:
        pz = prof[za][:, lab.value]
        n = int(pz.sum())
        if n == 0:
            continue
        px = prof[xa][:, lab.value]
        cut = any(prof[a][0, lab.value] > 0 or prof[a][-1, lab.value] > 0 for a in (za, xa, ya))
        raw = None if confidences is None else confidences.get(lab.value)
        sq = StructureQuality(lab.name, lab.value, "ok", [], calibrate(raw, lab.name, calibration), raw,
                              n * vml, n, 1, bool(cut))
        out[lab.name] = sq
        py = prof[ya][:, lab.value]
        bbox = {a: (int(np.nonzero(pp)[0].min()), int(np.nonzero(pp)[0].max()) + 1)
                for a, pp in ((za, pz), (xa, px), (ya, py))}
        geo[lab.name] = {"z": float(pz @ zc / n), "x": float(px @ xc / n), "z_top": _top(pz, zc),
                         "z_profile": pz, "bbox": tuple(bbox[a] for a in range(3))}
    t2 = time.perf_counter()
    # 1. field of view
    for name, sq in out.items():
        spec = table.get(name)
        if spec is None:
            continue
        allowed = [r for r in spec["regions"] if r in fov.intervals]
        if not allowed:
            sq.status = "removed"
            sq.reasons.append(f"a {name.replace('_', ' ')} belongs to the {_join(spec['regions'])}, which the image "
                              f"shows is not in this scan (covered: {_join(fov.regions) or 'nothing recognised'})")
            continue
        pz = geo[name]["z_profile"]
        inside = np.zeros(len(pz), bool)
        for r in allowed:
            lo, hi = fov.intervals[r]
            inside |= (zc >= (-np.inf if lo is None else lo)) & (zc <= (np.inf if hi is None else hi))
        frac = float(pz[inside].sum()) / max(1, int(pz.sum()))
        if frac < INSIDE_FRACTION:
            sq.status = "removed"
            sq.reasons.append(f"{(1 - frac) * 100:.0f} % of it lies outside the {_join(allowed)} "
                              f"(z {geo[name]['z']:.0f} mm; {_describe_landmarks(fov)}), where it cannot be")
    # 2. plausibility (structures still in)
    for name, sq in out.items():
        spec = table.get(name)
        if spec is None or sq.status == "removed":
            continue
        lo, hi = spec["volume_ml"]
        if hi is not None and sq.volume_ml > hi:
            sq.reasons.append(f"volume {sq.volume_ml:.0f} ml is above the adult range (<= {hi:g} ml)")
        if lo is not None and sq.volume_ml < lo:
            if sq.cut_by_fov:
                pass  # partly outside the scan: a small volume says nothing
            else:
                sq.reasons.append(f"volume {sq.volume_ml:.1f} ml is below the adult range (>= {lo:g} ml) and "
                                  "the structure is not cut by the scan's edge")
        if spec.get("components"):
            sq.pieces = _pieces(arr, geo[name]["bbox"], lab_value=sq.value, vml=vml)
            if sq.pieces > spec["components"]:
                sq.reasons.append(f"{sq.pieces} separate pieces (an adult has {spec['components']})")
    present = {n for n, s in out.items() if s.status != "removed"}
    for a, rel, b in anatomy()["relations"]:
        if a not in present or b not in present:
            continue
        ga, gb = geo[a], geo[b]
        if rel == "right_of" and not ga["x"] < gb["x"]:  # LPS: +x is the patient's left
            msg = (f"{_h(a)} lies to the patient's left of the {_h(b)} ({abs(ga['x'] - gb['x']):.0f} mm); "
                   "it should be to the right")
            out[a].reasons.append(msg)
            out[b].reasons.append(msg)
        elif rel == "above" and not ga["z"] > gb["z"]:
            msg = f"{_h(a)} lies below the {_h(b)} ({gb['z'] - ga['z']:.0f} mm); it should be above"
            out[a].reasons.append(msg)
            out[b].reasons.append(msg)
        elif rel == "top_above" and not ga["z_top"] > gb["z_top"]:
            msg = f"the top of the {_h(b)} is above the top of the {_h(a)}; the lungs reach above the liver dome"
            out[a].reasons.append(msg)
            out[b].reasons.append(msg)
    for sq in out.values():
        if sq.status == "ok" and sq.reasons:
            sq.status = "flagged"
    t3 = time.perf_counter()
    return QualityAssessment(out, fov, calibration, {"field_of_view": t1 - t0, "measure": t2 - t1,
                                                     "plausibility": t3 - t2, "total": t3 - t0})


def _h(name: str) -> str:
    return name.replace("_", " ")


def _join(items) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1] if items else ""


def _describe_landmarks(fov: FieldOfView) -> str:
    lm = fov.landmarks
    parts = []
    if lm.get("lung_apex_z") is not None:
        parts.append(f"lung apex at z {lm['lung_apex_z']:.0f}")
    if lm.get("lung_base_z") is not None:
        parts.append(f"lung base at z {lm['lung_base_z']:.0f}")
    if lm.get("skull_z") is not None:
        parts.append(f"skull at z {lm['skull_z'][0]:.0f}..{lm['skull_z'][1]:.0f}")
    return ", ".join(parts) or "from the image"


def _top(profile: np.ndarray, z: np.ndarray, q: float = 0.98) -> float:
    """The z below which ``q`` of a structure's voxels lie (its top, ignoring a few stray voxels)."""
    order = np.argsort(z)
    c = np.cumsum(profile[order])
    return float(z[order][min(int(np.searchsorted(c, q * c[-1])), len(z) - 1)])


def _pieces(arr: np.ndarray, bbox, *, lab_value: int, vml: float) -> int:
    """Separate pieces of a structure (26-connected; specks below PIECE_MIN_* not counted)."""
    from scipy import ndimage

    (a0, a1), (b0, b1), (c0, c1) = bbox
    st = 2 if (a1 - a0) * (b1 - b0) * (c1 - c0) > 4_000_000 else 1  # pieces, not voxels: half resolution will do
    m = arr[a0:a1:st, b0:b1:st, c0:c1:st] == lab_value
    vml = vml * st**3
    if not m.any():
        return 0
    lab, n = ndimage.label(m, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return n
    sizes = np.bincount(lab.ravel())[1:]
    keep = sizes >= max(PIECE_MIN_FRACTION * sizes.max(), PIECE_MIN_ML / max(vml, 1e-12))
    return int(keep.sum())


def apply_removals(labels: LabelMap, qa: QualityAssessment) -> LabelMap:
    """``labels`` without the structures the gate removed (their voxels become background, their
    table entries are dropped). Returns ``labels`` itself when nothing was removed."""
    gone = {s.value for s in qa.structures.values() if s.status == "removed"}
    if not gone:
        return labels
    arr = labels.array.copy()
    lut = np.arange(max(int(arr.max(initial=0)) + 1, max(gone) + 1), dtype=arr.dtype)
    lut[list(gone)] = 0
    arr = lut[arr]
    table = LabelTable([lab for lab in labels.labels if lab.value not in gone])
    from dataclasses import replace

    return replace(labels, array=arr, labels=table)
