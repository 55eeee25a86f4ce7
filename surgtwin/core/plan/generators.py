"""Parametric implant geometry: one generator per family kind, from a family's merged parameters.

Each generator takes the parameters of one size (family parameters updated with the size's own,
mm and degrees) and returns ``(vertices, faces)`` of a watertight, outward-wound solid in the
implant's local frame (documented per generator and in the family's data file, ``frame``).
``analytic_volume_mm3`` gives the exact volume of the ideal solid where it has a closed form (the
mesh is a 64-gon approximation of it: about 0.2 % less for round sections).
"""

from __future__ import annotations

import math

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.plan.shapes import extrude_region, loft, plate_region, revolve

SEGMENTS = 64


def screw(p: dict) -> tuple[np.ndarray, np.ndarray]:
    """Pedicle screw: head ``-head_height_mm <= z < 0``, shank of the thread's outer diameter from
    z = 0 and a conical tip ending at ``z = length_mm`` on the axis."""
    r, L = p["diameter_mm"] / 2, p["length_mm"]
    tip = p["tip_length_factor"] * p["diameter_mm"]
    rh, hh = p["head_diameter_mm"] / 2, p["head_height_mm"]
    if not (0 < tip < L and rh > r):
        raise SurgtwinError(f"screw {p.get('label')}: the tip must be shorter than the screw and the head wider")
    return revolve([(0, -hh), (rh, -hh), (rh, 0), (r, 0), (r, L - tip), (0, L)], segments=SEGMENTS)


def _stem_layout(p: dict) -> dict:
    beta = math.radians(180.0 - p["neck_angle_deg"])
    if not (math.radians(20) <= beta <= math.radians(70)):
        raise SurgtwinError(f"hip stem {p.get('label')}: neck_angle_deg must be between 110 and 160")
    a0, b0 = p["proximal_ml_mm"] / 2, p["proximal_ap_mm"] / 2
    bend = 1.3 * a0  # calcar bend radius: above the in-plane half-width, so sections never cross
    s_arc = bend * math.tan(beta / 2)  # the arc's ends lie this far from the origin on both axes
    s_head = p["offset_mm"] / math.sin(beta)
    s_tip = s_head + p["head_to_trunnion_tip_mm"]
    s_base = s_tip - p["trunnion_length_mm"]
    s_neck = s_arc + 0.5 * (s_base - s_arc)
    if not (s_arc < s_neck < s_base) or p["distal_diameter_mm"] / 2 > a0:
        raise SurgtwinError(f"hip stem {p.get('label')}: the offset is too small for the neck and trunnion")
    return {"beta": beta, "a0": a0, "b0": b0, "bend": bend, "s_arc": s_arc, "s_head": s_head, "s_tip": s_tip,
            "s_base": s_base, "s_neck": s_neck}


def stem_head_centre(p: dict) -> np.ndarray:
    """The femoral head centre in the stem's local frame (mm)."""
    lay = _stem_layout(p)
    return lay["s_head"] * np.array([math.sin(lay["beta"]), 0.0, -math.cos(lay["beta"])])


def stem(p: dict) -> tuple[np.ndarray, np.ndarray]:
    """Hip stem: origin on the stem axis at the resection level, +z distal, neck toward +x.

    One loft from the rounded distal tip (z = stem_length_mm) up the tapered body, along an arc of
    the calcar that turns the axis by 180 - neck_angle degrees onto the neck axis (which passes
    through the origin), down to the neck diameter and out to the 12/14 trunnion."""
    lay = _stem_layout(p)
    L, beta, a0, b0, R = p["stem_length_mm"], lay["beta"], lay["a0"], lay["b0"], lay["bend"]
    rd = p["distal_diameter_mm"] / 2
    z_b = lay["s_arc"]
    u = np.array([math.sin(beta), 0.0, -math.cos(beta)])
    down = np.array([0.0, 0.0, -1.0])

    def body(z):  # semi-axes of the wedge at depth z, tapering linearly to the distal diameter
        f = min(max(z / L, 0.0), 1.0)
        return a0 + (rd - a0) * f, b0 + (rd - b0) * f

    C, T, A, B = [], [], [], []

    def add(c, t, a, b):
        C.append(np.asarray(c, float))
        T.append(np.asarray(t, float))
        A.append(a)
        B.append(b)

    a_t, b_t = body(L - rd)
    add([0, 0, L], down, 0.0, 0.0)  # the tip pole
    for phi in np.linspace(0, np.pi / 2, 7)[1:-1][::-1]:  # distal dome
        add([0, 0, L - rd + rd * math.sin(phi)], down, a_t * math.cos(phi), b_t * math.cos(phi))
    for z in np.linspace(L - rd, z_b, 24):
        add([0, 0, z], down, *body(z))
    for phi in np.linspace(0, beta, 12)[1:]:  # the calcar arc
        add([R - R * math.cos(phi), 0, z_b - R * math.sin(phi)], [math.sin(phi), 0, -math.cos(phi)], *body(0.0))
    rn = p["neck_diameter_mm"] / 2
    for f in np.linspace(0, 1, 5)[1:]:  # down to the neck
        s = lay["s_arc"] + f * (lay["s_neck"] - lay["s_arc"])
        add(s * u, u, a0 + (rn - a0) * f, b0 + (rn - b0) * f)
    add(lay["s_base"] * u, u, rn, rn)
    rb, rt = p["trunnion_base_diameter_mm"] / 2, p["trunnion_tip_diameter_mm"] / 2
    add(lay["s_base"] * u, u, rb, rb)
    add(lay["s_tip"] * u, u, rt, rt)
    return loft(C, T, A, B, [0.0, 1.0, 0.0], segments=SEGMENTS)


