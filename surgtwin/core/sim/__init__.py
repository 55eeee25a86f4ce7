"""Simulation on the patient's twin: linear-elastic finite elements on bone + implant tet meshes, and
reduced-order (0D) blood flow in vessel trees.

Pure functions over numpy arrays and ``TetMesh`` (no case, no Qt); scipy, pyamg and scikit-fem are
imported inside the functions that need them. Units: mm, N, MPa; directions in patient LPS.

Public API
----------
* ``elasticity``: ``assemble_stiffness(nodes, elements, e_mpa, nu)`` (vectorised P1, equals
  scikit-fem's ``asm``), ``stiffness_pattern``, ``solve_elasticity(K, f, fixed_dofs, nodes)``
  (pyamg SA + CG with rigid-body modes, or ``method="direct"``), ``rigid_body_modes``,
  ``element_strains``/``element_stresses``/``von_mises``/``strain_energy_density``, ``SolveInfo``
* ``materials``: ``BoneMaterial`` (HU -> density -> modulus, ``DensityCalibration``,
  ``MORGAN_2003`` relations), ``ElasticMaterial``, ``implant_material(key)``
* ``loads``: ``Loading``, ``hip_loading``, ``hip_joint_force_n``, ``screw_pullout``,
  ``vertebral_compression``, ``fix_below_plane``, ``traction_on_faces``, ``region_point_load``
* ``zones``: ``gruen_zones``, ``axial_thirds``, ``GRUEN_NAMES``
* ``fields``: ``nodal_average(mesh, values, mask)`` (element field -> nodes); to colour a surface by
  an element field use ``TetMesh.boundary(elements)`` (triangles + the element each bounds)
* ``scenarios``: ``setup_for(mesh, placed, implant_region)`` (loads, zones, resection by implant type)
* ``study``: ``solve_static``, ``stress_shielding`` -> ``ShieldingResult`` (``table``,
  ``implant.safety_factor``, ``summary()``, ``table_text()``), ``compare`` (what if)
* ``flow`` / ``flow_model``: ``Segment``, ``Stenosis`` (Young-Tsai), ``RCR``, ``Network``, ``Blood``,
  ``Waveform``, ``PressureInlet``, ``solve_steady``, ``solve_pulsatile`` -> ``FlowResult``,
  ``virtual_stent``; the network of a patient's vessels is built by
  ``surgtwin.core.vessels.network_from_centerlines``
"""

from __future__ import annotations

from surgtwin.core.sim.elasticity import (
    SolveInfo,
    StiffnessPattern,
    assemble_stiffness,
    element_strains,
    element_stresses,
    rigid_body_modes,
    solve_elasticity,
    stiffness_pattern,
    strain_energy_density,
    von_mises,
)
from surgtwin.core.sim.fields import nodal_average
from surgtwin.core.sim.flow import (
    RCR,
    Blood,
    FlowResult,
    Network,
    PressureInlet,
    Segment,
    Stenosis,
    Waveform,
    solve_pulsatile,
    solve_steady,
    virtual_stent,
)
from surgtwin.core.sim.loads import (
    Loading,
    fix_below_plane,
    hip_joint_force_n,
    hip_loading,
    region_point_load,
    screw_pullout,
    traction_on_faces,
    vertebral_compression,
)
from surgtwin.core.sim.materials import (
    MORGAN_2003,
    BoneMaterial,
    DensityCalibration,
    DensityModulus,
    ElasticMaterial,
    implant_material,
)
from surgtwin.core.sim.study import ShieldingResult, StaticResult, compare, solve_static, stress_shielding
from surgtwin.core.sim.zones import GRUEN_NAMES, axial_thirds, gruen_zones

__all__ = [
    "SolveInfo", "StiffnessPattern", "assemble_stiffness", "element_strains", "element_stresses",
    "rigid_body_modes", "solve_elasticity", "stiffness_pattern", "strain_energy_density", "von_mises",
    "Loading", "fix_below_plane", "hip_joint_force_n", "hip_loading", "region_point_load", "screw_pullout",
    "traction_on_faces", "vertebral_compression",
    "MORGAN_2003", "BoneMaterial", "DensityCalibration", "DensityModulus", "ElasticMaterial", "implant_material",
    "ShieldingResult", "StaticResult", "compare", "solve_static", "stress_shielding",
    "GRUEN_NAMES", "axial_thirds", "gruen_zones", "nodal_average",
    "RCR", "Blood", "FlowResult", "Network", "PressureInlet", "Segment", "Stenosis", "Waveform", "solve_pulsatile",
    "solve_steady", "virtual_stent",
]
