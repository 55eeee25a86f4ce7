"""FE studies on a bone (+ implant) tet mesh: one static solve, intact vs implanted (stress shielding),
zone tables, the implant's safety factor, and a comparison of two implants ("what if").

Stress shielding: the **same mesh** is solved twice in one run. Intact: every element, the implant's
too, gets bone material from its CT number (where the implant would be, the CT shows bone or marrow).
Implanted: the implant elements get the implant material; bone resected for the implant
(``resected``: e.g. the femoral head and neck above a stem's resection level) gets the floor modulus.
Each solve has its own loads (the intact femur is loaded on its head, the implanted one on the
prosthetic head). For each zone the table gives the volume-weighted mean strain energy density (SED)
of its bone elements, intact and implanted, and the change in percent (negative: stress shielding,
the bone is unloaded and may resorb). The implant's peak von Mises stress is taken over implant
elements that touch no loaded or fixed node (stress at a point load or a support is singular in a
linear FE model and would tell nothing), and compared with the material's yield stress (safety factor
= yield / peak).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import CancelToken, ProgressFn, check, report, scaled
from surgtwin.core.sim.elasticity import (
    SolveInfo,
    StiffnessPattern,
    assemble_stiffness,
    element_strains,
    element_stresses,
    shape_gradients,
    solve_elasticity,
    stiffness_pattern,
    strain_energy_density,
    von_mises,
)
from surgtwin.core.sim.loads import Loading
from surgtwin.core.sim.materials import BoneMaterial, ElasticMaterial

#: 1 MPa of strain energy density in kJ/m^3
KJ_M3_PER_MPA = 1000.0


@dataclass
class StaticResult:
    """One linear static solve: nodal displacement (N, 3) mm; per element von Mises stress and SED
    (MPa), the modulus used (MPa); the load case and how the solve went."""

    displacement_mm: np.ndarray
    von_mises_mpa: np.ndarray
    sed_mpa: np.ndarray
    modulus_mpa: np.ndarray
    loading: Loading
    info: SolveInfo
    assembly_s: float = 0.0


def solve_static(mesh, e_mpa, nu, loading: Loading, *, pattern: StiffnessPattern | None = None,
                 rtol: float = 1e-9, method: str = "amg", progress: ProgressFn | None = None,
                 cancel: CancelToken | None = None) -> StaticResult:
    """Assemble, solve and post-process one load case on ``mesh`` (a ``TetMesh`` or anything with
    ``nodes`` and ``elements``) with per-element ``e_mpa`` and ``nu``."""
    m = len(mesh.elements)
    e = np.broadcast_to(np.asarray(e_mpa, float), (m,)).copy()
    nu_e = np.broadcast_to(np.asarray(nu, float), (m,)).copy()
    report(progress, 0.0, f"assembling {m} elements")
    t0 = time.perf_counter()
    k = assemble_stiffness(mesh.nodes, mesh.elements, e, nu_e, pattern=pattern, fmt="bsr")
    t_asm = time.perf_counter() - t0
    check(cancel)
    u, info = solve_elasticity(k, loading.force_n.ravel(), loading.fixed_dofs, mesh.nodes, rtol=rtol,
                               method=method, progress=scaled(progress, 0.1, 0.95), cancel=cancel)
    g, _ = shape_gradients(mesh.nodes, mesh.elements)
    strain = element_strains(g, mesh.elements, u)
    stress = element_stresses(strain, e, nu_e)
    report(progress, 1.0, "solved")
    return StaticResult(u.reshape(-1, 3), von_mises(stress), strain_energy_density(stress, strain), e, loading,
                        info, t_asm)


@dataclass
class ZoneRow:
    zone: int
    name: str
    volume_ml: float
    sed_intact_kj_m3: float
    sed_implanted_kj_m3: float

    @property
    def change_percent(self) -> float:
        if self.sed_intact_kj_m3 <= 0:
            return float("nan")
        return 100.0 * (self.sed_implanted_kj_m3 - self.sed_intact_kj_m3) / self.sed_intact_kj_m3

    def to_json(self) -> dict:
        return {"zone": self.zone, "name": self.name, "volume_ml": round(self.volume_ml, 3),
                "sed_intact_kj_m3": round(self.sed_intact_kj_m3, 4),
                "sed_implanted_kj_m3": round(self.sed_implanted_kj_m3, 4),
                "change_percent": round(self.change_percent, 2)}


def zone_table(zones, zone_names: dict, volumes_mm3, sed_intact_mpa, sed_implanted_mpa) -> list[ZoneRow]:
    """Volume-weighted mean SED per zone (kJ/m^3), intact and implanted; zones without elements are left out."""
    rows = []
    for z, name in zone_names.items():
        sel = zones == z
        v = float(np.sum(volumes_mm3[sel]))
        if v <= 0:
            continue
        rows.append(ZoneRow(int(z), name, v / 1000.0,
                            float(np.sum(sed_intact_mpa[sel] * volumes_mm3[sel]) / v * KJ_M3_PER_MPA),
                            float(np.sum(sed_implanted_mpa[sel] * volumes_mm3[sel]) / v * KJ_M3_PER_MPA)))
    return rows


@dataclass
class ImplantStress:
    peak_von_mises_mpa: float
    p99_von_mises_mpa: float
    yield_mpa: float
    material: str

    @property
    def safety_factor(self) -> float:
        return self.yield_mpa / self.peak_von_mises_mpa if self.peak_von_mises_mpa > 0 else float("inf")

    def to_json(self) -> dict:
        return {"peak_von_mises_mpa": round(self.peak_von_mises_mpa, 3),
                "p99_von_mises_mpa": round(self.p99_von_mises_mpa, 3), "yield_mpa": self.yield_mpa,
                "material": self.material, "safety_factor": round(self.safety_factor, 3)}


@dataclass
class ShieldingResult:
    """Intact and implanted solves of one mesh, the zones and their table, the implant's stress."""

    intact: StaticResult
    implanted: StaticResult
    implant_mask: np.ndarray
    zones: np.ndarray
    zone_names: dict
    table: list[ZoneRow]
    implant: ImplantStress
    parameters: dict = field(default_factory=dict)

    def bone_sed_change_percent(self, zones=None) -> float:
        """Change of the volume-weighted SED over the bone of ``zones`` (all zones by default)."""
        rows = [r for r in self.table if zones is None or r.zone in zones]
        v = sum(r.volume_ml for r in rows)
        a = sum(r.sed_intact_kj_m3 * r.volume_ml for r in rows)
        b = sum(r.sed_implanted_kj_m3 * r.volume_ml for r in rows)
        return 100.0 * (b - a) / a if a > 0 and v > 0 else float("nan")

    def summary(self) -> dict:
        return {"zones": [r.to_json() for r in self.table], "implant": self.implant.to_json(),
                "bone_sed_change_percent": round(self.bone_sed_change_percent(), 2),
                "solves": {"intact": self.intact.info.as_dict(), "implanted": self.implanted.info.as_dict()},
                "loads": {"intact": self.intact.loading.description, "implanted": self.implanted.loading.description}}

    def table_text(self) -> str:
        """The zone table and the implant line as fixed-width text (CLI, reports)."""
        lines = [f"{'zone':<28} {'bone ml':>8} {'SED intact':>11} {'implanted':>10} {'change':>8}",
                 f"{'':<28} {'':>8} {'(kJ/m3)':>11} {'(kJ/m3)':>10} {'(%)':>8}"]
        for r in self.table:
            lines.append(f"{r.name:<28} {r.volume_ml:8.2f} {r.sed_intact_kj_m3:11.3f} {r.sed_implanted_kj_m3:10.3f} "
                         f"{r.change_percent:+8.1f}")
        lines.append(f"{'all zones':<28} {sum(r.volume_ml for r in self.table):8.2f} {'':>11} {'':>10} "
                     f"{self.bone_sed_change_percent():+8.1f}")
        im = self.implant
        lines.append(f"implant ({im.material}): peak von Mises {im.peak_von_mises_mpa:.1f} MPa "
                     f"(99th percentile {im.p99_von_mises_mpa:.1f}), yield {im.yield_mpa:.0f} MPa, "
                     f"safety factor {im.safety_factor:.2f}")
        return "\n".join(lines)


