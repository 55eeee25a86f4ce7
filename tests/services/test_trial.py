"""The in-silico trial statistics: known errors injected into records are found; failures are excluded
and counted; the sizing agreement applies the project's own chart to the true annulus."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from surgtwin.core.plan import tavr_devices as dev
from surgtwin.services import trial
from surgtwin.services.cohort_table import results_table, write_table
from tests.services.test_cohort_table import abdomen_record, cardiac_record, failed_record

#: true annulus (area mm^2, perimeter mm) per case, inside the charts and away from their edges
ANNULI = [(380.0, 70.0), (400.0, 71.5), (470.0, 77.5), (500.0, 79.0), (600.0, 88.0), (620.0, 89.5)]
PERIMETER_OFFSETS = [-0.5, 0.5, -0.5, 0.5, -0.5, 0.5]  # mean 0, SD 0.5477


def _cohort(bias=2.0):
    recs = [cardiac_record(i, area=a, perimeter=p, d_perimeter=bias + PERIMETER_OFFSETS[i], d_area=0.0,
                           gradient=[10.0, 12.0, 14.0, 16.0, 22.0, 30.0][i], ppm=["none", "none", "moderate",
                                                                                  "none", "severe", "none"][i])
            for i, (a, p) in enumerate(ANNULI)]
    return recs + [failed_record(6)]


def test_agreement_and_describe_known_values():
    a = trial.agreement([11.0, 13.0, np.nan, 15.0], [10.0, 10.0, 10.0, 10.0])
    assert a["n"] == 3 and a["bias"] == pytest.approx(3.0) and a["sd"] == pytest.approx(2.0)
    assert a["mae"] == pytest.approx(3.0) and a["max_abs"] == pytest.approx(5.0)
    assert a["loa_low"] == pytest.approx(3.0 - 1.96 * 2.0) and a["loa_high"] == pytest.approx(3.0 + 1.96 * 2.0)
    assert a["relative_bias_percent"] == pytest.approx(30.0)
    assert trial.agreement([np.nan], [1.0])["n"] == 0
    d = trial.describe([1.0, 2.0, 3.0, 4.0, None, float("nan")])
    assert d["n"] == 4 and d["median"] == 2.5 and d["q1"] == 1.75 and d["q3"] == 3.25


def test_injected_perimeter_bias_is_found_and_failed_case_excluded():
    t = trial.tavr_trial(results_table(_cohort(bias=2.0)))
    assert t["n_cases"] == 7 and t["n_tavr"] == 6 and t["n_excluded_failed"] == 1
    e = t["measurement_error"]["perimeter_mm"]
    assert e["n"] == 6 and e["bias"] == pytest.approx(2.0, abs=1e-9)
    assert e["sd"] == pytest.approx(np.std(PERIMETER_OFFSETS, ddof=1), abs=1e-4)
    assert e["max_abs"] == pytest.approx(2.5) and e["mae"] == pytest.approx(2.0)
    assert e["loa_high"] == pytest.approx(2.0 + 1.96 * np.std(PERIMETER_OFFSETS, ddof=1), abs=1e-3)
    a = t["measurement_error"]["area_mm2"]
    assert a["n"] == 6 and a["bias"] == 0.0 and a["max_abs"] == 0.0
    # no bias injected: none found
    t0 = trial.tavr_trial(results_table(_cohort(bias=0.0)))
    assert t0["measurement_error"]["perimeter_mm"]["bias"] == pytest.approx(0.0, abs=1e-9)


def test_missing_measurements_are_counted():
    recs = [cardiac_record(0, cor_left_found=False), cardiac_record(1), cardiac_record(2, cor_left_found=False)]
    e = trial.tavr_trial(results_table(recs))["measurement_error"]["coronary_height_left_mm"]
    assert e["n"] == 1 and e["n_missing_measured"] == 2 and e["bias"] == pytest.approx(0.5)


def test_size_distribution_gradient_and_ppm():
    t = trial.tavr_trial(results_table(_cohort(bias=0.0)))
    be = t["sizes"]["balloon-expandable"]
    expected = [dev.size_family("balloon-expandable", a, p).recommended for a, p in ANNULI]
    assert be["n"] == 6 and sum(be["counts"].values()) == 6
    for size in set(expected):
        assert be["counts"][size] == expected.count(size)
    assert list(be["counts"])[:4] == ["20", "23", "26", "29"] and list(be["counts"])[-1] == "none"
    assert be["shares"]["29"] == pytest.approx(expected.count("29") / 6, abs=1e-4)
    g = t["gradient_mmhg"]
    assert g["n"] == 6 and g["median"] == 15.0 and g["share_high"] == pytest.approx(2 / 6, abs=1e-4)
    assert g["q1"] == pytest.approx(12.5) and g["iqr"] == pytest.approx(20.5 - 12.5)
    assert t["ppm"]["counts"] == {"moderate": 1, "none": 4, "severe": 1}
    assert t["dice"]["aortic_root"]["n"] == 6 and t["dice"]["aortic_root"]["min"] == pytest.approx(0.90)


def test_sizing_agreement_uses_the_chart_on_the_true_annulus():
    # true area 420 mm^2 -> 23 mm; measured +25 mm^2 = 445 -> 26 mm: one disagreement
    c = dev.chart("balloon-expandable")
    assert dev.size_family("balloon-expandable", 420.0, 73.0).recommended == "23"
    assert dev.size_family("balloon-expandable", 445.0, 73.0).recommended == "26"
    assert c["sized_by"] == "area"
    recs = [cardiac_record(0, area=420.0, perimeter=73.0, d_area=25.0), cardiac_record(1, area=380.0, perimeter=70.0),
            failed_record(2)]
    a = trial.tavr_trial(results_table(recs))["sizing_agreement"]["balloon-expandable"]
    assert a["n"] == 2 and a["agree"] == 1 and a["share_agree"] == 0.5
    assert a["confusion"] == {"23->23": 1, "23->26": 1}
    assert a["disagreeing"] == [{"case_id": "cardiac-cta-0000", "true_size": "23", "measured_size": "26"}]


def test_trial_from_the_written_csv_matches(tmp_path):
    df = results_table(_cohort(bias=1.0))
    csv, _ = write_table(df, tmp_path)
    a, b = trial.tavr_trial(df), trial.tavr_trial(pd.read_csv(csv))
    assert a["sizes"] == b["sizes"] and a["sizing_agreement"] == b["sizing_agreement"]
    assert a["measurement_error"]["perimeter_mm"] == b["measurement_error"]["perimeter_mm"]


def test_summarise_counts_failures_and_times():
    s = trial.summarise(results_table(_cohort()))
    assert s["n_cases"] == 7 and s["n_ok"] == 6 and s["n_failed"] == 1
    assert s["failures"] == [{"case_id": "cardiac-cta-0006", "status": "failed", "failed_step": "tavr",
                              "error": "tavr: the label map has no aortic root"}]
    assert s["steps"] == ["segment", "tavr"]
    assert s["per_step"]["segment"]["median_s"] == 5.0 and s["per_step"]["segment"]["total_s"] == 35.0
    assert s["per_step"]["tavr"]["n_failed"] == 1 and s["per_step"]["tavr"]["n_ok"] == 6
    v = s["volumes_ml"]["aortic_root"]
    assert v["n"] == 6 and v["max"] == 15.0  # the failed case's 1e6 ml is excluded
    assert s["dice"]["aortic_root"]["min"] == pytest.approx(0.90)


def test_hip_stem_and_flow_trials():
    recs = [abdomen_record(0, size="3", safety=4.0), abdomen_record(1, size="3", safety=5.0),
            abdomen_record(2, size="4", safety=3.0, stenosis=(60.0, 10.0), true_stenosis=55.0), failed_record(3)]
    h = trial.hip_stem_trial(results_table(recs))
    assert h["n_stems"] == 3 and h["n_excluded_failed"] == 1 and list(h["by_size"]) == ["3", "4"]
    assert h["by_size"]["3"]["n"] == 2 and h["by_size"]["3"]["implant_safety_factor"]["median"] == 4.5
    assert h["by_size"]["4"]["checks_passed"] == {"n": 1, "passed": 1}
    assert h["zones"]["zone1"]["median"] == pytest.approx(-88.8)
    f = trial.flow_trial(results_table(recs))
    assert f["n_flow"] == 3 and f["min_pd_pp"]["median"] == pytest.approx(0.1676)
    e = f["stenosis_error"]  # the aorta's stenosis against the truth: -0.1, -0.1, +5.0
    assert e["n"] == 3 and e["bias"] == pytest.approx((-0.1 - 0.1 + 5.0) / 3, abs=1e-4)


def test_gradient_by_placed_valve_and_the_physiology_it_was_predicted_at():
    recs = [cardiac_record(i, area=a, perimeter=p, gradient=g, co=co, hr=hr, bsa=bsa)
            for i, ((a, p), g, co, hr, bsa) in enumerate(zip(
                ANNULI, [10.0, 12.0, 14.0, 16.0, 22.0, 30.0], [4.0, 4.5, 5.0, 5.5, 6.0, 3.5],
                [60.0, 65.0, 70.0, 75.0, 80.0, 85.0], [1.6, 1.7, 1.8, 1.9, 2.0, None], strict=True))]
    t = trial.tavr_trial(results_table(recs + [failed_record(6)]))
    placed = [dev.size_family("balloon-expandable", a, p).recommended for a, p in ANNULI]
    by = t["gradient_by_valve"]
    assert sum(d["n"] for d in by.values()) == sum(s is not None for s in placed)
    sizes = [k.split()[-1] for k in by]
    assert sizes == sorted(sizes, key=float)  # ordered by size as a number
    for key, d in by.items():
        grads = [g for g, s in zip([10.0, 12.0, 14.0, 16.0, 22.0, 30.0], placed, strict=True) if s == key.split()[-1]]
        assert key.startswith("balloon-expandable ") and d["median"] == pytest.approx(float(np.median(grads)))
    ph = t["physiology"]
    assert ph["cardiac_output_l_min"]["n"] == 6 and ph["cardiac_output_l_min"]["max"] == 6.0  # failed case left out
    assert ph["heart_rate_bpm"]["median"] == pytest.approx(72.5)
    assert ph["bsa_m2"]["n"] == 5 and ph["bsa_m2"]["min"] == 1.6


def test_stem_sizes_compared_within_the_same_patients():
    recs = []
    for seed, changes in ((0, (-70.0, -80.0, -90.0)), (1, (-70.0, -85.0, -80.0))):
        for size, x in zip(("2", "4", "6"), changes, strict=True):
            r = abdomen_record(seed, size=size, shielding=(x, -50.0, x))  # zones 1 and 7 change by x: proximal x
            r["case_id"] += f"-size{size}"
            recs.append(r)
    recs.append(abdomen_record(2, size="4"))  # one size only: not paired
    h = trial.hip_stem_trial(results_table(recs))
    assert h["by_size"]["4"]["n"] == 3
    p = h["paired"]
    assert p["n_patients"] == 2
    assert p["steps"] == [
        {"from": "2", "to": "4", "n": 2, "median_delta_percent": pytest.approx(-12.5), "n_more_shielding": 2},
        {"from": "4", "to": "6", "n": 2, "median_delta_percent": pytest.approx(-2.5), "n_more_shielding": 1}]
    assert p["n_monotone_more_shielding"] == 1 and p["share_monotone_more_shielding"] == 0.5
