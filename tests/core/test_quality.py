"""Segmentation quality gate (core): plausibility, field of view, removal, calibration, records."""

from __future__ import annotations

import numpy as np
import pytest

from surgtwin.core.segmentation.quality import (
    REGIONS,
    FieldOfView,
    QualityAssessment,
    apply_removals,
    assess,
    calibrate,
    field_of_view,
)
from surgtwin.core.types import Label, LabelMap, LabelTable, Volume

VALUES = {"liver": 5, "spleen": 1, "kidney_left": 3, "kidney_right": 2, "lung_left": 10, "lung_right": 11,
          "vertebrae": 20, "pelvis": 25}
# array axes (z, y, x) -> LPS (x, y, z), 4 mm voxels, index 0 at the feet
AFFINE = np.array([[0, 0, 4.0, -200], [0, 4.0, 0, -200], [4.0, 0, 0, -400], [0, 0, 0, 1]])
SHAPE = (100, 100, 100)


def _labels(boxes: dict) -> LabelMap:
    """``boxes``: name -> list of (z0, z1, y0, y1, x0, x1) index boxes."""
    arr = np.zeros(SHAPE, np.uint8)
    for name, bs in boxes.items():
        for z0, z1, y0, y1, x0, x1 in bs:
            arr[z0:z1, y0:y1, x0:x1] = VALUES[name]
    table = LabelTable([Label(VALUES[n], n) for n in boxes])
    return LabelMap(arr, AFFINE.copy(), labels=table)


def _open_fov() -> FieldOfView:
    return FieldOfView(list(REGIONS), (-400.0, 0.0), {r: (None, None) for r in REGIONS}, {}, ["test"])


def _ct() -> Volume:
    return Volume(np.full(SHAPE, 40, np.int16), AFFINE.copy(), modality="CT")


def _assess(boxes, **kw):
    return assess(_ct(), _labels(boxes), fov=_open_fov(), **kw)


# liver 1000 ml (25 x 25 x 25 voxels of 64 mm3), spleen 128 ml
LIVER_RIGHT = (40, 65, 40, 65, 20, 45)  # x index 20..45: LPS x < 0 = patient's right
SPLEEN_LEFT = (50, 58, 40, 60, 60, 72)


def test_liver_right_of_spleen_is_ok_and_left_of_it_is_flagged():
    ok = _assess({"liver": [LIVER_RIGHT], "spleen": [SPLEEN_LEFT]})
    assert ok.structures["liver"].status == "ok" and ok.structures["spleen"].status == "ok"
    assert ok.flagged == [] and ok.removed == []
    liver_left = (40, 65, 40, 65, 60, 85)
    spleen_right = (50, 58, 40, 60, 20, 32)
    bad = _assess({"liver": [liver_left], "spleen": [spleen_right]})
    assert set(bad.flagged) == {"liver", "spleen"}
    assert "to the patient's left of the spleen" in bad.structures["liver"].reasons[0]


def test_volume_out_of_the_adult_range_is_flagged_unless_cut_by_the_scan():
    big = (30, 58, 30, 60, 20, 50)  # 28 x 30 x 30 voxels = 1613 ml: no kidney is that big
    qa = _assess({"kidney_right": [big]})
    assert qa.structures["kidney_right"].status == "flagged"
    assert "above the adult range" in qa.structures["kidney_right"].reasons[0]
    small = (40, 44, 40, 44, 20, 24)  # 4 ml, inside the scan
    qa = _assess({"kidney_right": [small]})
    assert "below the adult range" in qa.structures["kidney_right"].reasons[0]
    at_edge = (0, 4, 40, 44, 20, 24)  # the same at the scan's last slice: partly outside, not judged
    qa = _assess({"kidney_right": [at_edge]})
    assert qa.structures["kidney_right"].status == "ok" and qa.structures["kidney_right"].cut_by_fov


def test_three_lungs_are_flagged():
    left_a, left_b = (50, 80, 30, 70, 60, 75), (50, 80, 30, 70, 80, 95)
    right = (50, 80, 30, 70, 10, 40)
    qa = _assess({"lung_left": [left_a, left_b], "lung_right": [right]})
    assert qa.structures["lung_left"].status == "flagged" and qa.structures["lung_left"].pieces == 2
    assert "2 separate pieces (an adult has 1)" in qa.structures["lung_left"].reasons
    assert qa.structures["lung_right"].status == "ok"