def implant_stress(mesh, result: StaticResult, implant_mask, material: ElasticMaterial) -> ImplantStress:
    """Peak and 99th-percentile von Mises stress of the implant away from loads and supports."""
    touched = np.zeros(len(mesh.nodes), bool)
    touched[result.loading.load_nodes] = True
    touched[result.loading.fixed_nodes] = True
    away = implant_mask & ~touched[mesh.elements].any(axis=1)
    vm = result.von_mises_mpa[away if away.any() else implant_mask]
    if len(vm) == 0:
        raise SurgtwinError("the mesh has no implant elements")
    return ImplantStress(float(vm.max()), float(np.percentile(vm, 99)), float(material.yield_mpa), material.name)


def stress_shielding(mesh, *, implant_regions, bone: BoneMaterial, implant: ElasticMaterial,
                     intact_loading: Loading, implanted_loading: Loading, zones: np.ndarray, zone_names: dict,
                     resected=None, rtol: float = 1e-9, progress: ProgressFn | None = None,
                     cancel: CancelToken | None = None) -> ShieldingResult:
    """Solve ``mesh`` intact and implanted (see the module text) and tabulate SED per zone."""
    if mesh.mean_hu is None:
        raise SurgtwinError("the tet mesh has no CT numbers per element; bone material needs them",
                            hint="build the tet mesh with the CT (ct=...)")
    implant_mask = np.isin(mesh.regions, np.atleast_1d(implant_regions))
    if not implant_mask.any():
        raise SurgtwinError("the tet mesh has no implant elements", hint="mesh the implant with the bone")
    e_bone = bone.modulus_mpa(mesh.mean_hu)
    nu_bone = np.full(len(e_bone), bone.poisson_ratio)
    e_imp, nu_imp = e_bone.copy(), nu_bone.copy()
    e_imp[implant_mask] = implant.youngs_modulus_mpa
    nu_imp[implant_mask] = implant.poisson_ratio
    if resected is not None:
        e_imp[np.asarray(resected, bool) & ~implant_mask] = bone.floor_mpa
    report(progress, 0.0, "stiffness pattern")
    pattern = stiffness_pattern(mesh.elements, len(mesh.nodes))
    check(cancel)
    intact = solve_static(mesh, e_bone, nu_bone, intact_loading, pattern=pattern, rtol=rtol,
                          progress=scaled(progress, 0.02, 0.5), cancel=cancel)
    implanted = solve_static(mesh, e_imp, nu_imp, implanted_loading, pattern=pattern, rtol=rtol,
                             progress=scaled(progress, 0.5, 0.98), cancel=cancel)
    vol = mesh.element_volumes_mm3() if hasattr(mesh, "element_volumes_mm3") else shape_gradients(
        mesh.nodes, mesh.elements)[1]
    bone_zones = np.where(implant_mask, 0, zones)
    table = zone_table(bone_zones, zone_names, np.abs(vol), intact.sed_mpa, implanted.sed_mpa)
    report(progress, 1.0, "stress shielding table")
    return ShieldingResult(intact, implanted, implant_mask, bone_zones.astype(np.int8), dict(zone_names), table,
                           implant_stress(mesh, implanted, implant_mask, implant),
                           {"bone": bone.to_json(), "implant_material": implant.to_json(), "rtol": rtol})


