"""A virtual patient's physiology: body size and haemodynamics drawn per seed, beside the anatomy.

``draw_physiology(kind, seed)`` gives, for a ``cardiac-cta`` patient (the TAVR population), height,
weight, body surface area (Mosteller), BMI, resting cardiac output and heart rate; ``None`` for the other
kinds (no step of theirs uses them). The draws use their own random stream (seeded by ``seed``), so they
do not change the anatomy of the same seed, and the same seed always gives the same values.

Drawn (normal, clipped), chosen as plausible for elderly patients referred for TAVR; not fitted to a
registry:

=========================  ===============  ==============
quantity                   mean +- SD        clipped to
=========================  ===============  ==============
height, cm                 166 +- 9          145 - 192
BMI, kg/m^2                27.5 +- 5         18 - 42
cardiac index, l/min/m^2   2.6 +- 0.5        1.6 - 3.8
heart rate, bpm            72 +- 11          50 - 100
=========================  ===============  ==============

Derived: weight = BMI * height_m^2; BSA = sqrt(height_cm * weight_kg / 3600) m^2 (Mosteller);
cardiac output = cardiac index * BSA (so larger patients have larger outputs).
"""

from __future__ import annotations

import math

import numpy as np

#: (mean, sd, low, high) per drawn quantity
RANGES = {"height_cm": (166.0, 9.0, 145.0, 192.0), "bmi": (27.5, 5.0, 18.0, 42.0),
          "cardiac_index_l_min_m2": (2.6, 0.5, 1.6, 3.8), "heart_rate_bpm": (72.0, 11.0, 50.0, 100.0)}
#: the phantom kinds that get a physiology
KINDS = ("cardiac-cta",)
_STREAM = 0x7A5  # keeps these draws apart from the anatomy's random stream


def mosteller_bsa(height_cm: float, weight_kg: float) -> float:
    """Body surface area in m^2 (Mosteller 1987)."""
    return math.sqrt(float(height_cm) * float(weight_kg) / 3600.0)


def draw_physiology(kind: str, seed: int) -> dict | None:
    """Height, weight, BSA, BMI, cardiac output and heart rate of virtual patient ``seed`` of ``kind``
    (rounded as a chart would record them), or None for a kind without one."""
    if kind not in KINDS:
        return None
    rng = np.random.default_rng([int(seed), _STREAM])
    v = {k: float(np.clip(rng.normal(mean, sd), lo, hi)) for k, (mean, sd, lo, hi) in RANGES.items()}
    height = float(round(v["height_cm"]))
    weight = round(v["bmi"] * (height / 100.0) ** 2, 1)
    bsa = round(mosteller_bsa(height, weight), 2)
    return {"height_cm": height, "weight_kg": weight, "bsa_m2": bsa, "bmi": round(weight / (height / 100.0) ** 2, 1),
            "cardiac_output_l_min": round(v["cardiac_index_l_min_m2"] * bsa, 1),
            "heart_rate_bpm": float(round(v["heart_rate_bpm"]))}
