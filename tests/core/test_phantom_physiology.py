"""core.phantom.physiology: a virtual TAVR patient's drawn body size and haemodynamics."""

from __future__ import annotations

import numpy as np
import pytest

from surgtwin.core.phantom.physiology import KINDS, RANGES, draw_physiology, mosteller_bsa


def test_same_seed_same_patient_and_other_kinds_have_none():
    assert draw_physiology("cardiac-cta", 7) == draw_physiology("cardiac-cta", 7)
    assert draw_physiology("cardiac-cta", 7) != draw_physiology("cardiac-cta", 8)
    assert draw_physiology("head", 7) is None and draw_physiology("abdomen-pelvis", 7) is None
    assert KINDS == ("cardiac-cta",)


def test_mosteller_known_value():
    # 180 cm, 80 kg: sqrt(180 * 80 / 3600) = 2.0 m^2
    assert mosteller_bsa(180, 80) == pytest.approx(2.0)


def test_values_inside_their_ranges_and_derived_consistently():
    rows = [draw_physiology("cardiac-cta", s) for s in range(500)]
    for r in rows:
        h = r["height_cm"]
        assert RANGES["height_cm"][2] <= h <= RANGES["height_cm"][3]
        assert RANGES["bmi"][2] - 0.1 <= r["bmi"] <= RANGES["bmi"][3] + 0.1
        assert 50 <= r["heart_rate_bpm"] <= 100
        assert r["bsa_m2"] == pytest.approx(mosteller_bsa(h, r["weight_kg"]), abs=0.006)
        ci = r["cardiac_output_l_min"] / r["bsa_m2"]
        assert 1.6 - 0.05 <= ci <= 3.8 + 0.05
    # the population looks like the documented one (500 draws: means within ~3 standard errors)
    h = np.array([r["height_cm"] for r in rows])
    co = np.array([r["cardiac_output_l_min"] for r in rows])
    bsa = np.array([r["bsa_m2"] for r in rows])
    assert abs(h.mean() - 166) < 1.5 and 1.75 < bsa.mean() < 1.95 and 4.4 < co.mean() < 5.2
    assert np.corrcoef(bsa, co)[0, 1] > 0.2  # larger patients have larger outputs
