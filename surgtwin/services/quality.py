"""The segmentation quality gate over a case (see ``surgtwin.core.segmentation.quality`` for the checks).

Every segmentation the ``segment`` step (or ``surgtwin segment``) makes is assessed: structures the
scan cannot contain are **removed** from the label map, implausible ones are **flagged**, and the
verdict is stored in the case as the ``quality`` item (kind ``records``). Downstream steps that use
the labels (mesh, tet, fem, centerline, flow, tavr, trajectory, implant: ``GATED_STEPS``) refuse
while a structure they use is flagged and unconfirmed, naming it and saying how to confirm.

For the app (no Qt here; call on the case's thread)::

    from surgtwin.services import quality
    rec = quality.quality_record(case)        # the stored record (dict) or None
    quality.structure_status(case)            # {name: {"status", "reasons", "confidence"}} for the
                                              # structure list; status "ok" | "flagged" | "removed" |
                                              # "confirmed" | "edited" (flagged, then edited by hand)
    quality.unconfirmed(case)                 # names that block downstream steps (banner)
    quality.confirm_structures(case, ["liver"])   # or quality.confirm_structures(case, "all")

The record (``case.item("quality").value``), JSON::

    {"schema": 1, "method": "model" | "classical", "model": "...", "labels_hash": "<sha256>",
     "structures": {name: {"name", "value", "status", "reasons": [str], "confidence": p | None,
                           "raw_confidence", "volume_ml", "voxels", "pieces", "cut_by_fov",
                           "confirmed_at"?: iso time}},
     "fov": {"regions": [...], "z_range_mm": [lo, hi], "intervals": {...}, "landmarks": {...},
             "evidence": [str]},
     "calibration": {"method", "fitted_on", "target", "ece_before", "ece_after"} | None,
     "timings_s": {...}}

Its provenance records the labels' content hash after the gate (``inputs["labels"]``).

Decisions:

* Only the model's and the classical method's results are gated. Imported labels (a sample case's
  ground truth, a file the user opens) and labels painted by hand are the user's own: no record, no
  gate.
* An edit by hand of a flagged structure counts as the user's decision for it: a structure whose
  voxel count differs from the assessed one no longer blocks (status "edited"). Removed structures
  are not in the label map; painting them back is likewise the user's decision.
* A record describes the label map it was made for (``labels_hash`` = the labels item's produced
  hash); when the labels are replaced (a new import) the old record no longer gates anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from surgtwin.core.case import Case, Provenance
from surgtwin.core.errors import SurgtwinError

QUALITY_KEY = "quality"
#: steps that refuse flagged, unconfirmed structures among their inputs
GATED_STEPS = ("mesh", "tet", "fem", "centerline", "flow", "tavr", "trajectory", "implant")


@dataclass
class GateResult:
    """A segmentation after the gate: the label map without removed structures, the assessment."""

    labels: object  # LabelMap
    assessment: object  # QualityAssessment
    record: dict


def gate_segmentation(volume, result, *, calibration: dict | None | str = "default") -> GateResult:
    """Assess a ``SegmentationResult`` of ``volume`` and take out the removed structures.

    ``calibration``: "default" (the bundled model's, applied only to the bundled model's results),
    a calibration dict, or None (raw scores)."""
    from surgtwin.core.case.model import labels_content_hash
    from surgtwin.core.segmentation.quality import apply_removals, assess, default_calibration

    if calibration == "default":
        calibration = default_calibration()
        if calibration is not None and (result.method != "model"
                                        or not str(result.model or "").startswith(calibration.get("model", "?"))):
            calibration = None
    conf = {s.value: s.confidence for s in result.structures if s.confidence is not None} or None
    qa = assess(volume, result.labels, confidences=conf, calibration=calibration)
    labels = apply_removals(result.labels, qa)
    record = record_array_free({"schema": 1, "method": result.method, "model": result.model,
                                "labels_hash": labels_content_hash(labels), **qa.to_json()})
    return GateResult(labels, qa, record)


def provenance_for(record: dict) -> Provenance:
    return Provenance("quality-gate", {"method": record.get("method"), "model": record.get("model")},
                      {"labels": record["labels_hash"]})


def quality_record(case: Case) -> dict | None:
    """The case's quality record when it describes the current label map's production, else None."""
    it = case.item(QUALITY_KEY)
    lab = case.item("labels")
    if it is None or lab is None:
        return None
    rec = it.value
    if not lab.provenance.method.startswith("segment") or rec.get("labels_hash") != lab.produced_hash:
        return None  # the labels were replaced since: this record is about other labels
    return rec


def _current_counts(case: Case, rec: dict) -> dict[str, int]:
    from surgtwin.core.segmentation import structure_reports

    voxels = {r.name: r.voxels for r in structure_reports(case.labels)}
    return {n: int(voxels.get(n, 0)) for n in rec.get("structures", {})}


def structure_status(case: Case) -> dict[str, dict]:
    """Per structure of the record: status ("edited" when a flagged structure was changed by hand
    since), reasons and calibrated confidence. Empty when the case has no applicable record."""
    rec = quality_record(case)
    if rec is None:
        return {}
    edited = case.labels_edited_by_hand()
    counts = _current_counts(case, rec) if edited else {}
    out = {}
    for name, s in rec["structures"].items():
        status = s["status"]
        if status == "flagged" and edited and counts.get(name, 0) != s.get("voxels"):
            status = "edited"
        out[name] = {"status": status, "reasons": list(s.get("reasons", [])), "confidence": s.get("confidence"),
                     "volume_ml": s.get("volume_ml")}
    return out


def unconfirmed(case: Case, structures=None) -> list[str]:
    """Flagged structures (among ``structures``, default all) that are neither confirmed nor edited."""
    st = structure_status(case)
    names = sorted(n for n, s in st.items() if s["status"] == "flagged")
    if structures:
        names = [n for n in names if n in set(structures)]
    return names


def require_confirmed(case: Case, *, purpose: str = "this step", structures=None) -> None:
    """Refuse (``SurgtwinError``) while a structure in ``structures`` (default: all) is flagged."""
    names = unconfirmed(case, structures)
    if not names:
        return
    st = structure_status(case)
    why = "; ".join(f"{n}: {st[n]['reasons'][0]}" for n in names[:3] if st[n]["reasons"])
    raise SurgtwinError(f"{purpose} refuses flagged structure(s) {', '.join(names)} ({why})",
                        hint=f"check them, then confirm: surgtwin case confirm CASE --structures {','.join(names)} "
                             "(or edit them by hand, or in the app: Confirm in the structure list)")


def confirm_structures(case: Case, names) -> list[str]:
    """Mark flagged structures as confirmed by the user (``names``: a list, or "all" for every
    flagged one). Returns the names confirmed. Unknown names are refused."""
    from surgtwin.core.case.provenance import now_iso

    rec = quality_record(case)
    if rec is None:
        raise SurgtwinError("this case has no quality record for its current labels",
                            hint="only model or classical segmentations are assessed; nothing to confirm")
    structs = rec["structures"]
    if names == "all":
        names = [n for n, s in structs.items() if s["status"] == "flagged"]
    names = list(names)
    unknown = [n for n in names if n not in structs]
    if unknown:
        raise SurgtwinError(f"no structure named {', '.join(map(repr, unknown))} in the quality record",
                            hint=f"flagged: {', '.join(n for n, s in structs.items() if s['status'] == 'flagged') or 'none'}")
    new = {**rec, "structures": {k: dict(v) for k, v in structs.items()}}
    done = []
    for n in names:
        s = new["structures"][n]
        if s["status"] == "flagged":
            s["status"] = "confirmed"
            s["confirmed_at"] = now_iso()
            done.append(n)
    if done:
        old = case.item(QUALITY_KEY)
        case.set_item(QUALITY_KEY, new, old.provenance)
    return done


def counts_summary(rec: dict) -> dict[str, int]:
    out = {s: 0 for s in ("ok", "flagged", "removed", "confirmed")}
    for s in rec.get("structures", {}).values():
        out[s["status"]] = out.get(s["status"], 0) + 1
    return out


def describe(rec: dict, statuses=None) -> list[str]:
    """Lines for the CLI: regions covered and each non-ok structure with its reasons."""
    fov = rec.get("fov", {})
    c = counts_summary(rec)
    lines = [f"quality gate: scan covers {', '.join(fov.get('regions', [])) or 'no recognised region'}; "
             f"{c['ok']} ok, {c['flagged']} flagged, {c['removed']} removed, {c['confirmed']} confirmed"]
    for name, s in rec.get("structures", {}).items():
        if s["status"] == "ok" or (statuses is not None and s["status"] not in statuses):
            continue
        conf = "" if s.get("confidence") is None else f", confidence {s['confidence']:.2f}"
        lines.append(f"  {s['status'].upper()} {name} ({s.get('volume_ml', 0):.1f} ml{conf}): "
                     + "; ".join(s.get("reasons", [])))
    return lines


def record_array_free(rec: dict) -> dict:
    """The record with numpy scalars turned into Python numbers (for JSON)."""
    def conv(x):
        if isinstance(x, dict):
            return {k: conv(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [conv(v) for v in x]
        if isinstance(x, np.generic):
            return x.item()
        return x

    return conv(rec)


def usable_structures(case: Case) -> dict:
    """Options for a gated step over "everything it may use now": ``{}`` when nothing is flagged, else
    ``{"structures": [the label map's structures less the flagged, unconfirmed ones]}`` (the app
    meshes those after a segmentation; the flagged ones follow once confirmed)."""
    flagged = set(unconfirmed(case)) if case is not None and case.labels is not None else set()
    if not flagged:
        return {}
    return {"structures": [lab.name for lab in case.labels.labels if lab.name not in flagged]}
