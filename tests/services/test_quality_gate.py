"""The quality gate in a case: the record, downstream steps refusing flagged structures, confirmation."""

from __future__ import annotations

import numpy as np
import pytest

from surgtwin.core.case import Case, Provenance
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.segmentation import SegmentationResult, structure_reports
from surgtwin.core.types import Label, LabelMap, LabelTable, Volume
from surgtwin.services import pipeline, quality

AFFINE = np.array([[0, 0, 4.0, -200], [0, 4.0, 0, -200], [4.0, 0, 0, -400], [0, 0, 0, 1]])


def _volume() -> Volume:
    arr = np.full((60, 100, 100), -1000, np.int16)
    arr[:, 15:85, 10:90] = 40  # one body section, no lungs, no skull: abdomen/pelvis
    return Volume(arr, AFFINE.copy(), modality="CT")


def _result(liver_left: bool) -> SegmentationResult:
    arr = np.zeros((60, 100, 100), np.uint8)
    lx, sx = ((60, 85), (20, 32)) if liver_left else ((20, 45), (60, 72))
    arr[20:45, 40:65, lx[0]:lx[1]] = 5  # liver, 1000 ml
    arr[28:36, 40:60, sx[0]:sx[1]] = 1  # spleen, 123 ml
    arr[10:20, 30:50, 45:55] = 3  # kidney_left, 128 ml, midline: fine alone
    lab = LabelMap(arr, AFFINE.copy(), labels=LabelTable([Label(5, "liver"), Label(1, "spleen"),
                                                          Label(3, "kidney_left")]))
    return SegmentationResult(lab, structure_reports(lab, {5: 0.9, 1: 0.8, 3: 0.85}), "model", model="test 1")


def _case(liver_left=True) -> Case:
    vol = _volume()
    case = Case(vol, name="gate")
    gate = quality.gate_segmentation(vol, _result(liver_left))
    case.set_labels(gate.labels, Provenance("segment:model"))
    case.set_item(quality.QUALITY_KEY, gate.record, quality.provenance_for(gate.record))
    return case


def test_flagged_structures_block_mesh_until_confirmed():
    case = _case(liver_left=True)
    assert quality.unconfirmed(case) == ["liver", "spleen"]
    st = quality.structure_status(case)
    assert st["kidney_left"]["status"] == "ok" and st["liver"]["status"] == "flagged"
    assert "left of the spleen" in st["liver"]["reasons"][0]
    with pytest.raises(SurgtwinError) as e:
        pipeline.prepare_step(case, "mesh")
    assert "liver, spleen" in str(e.value) and "surgtwin case confirm CASE --structures liver,spleen" in e.value.hint
    pipeline.prepare_step(case, "mesh", structures=["kidney_left"])  # a structure that is not flagged
    assert quality.confirm_structures(case, ["liver"]) == ["liver"]
    with pytest.raises(SurgtwinError, match="spleen"):
        pipeline.prepare_step(case, "mesh")
    assert quality.confirm_structures(case, "all") == ["spleen"]
    out = pipeline.run_step(case, "mesh")
    assert set(out.summary["structures"]) == {"liver", "spleen", "kidney_left"}
    assert quality.structure_status(case)["liver"]["status"] == "confirmed"
    with pytest.raises(SurgtwinError, match="no structure named 'heart'"):
        quality.confirm_structures(case, ["heart"])


def test_a_plausible_segmentation_passes_and_imported_labels_are_not_gated():
    case = _case(liver_left=False)
    assert quality.unconfirmed(case) == [] and pipeline.prepare_step(case, "mesh") is not None
    flagged = _case(liver_left=True)
    flagged.set_labels(flagged.labels, Provenance("import", {"file": "truth.nii.gz"}))
    assert quality.quality_record(flagged) is None  # the record describes other labels now
    pipeline.prepare_step(flagged, "mesh")


def test_editing_a_flagged_structure_by_hand_counts_as_the_users_decision():
    case = _case(liver_left=True)
    lab = case.labels
    lab.array[44, 40:65, 60:85] = 0  # the user trims the liver
    case.notify_labels_edited()
    assert quality.structure_status(case)["liver"]["status"] == "edited"
    assert quality.unconfirmed(case) == ["spleen"]


def test_case_round_trip_keeps_the_record_and_the_gate(tmp_path):
    case = _case(liver_left=True)
    quality.confirm_structures(case, ["spleen"])
    p = pipeline.save_case(case, tmp_path / "g.stwin")
    back = pipeline.load_case(p)
    assert back.item("quality").value == case.item("quality").value
    assert quality.unconfirmed(back) == ["liver"] and not back.is_stale("quality")
    with pytest.raises(SurgtwinError, match="liver"):
        pipeline.prepare_step(back, "mesh")


def test_the_segment_step_stores_an_assessment(monkeypatch):
    """Every segmentation the step makes is assessed and the removed structures leave the labels."""
    import surgtwin.core.segmentation as seg

    vol = _volume()
    res = _result(liver_left=True)
    arr = res.labels.array.copy()
    arr[2:8, 30:40, 30:40] = 91  # a "skull" in an abdomen: removed
    lab = LabelMap(arr, AFFINE.copy(), labels=LabelTable([*res.labels.labels, Label(91, "skull")]))
    fake = SegmentationResult(lab, structure_reports(lab, {5: 0.9, 1: 0.8, 3: 0.85, 91: 0.7}), "classical")
    monkeypatch.setattr(seg, "segment", lambda *a, **k: fake)
    case = Case(vol, name="seg")
    out = pipeline.run_step(case, "segment", method="classical")
    rec = quality.quality_record(case)
    assert rec is not None and rec["structures"]["skull"]["status"] == "removed"
    assert "skull" not in {x.name for x in case.labels.labels} and not np.any(case.labels.array == 91)
    assert out.summary["structures"]["skull"]["status"] == "removed"
    assert quality.unconfirmed(case) == ["liver", "spleen"]