def test_kidneys_either_side_of_the_spine():
    spine = [(20, 60, 60, 70, 47, 53)]
    good = _assess({"vertebrae": spine, "kidney_right": [(40, 52, 48, 60, 28, 38)],
                    "kidney_left": [(40, 52, 48, 60, 62, 72)]})
    assert good.flagged == []
    both_left = _assess({"vertebrae": spine, "kidney_right": [(40, 52, 48, 60, 54, 64)],
                         "kidney_left": [(40, 52, 48, 60, 66, 76)]})
    assert "kidney_right" in both_left.flagged


def test_a_pelvis_where_the_image_shows_a_chest_is_removed_and_apply_removals_clears_it():
    lab = _labels({"pelvis": [(50, 60, 40, 60, 30, 70)], "liver": [LIVER_RIGHT]})
    # the image says: lungs from z -150 (base) to z 0 (apex beyond the top)
    fov = FieldOfView(["chest", "abdomen"], (-400.0, -4.0),
                      {"chest": (-170.0, 30.0), "abdomen": (-450.0, 0.0), "pelvis": (-630.0, -320.0)},
                      {"lung_base_z": -150.0}, [])
    qa = assess(_ct(), lab, fov=fov)
    assert qa.removed == ["pelvis"] and "outside the pelvis" in qa.structures["pelvis"].reasons[0]
    out = apply_removals(lab, qa)
    assert not np.any(out.array == VALUES["pelvis"]) and np.count_nonzero(out.array == VALUES["liver"]) > 0
    assert [x.name for x in out.labels] == ["liver"]
    # a region the image rules out entirely
    fov2 = FieldOfView(["head"], (-400.0, -4.0), {"head": (None, None)}, {}, [])
    assert "which the image shows is not in this scan" in assess(_ct(), lab, fov=fov2).structures["pelvis"].reasons[0]


def test_calibrate_maps_raw_scores_monotonically_and_passes_through_without_calibration():
    cal = {"global": {"a": 2.0, "b": -1.0}, "per_structure": {}}
    assert calibrate(0.8, "liver", None) == 0.8 and calibrate(None, "liver", cal) is None
    ps = [calibrate(r, "liver", cal) for r in (0.5, 0.7, 0.9, 0.99)]
    assert all(0 < p < 1 for p in ps) and ps == sorted(ps)


def test_assessment_json_round_trip():
    qa = _assess({"liver": [(40, 65, 40, 65, 60, 85)], "spleen": [(50, 58, 40, 60, 20, 32)]},
                 confidences={5: 0.9, 1: 0.7})
    back = QualityAssessment.from_json(qa.to_json())
    assert back.to_json() == qa.to_json()
    assert back.structures["liver"].raw_confidence == pytest.approx(0.9)


def _sample_volume(name):
    from surgtwin import resources
    from surgtwin.services import pipeline

    folder = resources.sample_root() / name
    if not (folder / "dicom").is_dir():
        pytest.skip(f"sample {name} not installed")
    case = pipeline.new_case(folder)
    return case.volume, case.labels


@pytest.mark.slow
@pytest.mark.parametrize("name, must, must_not", [
    ("head", {"head"}, {"chest", "abdomen", "pelvis", "legs"}),
    ("abdomen-pelvis", {"abdomen", "pelvis"}, {"head", "neck"}),
    ("cardiac-cta", {"chest"}, {"head", "pelvis", "legs"}),
])
def test_field_of_view_of_the_samples_and_nothing_correct_is_dropped(name, must, must_not):
    """Phantoms with ground-truth labels: regions from the image; no true structure removed or flagged."""
    from surgtwin.core.segmentation.classes import MODEL_CLASSES

    vol, labels = _sample_volume(name)
    fov = field_of_view(vol)
    assert must <= set(fov.regions) and not (must_not & set(fov.regions)), fov.evidence
    qa = assess(vol, labels)
    model_names = {n for n, _p, _t in MODEL_CLASSES}
    checked = {n: s for n, s in qa.structures.items() if n in model_names}
    assert checked and all(s.status == "ok" for s in checked.values()), {
        n: s.reasons for n, s in checked.items() if s.status != "ok"}


def test_the_bundled_calibration_is_installed_and_improves_the_calibration_error():
    from surgtwin.core.segmentation.quality import default_calibration

    cal = default_calibration()
    assert cal is not None and cal["model"] == "surgtwin_ct_multiorgan"
    assert cal["ece_after"] < cal["ece_before"]
    assert calibrate(0.95, "liver", cal) > calibrate(0.6, "liver", cal)