def compare(a: ShieldingResult, b: ShieldingResult, label_a: str, label_b: str, *,
            proximal_zones=(1, 7)) -> dict:
    """Both tables and the difference in stress shielding in a sentence ("what if")."""
    pa, pb = a.bone_sed_change_percent(proximal_zones), b.bone_sed_change_percent(proximal_zones)
    ta, tb = a.bone_sed_change_percent(), b.bone_sed_change_percent()
    names = "/".join(str(z) for z in proximal_zones)
    if np.isfinite(pa) and np.isfinite(pb):
        more = label_a if pa < pb else label_b
        sentence = (f"{label_a} changes the strain energy of the bone in zones {names} by {pa:+.1f} % and "
                    f"{label_b} by {pb:+.1f} % (all zones: {ta:+.1f} % vs {tb:+.1f} %): {more} shields that bone "
                    f"{abs(pa - pb):.1f} percentage points more. Peak implant stress {a.implant.peak_von_mises_mpa:.0f} "
                    f"vs {b.implant.peak_von_mises_mpa:.0f} MPa (safety factor {a.implant.safety_factor:.1f} vs "
                    f"{b.implant.safety_factor:.1f}).")
    else:
        sentence = (f"all zones: {label_a} {ta:+.1f} %, {label_b} {tb:+.1f} % change in bone strain energy "
                    f"(zones {names} have no bone in one of the two models).")
    return {label_a: a.summary(), label_b: b.summary(), "proximal_zones": list(proximal_zones),
            "proximal_change_percent": {label_a: pa, label_b: pb},
            "all_zones_change_percent": {label_a: ta, label_b: tb},
            "difference_percentage_points": pb - pa, "sentence": sentence}
