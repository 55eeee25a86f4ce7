"""Loads (hip force, screw pull-out, vertebral compression) and zones (Gruen, thirds) on synthetic geometry."""

from __future__ import annotations

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.sim.loads import (
    ACTIVITIES,
    face_areas_normals,
    hip_joint_force_n,
    hip_loading,
    parse_activity,
    pressure_on_faces,
    screw_pullout,
    traction_on_faces,
    vertebral_compression,
)
from surgtwin.core.sim.zones import GRUEN_NAMES, axial_thirds, gruen_zones, principal_extent
from tests.core.sim.meshes import as_tetmesh, box


def test_hip_force_magnitude_and_direction_in_lps():
    f = hip_joint_force_n("walking", body_weight_kg=75.0, side="left")
    assert np.linalg.norm(f) == pytest.approx(2.5 * 75.0 * 9.81)  # 1839.4 N
    assert f[2] < 0 and f[0] > 0 and f[1] > 0  # inferior, lateral (+x = L for the left femur), posterior
    assert np.degrees(np.arctan2(f[0], -f[2])) == pytest.approx(13.0)
    assert np.degrees(np.arctan2(f[1], -f[2])) == pytest.approx(5.0)
    right = hip_joint_force_n("walking", body_weight_kg=75.0, side="right")
    assert right == pytest.approx(f * [-1, 1, 1])  # lateral is -x on the right
    stairs = hip_joint_force_n("stairs", body_weight_kg=90.0, side="left")
    assert np.linalg.norm(stairs) == pytest.approx(ACTIVITIES["stairs"][0] * 90 * 9.81)
    assert np.linalg.norm(hip_joint_force_n("3xBW", body_weight_kg=80)) == pytest.approx(3 * 80 * 9.81)
    assert parse_activity("4×BW")[0] == 4.0 and parse_activity(2.2)[3] == "2.2xBW"
    for bad in ("jogging", "0xBW", "50xBW"):
        with pytest.raises(SurgtwinError):
            hip_joint_force_n(bad)
    with pytest.raises(SurgtwinError, match="body weight"):
        hip_joint_force_n("walking", body_weight_kg=2.0)


def test_tractions_add_up():
    m = box(np.linspace(0, 10, 6), np.linspace(0, 4, 3), np.linspace(0, 4, 3))
    faces = m.boundary_faces()
    top = faces[np.all(np.isclose(m.nodes[faces][:, :, 2], 4.0), axis=1)]
    f = traction_on_faces(len(m.nodes), m.nodes, top, [1.0, -2.0, -30.0])
    assert f.sum(axis=0) == pytest.approx([1.0, -2.0, -30.0])
    assert np.all(f[~np.isclose(m.nodes[:, 2], 4.0)] == 0)
    # a pressure on a closed surface has no resultant; on the top face it is p * area, downward
    assert np.abs(pressure_on_faces(len(m.nodes), m.nodes, faces, 3.0).sum(axis=0)).max() < 1e-9
    assert pressure_on_faces(len(m.nodes), m.nodes, top, 3.0).sum(axis=0) == pytest.approx([0, 0, -3.0 * 40.0])
    area, normal = face_areas_normals(m.nodes, top)
    assert area.sum() == pytest.approx(40.0) and np.allclose(normal, [0, 0, 1])


def test_hip_loading_on_the_synthetic_femur():
    from surgtwin.core.mesh.tetra import tet_mesh
    from tests.core.sim.synthetic import HEAD_CENTRE, HEAD_RADIUS, femur

    labels, ct = femur()
    mesh = tet_mesh(labels, ["femur_left"], size_mm=4.0, ct=ct)
    load = hip_loading(mesh, load="walking", body_weight_kg=70.0, side="left")
    assert load.total_force_n == pytest.approx(hip_joint_force_n("walking", body_weight_kg=70.0, side="left"))
    # the loaded patch is on the top of the head, facing the acetabulum (superomedial)
    p = mesh.nodes[load.load_nodes]
    assert np.all(np.linalg.norm(p - HEAD_CENTRE, axis=1) < HEAD_RADIUS + 3.0)
    assert np.all(p[:, 2] > HEAD_CENTRE[2])
    # the distal 10 mm of the shaft is fixed
    zmin = mesh.nodes[:, 2].min()
    assert np.all(mesh.nodes[load.fixed_nodes, 2] < zmin + 10.0) and len(load.fixed_nodes) > 10
    assert "1717 N" in load.description and "LPS" in load.description
    with pytest.raises(SurgtwinError, match="head centre"):
        hip_loading(mesh, implant_regions=[2])


