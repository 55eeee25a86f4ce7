"""The cohort results table: one row per case, stable columns, CSV/Parquet written atomically.

The record builders here (``cardiac_record``, ``abdomen_record``, ``failed_record``, ``write_cohort``) make
schema-1 records like ``services.cohort.run_case`` writes, with chosen measurements, so that the trial
and report tests know every expected number; they are imported by test_trial and test_cohort_report.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.services import cohort
from surgtwin.services.cohort_table import BASE_COLUMNS, results_table, write_table


def _size(family, area, perimeter):
    from surgtwin.core.plan import tavr_devices as dev

    return dev.size_family(family, area, perimeter).recommended


def cardiac_record(seed: int, *, area=400.0, perimeter=72.0, d_area=0.0, d_perimeter=0.0, gradient=12.0,
                   ppm="none", pvl="low", cor_left=12.0, cor_left_found=True, seconds=(5.0, 0.5), co=5.0,
                   hr=70.0, bsa=None) -> dict:
    """An ok virtual cardiac record: true annulus ``area``/``perimeter``; measured = true + ``d_*``."""
    ma, mp = area + d_area, perimeter + d_perimeter
    rec_be, rec_se = _size("balloon-expandable", ma, mp), _size("self-expanding", ma, mp)
    tavr = {"measurement": {"method": "labels", "perimeter_mm": mp, "area_mm2": ma, "diameter_min_mm": 20.0,
                            "diameter_max_mm": 24.0, "eccentricity": 1 - 20.0 / 24.0,
                            "coronary_height_left_mm": cor_left + 0.5 if cor_left_found else None,
                            "coronary_height_right_mm": 15.0},
            "recommended": {"balloon-expandable": rec_be, "self-expanding": rec_se},
            "valve": rec_be and {"family": "balloon-expandable", "size": rec_be, "depth_mm": 3.0},
            "hemodynamics": {"mean_gradient_mmhg": gradient, "eoa_cm2": 1.4, "cardiac_output_l_min": co,
                             "heart_rate_bpm": hr},
            "ppm": {"ppm": ppm, "indexed_eoa_cm2_m2": 0.8, "bsa_m2": bsa}, "pvl_risk": {"level": pvl},
            "warnings": ["w"]}
    seg = {"structures": {"aortic_root": {"volume_ml": 10.0 + seed, "confidence": 0.9, "status": "ok"},
                          "left_ventricle": {"volume_ml": 100.0 + 2 * seed, "confidence": 0.95, "status": "ok"}},
           "warnings": []}
    truth = {"phantom": "cardiac-cta", "seed": seed, "annulus_perimeter_mm": perimeter, "annulus_area_mm2": area,
             "annulus_diameter_min_mm": 20.0, "annulus_diameter_max_mm": 24.0, "coronary_height_left_mm": cor_left,
             "coronary_height_right_mm": 15.0, "annulus_centre_lps": [0.0, 0.0, 0.0],
             "volume_ml": {"aortic_root": 9.5 + seed, "left_ventricle": 101.0 + 2 * seed}}
    return {"schema": 1, "case_id": f"cardiac-cta-{seed:04d}",
            "source": {"kind": "virtual", "phantom": "cardiac-cta", "seed": seed, "pixel_mm": 2.0, "slice_mm": 2.0},
            "steps_requested": ["segment", "tavr"], "status": "ok", "error": None, "failed_step": None,
            "steps": {"segment": {"status": "ok", "seconds": seconds[0], "summary": seg},
                      "tavr": {"status": "ok", "seconds": seconds[1], "summary": tavr}},
            "ground_truth": truth, "dice": {"aortic_root": 0.90 + 0.01 * seed, "left_ventricle": 0.99},
            "seconds": sum(seconds) + 1.0, "open_seconds": 1.0, "peak_rss_mb": 800.0 + seed}


def failed_record(seed: int, *, step="tavr", error="tavr: the label map has no aortic root") -> dict:
    """A case whose ``step`` failed after a segmentation with absurd volumes (must not reach any statistic)."""
    rec = cardiac_record(seed, area=9999.0, perimeter=999.0, gradient=99.0)
    rec["steps"][step] = {"status": "failed", "seconds": 0.1, "error": error.split(": ", 1)[-1]}
    rec["steps"]["segment"]["summary"]["structures"]["aortic_root"]["volume_ml"] = 1e6
    rec.update(status="failed", failed_step=step, error=error, dice={"aortic_root": 0.01})
    return rec


def abdomen_record(seed: int, *, size="3", shielding=(-88.8, -74.0, -96.3), safety=4.4, stenosis=(49.9, 91.5),
                   true_stenosis=50.0) -> dict:
    zones = [{"zone": 1, "name": "1 lateral proximal", "volume_ml": 50.0, "sed_intact_kj_m3": 1.0,
              "sed_implanted_kj_m3": 1.0 + shielding[0] / 100},
             {"zone": 2, "name": "2 lateral middle", "volume_ml": 10.0, "sed_intact_kj_m3": 1.0,
              "sed_implanted_kj_m3": 1.0 + shielding[1] / 100},
             {"zone": 7, "name": "7 medial proximal (calcar)", "volume_ml": 20.0, "sed_intact_kj_m3": 2.0,
              "sed_implanted_kj_m3": 2.0 * (1.0 + shielding[2] / 100)}]
    for z in zones:
        z["change_percent"] = round(100 * (z["sed_implanted_kj_m3"] / z["sed_intact_kj_m3"] - 1), 2)
    fem = {"fem:1": {"zones": zones, "implant": {"peak_von_mises_mpa": 880.0 / safety, "p99_von_mises_mpa": 90.0,
                                                 "yield_mpa": 880.0, "safety_factor": safety, "family": "hip-stem",
                                                 "size": size, "id": "1"},
                     "bone_sed_change_percent": -85.0, "mesh": {"size_mm": 2.0, "elements": 1000},
                     "study": "hip_stem", "zone_scheme": "gruen"}}
    implant = {"placement": {"implant": {"family": "hip-stem", "size": size}, "method": "auto",
                             "checks": {"breach": {"volume_ml": 0.0}, "contact": {"fractions": {"cortical": 0.1}}},
                             "notes": {"offset_change_mm": 2.7}}, "passed": True}
    flow = {"inflow_ml_s": 30.0, "rows": [
        {"segment": "b0", "vessel": "aorta", "pressure_drop_mmhg": 0.55, "pressure_ratio": 0.9965},
        {"segment": "b2", "vessel": "iliac_artery_left", "pressure_drop_mmhg": 129.7, "pressure_ratio": 0.1676}],
        "stenoses": [{"id": "s0", "segment": "b0", "diameter_percent": stenosis[0], "pressure_ratio": 0.9965,
                      "pressure_drop_mmhg": 0.5547},
                     {"id": "s1", "segment": "b2", "diameter_percent": stenosis[1], "pressure_ratio": 0.1676,
                      "pressure_drop_mmhg": 129.7444}]}
    return {"schema": 1, "case_id": f"abdomen-pelvis-{seed:04d}",
            "source": {"kind": "virtual", "phantom": "abdomen-pelvis", "seed": seed},
            "steps_requested": ["segment", "implant", "fem", "flow"], "status": "ok", "error": None,
            "failed_step": None,
            "steps": {"segment": {"status": "ok", "seconds": 8.0, "summary": {"structures": {
                "femur_left": {"volume_ml": 300.0 + seed}}}},
                "implant": {"status": "ok", "seconds": 1.0, "summary": implant},
                "fem": {"status": "ok", "seconds": 40.0, "summary": fem},
                "flow": {"status": "ok", "seconds": 3.0, "summary": flow}},
            "ground_truth": {"phantom": "abdomen-pelvis", "seed": seed, "stenosis_vessel": "aorta",
                             "stenosis_percent": true_stenosis, "volume_ml": {"femur_left": 301.0 + seed}},
            "dice": {"femur_left": 0.97}, "seconds": 53.0, "peak_rss_mb": 1500.0}


def write_cohort(folder, records, *, manifest_ids=None) -> None:
    """Records into ``folder/results`` and a ``cohort.json`` naming ``manifest_ids`` (default: all)."""
    ids = manifest_ids if manifest_ids is not None else [r["case_id"] for r in records]
    by_id = {r["case_id"]: r for r in records}
    entries = [cohort.CohortCase(i, (by_id[i]["source"] if i in by_id else {"kind": "virtual",
                                                                            "phantom": "cardiac-cta", "seed": 99}))
               for i in ids]
    cohort.write_manifest(entries, folder)
    (folder / "results").mkdir(parents=True, exist_ok=True)
    for r in records:
        (folder / "results" / f"{r['case_id']}.json").write_text(json.dumps(r))


# -- tests --------------------------------------------------------------------------------------------
def test_one_row_per_case_with_documented_columns():
    recs = [cardiac_record(0, area=400.0, perimeter=72.0, d_perimeter=1.5), failed_record(1)]
    df = results_table(recs)
    assert list(df["case_id"]) == ["cardiac-cta-0000", "cardiac-cta-0001"]
    assert list(df.columns[:len(BASE_COLUMNS)]) == list(BASE_COLUMNS)
    ok, bad = df.iloc[0], df.iloc[1]
    assert ok["status"] == "ok" and bad["status"] == "failed"
    assert bad["failed_step"] == "tavr" and "no aortic root" in bad["error"]
    assert ok["source_kind"] == "virtual" and ok["phantom"] == "cardiac-cta" and ok["seed"] == 0
    assert ok["seconds:segment"] == 5.0 and ok["seconds:tavr"] == 0.5 and ok["steps"] == "segment,tavr"
    assert ok["status:tavr"] == "ok" and bad["status:tavr"] == "failed"
    assert ok["volume_ml:aortic_root"] == 10.0 and ok["confidence:left_ventricle"] == 0.95
    assert ok["dice:aortic_root"] == pytest.approx(0.90)
    assert ok["tavr:perimeter_mm"] == 73.5 and ok["truth:annulus_perimeter_mm"] == 72.0
    assert ok["tavr:recommended:balloon-expandable"] == "23" and ok["tavr:valve_size"] == "23"
    assert ok["tavr:mean_gradient_mmhg"] == 12.0 and ok["tavr:ppm"] == "none" and ok["tavr:pvl_risk"] == "low"
    assert ok["truth:volume_ml:left_ventricle"] == 101.0
    assert "truth:annulus_centre_lps" not in df.columns  # points are left out
    assert math.isnan(bad["tavr:perimeter_mm"])  # a failed step has no summary
    assert "arm" not in df.columns  # no case in a trial arm


def test_the_arm_column_follows_the_base_columns():
    recs = [abdomen_record(0), abdomen_record(1)]
    recs[0]["arm"], recs[1]["arm"] = "implant.size=2", "implant.size=4"
    df = results_table(recs)
    assert df.columns[len(BASE_COLUMNS)] == "arm" and list(df["arm"]) == ["implant.size=2", "implant.size=4"]


def test_flow_fem_and_implant_columns():
    df = results_table([abdomen_record(0)])
    r = df.iloc[0]
    assert r["flow:stenoses"] == 2 and r["flow:min_pd_pp"] == pytest.approx(0.1676)
    assert r["flow:max_stenosis_drop_mmhg"] == pytest.approx(129.7444)
    assert r["flow:worst_stenosis_percent"] == 91.5
    assert r["flow:stenosis_percent:aorta"] == 49.9 and r["flow:pd_pp:iliac_artery_left"] == pytest.approx(0.1676)
    assert r["flow:s0:pd_pp"] == pytest.approx(0.9965)
    assert r["fem:implant_size"] == "3" and r["fem:implant_safety_factor"] == 4.4
    assert r["fem:bone_sed_change_percent"] == -85.0
    # proximal = Gruen 1 and 7, volume weighted: (50*0.112 + 20*2*0.037 - (50 + 40)) / 90
    exp = 100 * ((50 * 1.0 * (1 - 0.888) + 20 * 2.0 * (1 - 0.963)) / (50 * 1.0 + 20 * 2.0) - 1)
    assert r["fem:proximal_sed_change_percent"] == pytest.approx(exp, abs=1e-6)
    assert r["fem:zone2:sed_change_percent"] == pytest.approx(-74.0)
    assert r["implant:family"] == "hip-stem" and bool(r["implant:passed"])
    assert r["implant:offset_change_mm"] == 2.7 and r["truth:stenosis_vessel"] == "aorta"


def test_folder_in_manifest_order_with_missing_and_extra_records(tmp_path):
    recs = [cardiac_record(2), cardiac_record(0), cardiac_record(5)]
    write_cohort(tmp_path, recs, manifest_ids=["cardiac-cta-0002", "cardiac-cta-0009", "cardiac-cta-0000"])
    df = results_table(tmp_path)
    assert list(df["case_id"]) == ["cardiac-cta-0002", "cardiac-cta-0009", "cardiac-cta-0000", "cardiac-cta-0005"]
    miss = df.iloc[1]
    assert miss["status"] == "missing" and miss["error"] == "no readable record" and miss["seed"] == 99


def test_empty_folder_is_refused(tmp_path):
    with pytest.raises(SurgtwinError, match="no cohort results"):
        results_table(tmp_path)
    with pytest.raises(SurgtwinError, match="not a cohort output folder"):
        results_table(tmp_path / "nope")


def test_write_table_round_trips_atomically(tmp_path):
    df = results_table([cardiac_record(0), failed_record(1), abdomen_record(2)])
    (tmp_path / "cohort_results.csv").write_text("old")
    csv, pq = write_table(df, tmp_path)
    assert csv.name == "cohort_results.csv" and pq.name == "cohort_results.parquet"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort_results.csv", "cohort_results.parquet"]
    back = pd.read_csv(csv)
    assert list(back.columns) == list(df.columns) and len(back) == 3
    assert back.loc[0, "tavr:perimeter_mm"] == pytest.approx(df.loc[0, "tavr:perimeter_mm"])
    pqdf = pd.read_parquet(pq)
    assert list(pqdf.columns) == list(df.columns)
    assert pqdf.loc[0, "tavr:recommended:balloon-expandable"] == "23"
    assert pqdf.loc[1, "status"] == "failed"
