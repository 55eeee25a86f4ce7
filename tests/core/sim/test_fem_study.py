"""Stress shielding on a synthetic femur with a straight stem: intact vs implanted in one run."""

from __future__ import annotations

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.sim import (
    GRUEN_NAMES,
    BoneMaterial,
    assemble_stiffness,
    compare,
    gruen_zones,
    hip_loading,
    implant_material,
    solve_static,
    stress_shielding,
)


@pytest.fixture(scope="module")
def femur_stem():
    from surgtwin.core.mesh.tetra import tet_mesh
    from tests.core.sim.synthetic import femur

    labels, ct = femur(stem_length=100.0)
    mesh = tet_mesh(labels, ["femur_left", "implant"], size_mm=4.0, ct=ct)
    load = hip_loading(mesh, load="walking", body_weight_kg=75.0, side="left")
    centroids = mesh.nodes[mesh.elements].mean(axis=1)
    zones = gruen_zones(centroids, [0, 0, 0], [0, 0, -100.0], [1.0, 0, 0])  # left femur: lateral = +x
    runs = {key: stress_shielding(mesh, implant_regions=[2], bone=BoneMaterial(), implant=implant_material(key),
                                  intact_loading=load, implanted_loading=load, zones=zones, zone_names=GRUEN_NAMES)
            for key in ("ti6al4v", "cocr")}
    return mesh, load, runs


def test_a_stiff_stem_shields_the_bone_around_it(femur_stem):
    mesh, _, runs = femur_stem
    ti = runs["ti6al4v"]
    rows = {r.zone: r for r in ti.table}
    assert sorted(rows) == [1, 2, 3, 4, 5, 6, 7]
    for z in (1, 2, 3, 5, 6):  # the bone beside the stem is unloaded
        assert rows[z].change_percent < -10.0, ti.table_text()
    assert ti.bone_sed_change_percent() < 0
    assert np.all(ti.zones[ti.implant_mask] == 0)  # zones are bone only
    assert sum(r.volume_ml for r in ti.table) < mesh.quality.volume_ml["femur_left"] + 1e-6
    # the stiffer alloy shields more, and the what-if sentence says so
    cmp = compare(ti, runs["cocr"], "Ti-6Al-4V", "CoCrMo")
    assert cmp["proximal_change_percent"]["CoCrMo"] < cmp["proximal_change_percent"]["Ti-6Al-4V"]
    assert "CoCrMo shields that bone" in cmp["sentence"] and cmp["difference_percentage_points"] < 0
    # intact is the same whatever the implant material (up to the solver's tolerance)
    assert np.allclose(ti.intact.sed_mpa, runs["cocr"].intact.sed_mpa, rtol=1e-6, atol=1e-12)


def test_solves_are_converged_and_in_equilibrium(femur_stem):
    mesh, load, runs = femur_stem
    res = runs["ti6al4v"]
    for r in (res.intact, res.implanted):
        assert r.info.residual <= 1e-9 and r.info.iterations > 0
        k = assemble_stiffness(mesh.nodes, mesh.elements, r.modulus_mpa, 0.3 + 0.04 * res.implant_mask)
        reaction = (k @ r.displacement_mm.ravel()).reshape(-1, 3)[load.fixed_nodes].sum(axis=0)
        assert reaction == pytest.approx(-load.total_force_n, rel=1e-6, abs=1e-3)  # the supports hold the load
        assert np.all(r.displacement_mm[load.fixed_nodes] == 0)
    # the implant is titanium in the implanted model and bone in the intact one
    assert np.all(res.implanted.modulus_mpa[res.implant_mask] == 110_000.0)
    assert np.all(res.intact.modulus_mpa[res.implant_mask] < 20_000.0)


def test_implant_stress_and_safety_factor(femur_stem):
    mesh, load, runs = femur_stem
    im = runs["ti6al4v"].implant
    assert im.yield_mpa == 880.0 and im.safety_factor == pytest.approx(880.0 / im.peak_von_mises_mpa)
    assert 0 < im.p99_von_mises_mpa <= im.peak_von_mises_mpa
    vm = runs["ti6al4v"].implanted.von_mises_mpa[runs["ti6al4v"].implant_mask]
    assert im.peak_von_mises_mpa <= vm.max()
    text = runs["ti6al4v"].table_text()
    assert "safety factor" in text and "7 medial proximal (calcar)" in text
    s = runs["ti6al4v"].summary()
    assert s["implant"]["yield_mpa"] == 880.0 and len(s["zones"]) == 7 and "hip joint force" in s["loads"]["intact"]


def test_direct_and_iterative_static_solves_agree(femur_stem):
    mesh, load, _ = femur_stem
    e = BoneMaterial().modulus_mpa(mesh.mean_hu)
    a = solve_static(mesh, e, 0.3, load)
    b = solve_static(mesh, e, 0.3, load, method="direct")
    rel = np.linalg.norm(a.displacement_mm - b.displacement_mm) / np.linalg.norm(b.displacement_mm)
    assert rel < 1e-6
    assert np.allclose(a.von_mises_mpa, b.von_mises_mpa, rtol=1e-4, atol=1e-6 * b.von_mises_mpa.max())


def test_a_mesh_without_ct_numbers_or_implant_is_refused(femur_stem):
    mesh, load, _ = femur_stem
    from dataclasses import replace

    with pytest.raises(SurgtwinError, match="CT numbers"):
        stress_shielding(replace(mesh, mean_hu=None), implant_regions=[2], bone=BoneMaterial(),
                         implant=implant_material("cocr"), intact_loading=load, implanted_loading=load,
                         zones=np.zeros(len(mesh.elements), int), zone_names=GRUEN_NAMES)
    with pytest.raises(SurgtwinError, match="no implant elements"):
        stress_shielding(mesh, implant_regions=[7], bone=BoneMaterial(), implant=implant_material("cocr"),
                         intact_loading=load, implanted_loading=load, zones=np.zeros(len(mesh.elements), int),
                         zone_names=GRUEN_NAMES)
