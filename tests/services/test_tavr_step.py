"""The "tavr" pipeline step: the record's fields, provenance, case save/load and re-placing the valve."""

from __future__ import annotations

import json

import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.services import pipeline
from surgtwin.services import tavr as svc


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    case = pipeline.new_case(pipeline.sample_root() / "cardiac-cta")
    out = pipeline.run_step(case, "tavr", bsa_m2=1.9)
    return case, out


def test_step_record_fields(planned):
    case, out = planned
    rec = case.item("tavr").value
    assert set(rec) == {"schema", "measurement", "sizing", "valve", "hemodynamics", "ppm", "pvl_risk", "parameters",
                        "warnings"}
    m = rec["measurement"]
    for key in ("centre_lps", "normal_lps", "u_lps", "v_lps", "contour_lps", "perimeter_mm", "area_mm2",
                "diameter_min_mm", "diameter_max_mm", "eccentricity", "area_derived_diameter_mm",
                "perimeter_derived_diameter_mm", "coronary_height_left_mm", "coronary_height_right_mm",
                "sinus_diameter_mm", "stj_diameter_mm", "stj_height_mm", "calcium"):
        assert m[key] is not None, key
    assert len(m["contour_lps"][0]) == 3
    assert rec["sizing"]["balloon-expandable"]["recommended"] == "26"
    assert rec["sizing"]["self-expanding"]["recommended"] == "29"
    v = rec["valve"]
    assert v["family"] == "balloon-expandable" and v["size"] == "26" and v["depth_mm"] == 3.0
    assert v["implant_family"] == "valve-balloon-expandable" and len(v["matrix_lps"]) == 4
    assert rec["hemodynamics"]["mean_gradient_mmhg"] == pytest.approx(10.08, abs=0.01)
    assert rec["ppm"]["ppm"] == "none" and rec["pvl_risk"]["level"] in ("low", "moderate", "high")
    json.dumps(rec, allow_nan=False)
    prov = case.item("tavr").provenance
    assert prov.method == "tavr" and set(prov.inputs) == {"labels", "volume"}
    assert prov.parameters["valve"] == {"family": "balloon-expandable", "size": "26", "depth_mm": 3.0}
    assert out.summary["recommended"] == {"balloon-expandable": "26", "self-expanding": "29"}


def test_round_trip_through_case_file(planned, tmp_path):
    case, _ = planned
    path = pipeline.save_case(case, tmp_path / "tavr.stwin")
    back = pipeline.load_case(path)
    assert back.item("tavr").value == case.item("tavr").value
    assert not back.is_stale("tavr")
    back.notify_labels_edited()  # a label edit would make the plan stale (labels hash changes on edit)


def test_replace_valve_without_measuring(planned):
    case, _ = planned
    rec = case.item("tavr").value
    r2 = svc.replace_valve(rec, family="self-expanding", depth_mm=5.0)
    assert r2["measurement"] == rec["measurement"]
    assert r2["valve"]["size"] == "29" and r2["valve"]["depth_mm"] == 5.0
    assert r2["valve"]["matrix_lps"][2][3] != rec["valve"]["matrix_lps"][2][3]
    assert r2["hemodynamics"]["mean_gradient_mmhg"] < rec["hemodynamics"]["mean_gradient_mmhg"]  # EOA 2.1 > 1.7
    r3 = svc.replace_valve(rec, size="29")
    assert any("differs from the chart" in w for w in r3["warnings"])
    with pytest.raises(SurgtwinError, match="no size"):
        svc.replace_valve(rec, size="34")
    stored = svc.store_valve(case, depth_mm=2.0)
    assert case.item("tavr").value["valve"]["depth_mm"] == 2.0 == stored["valve"]["depth_mm"]


def test_step_needs_labels_or_hinges():
    from surgtwin.core.case import Case

    case = pipeline.new_case(pipeline.sample_root() / "cardiac-cta")
    bare = Case(case.volume, name="bare")
    with pytest.raises(SurgtwinError, match="label map .* or three hinge points"):
        pipeline.run_step(bare, "tavr")


def _series_with_body(folder, size, weight):
    import pydicom

    from tests.dicom_factory import write_series

    truth = write_series(folder, shape=(4, 16, 16), name="body")
    for f in truth.files:
        ds = pydicom.dcmread(f)
        if size is not None:
            ds.PatientSize = size
        if weight is not None:
            ds.PatientWeight = weight
        ds.save_as(f, enforce_file_format=True)
    return pipeline.new_case(folder)


def test_body_size_from_the_dicom_header(tmp_path):
    body, why = svc.body_size_from_header(_series_with_body(tmp_path / "a", "1.80", "80"))
    assert why is None and body["bsa_m2"] == 2.0 and body["bmi"] == pytest.approx(24.7)  # sqrt(180*80/3600)
    assert "PatientSize 1.8 m, PatientWeight 80 kg" in body["source"]
    # a height written in centimetres is refused with the reason, never guessed
    body, why = svc.body_size_from_header(_series_with_body(tmp_path / "b", "180", "80"))
    assert body is None and "PatientSize 180 (metres expected" in why
    # missing or zero: nothing (no warning)
    assert svc.body_size_from_header(_series_with_body(tmp_path / "c", None, "80")) == (None, None)
    assert svc.body_size_from_header(_series_with_body(tmp_path / "d", "0", "0")) == (None, None)


def test_the_step_takes_the_bsa_from_the_header_unless_given(monkeypatch):
    case = pipeline.new_case(pipeline.sample_root() / "cardiac-cta")
    monkeypatch.setattr(svc, "body_size_from_header", lambda c: (
        {"bsa_m2": 1.5, "bmi": 22.0, "height_m": 1.6, "weight_kg": 56.3, "source": "DICOM header: test"}, None))
    pipeline.run_step(case, "tavr")
    rec = case.item("tavr").value
    p = rec["parameters"]
    assert p["bsa_m2"] == 1.5 and p["bmi"] == 22.0 and p["bsa_source"] == "DICOM header: test"
    assert rec["ppm"]["bsa_m2"] == 1.5
    pipeline.run_step(case, "tavr", bsa_m2=2.1)  # given: the header is not used
    p = case.item("tavr").value["parameters"]
    assert p["bsa_m2"] == 2.1 and p["bsa_source"] == "given"
    monkeypatch.setattr(svc, "body_size_from_header", lambda c: (None, "BSA not taken from the DICOM header: x"))
    pipeline.run_step(case, "tavr")
    rec = case.item("tavr").value
    assert rec["ppm"] is None and "BSA not taken from the DICOM header: x" in rec["warnings"]