def plate(p: dict) -> tuple[np.ndarray, np.ndarray]:
    """Bone plate: centred on the origin along x, underside at z = 0, body at -thickness <= z <= 0."""
    n, pitch = int(p["holes"]), p["hole_spacing_mm"]
    if n < 1:
        raise SurgtwinError(f"bone plate {p.get('label')}: needs at least one hole")
    length = (n - 1) * pitch + 2 * p["end_margin_mm"]
    xs = [(k - (n - 1) / 2) * pitch for k in range(n)]
    v2, f2 = plate_region(length, p["width_mm"], xs, p["hole_diameter_mm"] / 2, segments=32)
    return extrude_region(v2, f2, -p["thickness_mm"], 0.0)


def plate_length_mm(p: dict) -> float:
    return (int(p["holes"]) - 1) * p["hole_spacing_mm"] + 2 * p["end_margin_mm"]


def valve_frame(p: dict) -> tuple[np.ndarray, np.ndarray]:
    """Valve frame envelope: a wall of strut thickness, inflow at z = 0, outflow at z = height."""
    t, H, f = p["strut_thickness_mm"], p["height_mm"], p["waist_height_fraction"]
    ro = [p["inflow_diameter_mm"] / 2, p["waist_diameter_mm"] / 2, p["outflow_diameter_mm"] / 2]
    if min(ro) <= t or not 0 < f < 1:
        raise SurgtwinError(f"valve frame {p.get('label')}: diameters must exceed twice the strut thickness")
    zs = [0.0, f * H, H]
    outer = list(zip(ro, zs, strict=True))
    inner = [(r - t, z) for r, z in outer][::-1]
    return revolve(outer + inner, segments=SEGMENTS, closed=True)


GENERATORS = {"screw": screw, "stem": stem, "plate": plate, "valve_frame": valve_frame}


def analytic_volume_mm3(generator: str, p: dict) -> float | None:
    """Volume of the ideal solid (round sections) where it has a closed form, else None."""
    if generator == "screw":
        r, L = p["diameter_mm"] / 2, p["length_mm"]
        tip = p["tip_length_factor"] * p["diameter_mm"]
        return math.pi * ((p["head_diameter_mm"] / 2) ** 2 * p["head_height_mm"] + r * r * (L - tip) + r * r * tip / 3)
    if generator == "plate":
        holes = int(p["holes"]) * math.pi * (p["hole_diameter_mm"] / 2) ** 2
        return (plate_length_mm(p) * p["width_mm"] - holes) * p["thickness_mm"]
    if generator == "valve_frame":
        t, H, f = p["strut_thickness_mm"], p["height_mm"], p["waist_height_fraction"]
        ro = [p["inflow_diameter_mm"] / 2, p["waist_diameter_mm"] / 2, p["outflow_diameter_mm"] / 2]
        total = 0.0
        for (r1, r2, h) in ((ro[0], ro[1], f * H), (ro[1], ro[2], (1 - f) * H)):
            # frustum shell: outer frustum minus inner frustum (radii reduced by t)
            total += math.pi * h / 3 * ((r1 * r1 + r1 * r2 + r2 * r2) - ((r1 - t) ** 2 + (r1 - t) * (r2 - t) + (r2 - t) ** 2))
        return total
    return None