def test_vertebral_compression_and_screw_pullout_on_a_block():
    m = box(np.linspace(-20, 20, 11), np.linspace(-15, 15, 9), np.linspace(0, 30, 9))
    comp = vertebral_compression(m, force_n=1200.0)
    assert comp.total_force_n == pytest.approx([0, 0, -1200.0])
    assert np.all(m.nodes[comp.load_nodes, 2] == 30.0) and np.all(m.nodes[comp.fixed_nodes, 2] == 0.0)
    assert np.all(m.nodes[comp.load_nodes, 1] <= 0.0)  # the anterior half (the body)
    # a "screw" region: elements near the axis x = y = 0 from the top down 20 mm
    c = m.nodes[m.elements].mean(axis=1)
    regions = np.where((np.hypot(c[:, 0], c[:, 1]) < 4.0) & (c[:, 2] > 10.0), 2, 1)
    ms = as_tetmesh(m.nodes, m.elements, regions, {1: "bone", 2: "screw"})
    pull = screw_pullout(ms, [2], head_lps=[0, 0, 30.0], axis_lps=[0, 0, -1.0], force_n=400.0, head_depth_mm=4.0)
    assert pull.total_force_n == pytest.approx([0, 0, 400.0])  # out of the bone
    assert np.all(ms.nodes[pull.load_nodes, 2] >= 26.0)
    far = ms.nodes[pull.fixed_nodes]  # farther than 15 mm from the screw axis over its nodes (z 30 -> 7.5)
    z_on_axis = np.clip(far[:, 2], 7.5, 30.0)
    assert np.all(np.linalg.norm(far - np.column_stack([0 * z_on_axis, 0 * z_on_axis, z_on_axis]), axis=1) > 15.0)
    assert len(pull.fixed_nodes) > 20
    with pytest.raises(SurgtwinError, match="between 0 and 20000"):
        screw_pullout(ms, [2], [0, 0, 30], [0, 0, -1], force_n=-5.0)


def test_gruen_zones_on_a_synthetic_stem():
    top, tip, lateral = np.zeros(3), np.array([0.0, 0.0, -120.0]), np.array([1.0, 0.0, 0.2])  # lateral gets projected
    pts = {1: [8, 0, -10], 2: [8, 3, -60], 3: [8, -3, -100], 4: [2, 0, -130], 5: [-8, 0, -100], 6: [-8, 0, -60],
           7: [-8, 0, -20]}
    more = {"greater trochanter": ([10, 0, 30], 1), "calcar above the cut": ([-10, 0, 5], 7),
            "far below the tip": ([0, 0, -170], 0), "far above": ([0, 0, 70], 0), "just below the tip": ([-3, 0, -121], 4)}
    p = np.array(list(pts.values()) + [v for v, _ in more.values()], float)
    z = gruen_zones(p, top, tip, lateral)
    assert z.tolist() == list(pts) + [e for _, e in more.values()]
    excl = np.zeros(len(p), bool)
    excl[0] = True
    assert gruen_zones(p, top, tip, lateral, exclude=excl)[0] == 0
    assert sorted(GRUEN_NAMES) == [1, 2, 3, 4, 5, 6, 7]
    with pytest.raises(SurgtwinError, match="parallel"):
        gruen_zones(p, top, tip, [0, 0, 1])


def test_axial_thirds_and_principal_extent():
    p = np.array([[0, 0, 1.0], [0, 0, 4.0], [0, 0, 8.0], [0, 0, 11.0], [5, 0, 5.0], [0, 0, -1.0]])
    assert axial_thirds(p, [0, 0, 0], [0, 0, 9.0]).tolist() == [1, 2, 3, 0, 2, 0]
    assert axial_thirds(p, [0, 0, 0], [0, 0, 9.0], radius_mm=2.0).tolist() == [1, 2, 3, 0, 0, 0]
    line = np.column_stack([np.zeros(20), np.zeros(20), np.linspace(-5, 15, 20)])
    a, b = principal_extent(line, direction=[0, 0, 1])
    assert a == pytest.approx([0, 0, -5]) and b == pytest.approx([0, 0, 15])



def test_nodal_averages_of_an_element_field():
    from surgtwin.core.sim.fields import nodal_average

    m = box(np.linspace(0, 4, 5), np.linspace(0, 2, 3), np.linspace(0, 2, 3))
    c = m.nodes[m.elements].mean(axis=1)
    m = as_tetmesh(m.nodes, m.elements, np.where(c[:, 0] < 2, 1, 2))
    v = nodal_average(m, np.where(m.regions == 1, 3.0, 7.0), m.regions == 1)
    assert np.allclose(v[m.nodes[:, 0] <= 2.0], 3.0) and np.all(np.isnan(v[m.nodes[:, 0] > 2.0]))
    both = nodal_average(m, np.where(m.regions == 1, 3.0, 7.0))
    at_interface = both[np.isclose(m.nodes[:, 0], 2.0)]
    assert np.all((at_interface > 3.0) & (at_interface < 7.0))
    assert np.allclose(both[m.nodes[:, 0] < 1.0], 3.0) and np.allclose(both[m.nodes[:, 0] > 3.0], 7.0)
