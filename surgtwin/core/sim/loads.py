"""Loads and supports a surgeon understands, as nodal forces and fixed nodes on a ``TetMesh`` (LPS mm, N).

Directions are in patient LPS: +x toward the patient's Left, +y Posterior, +z Superior. For a femur,
lateral is +x on the left side and -x on the right.

* **Hip joint force** (``hip_joint_force_n``): a multiple of body weight (``body_weight_kg`` x
  9.81 N) acting on the femoral head, pointing inferiorly, laterally and slightly posteriorly (the
  acetabulum pushes the head down and out). ``ACTIVITIES``: ``walking`` 2.5 x BW, tilted 13 deg
  laterally (frontal plane) and 5 deg posteriorly (sagittal plane) from straight down; ``stairs``
  2.6 x BW, 13 deg laterally and 15 deg posteriorly (stair climbing loads the head more from the front,
  twisting the stem). Magnitudes and directions approximate the peak in-vivo forces of Bergmann et al.,
  "Hip contact forces and gait patterns from routine activities", J Biomech 34 (2001) 859-871
  (walking ~2.4 x BW, stairs ~2.5-2.6 x BW); ``"<k>xBW"`` gives k x BW in the walking direction.
* Intact femur: the force is spread by area over the femoral head's boundary faces within
  ``patch_radius_mm`` of the head's apex along the force (the surface point farthest against the
  force direction: where the acetabulum presses), facing against the force (``femoral_head_load``).
  Implanted: over the implant's nodes within ``patch_radius_mm`` of the prosthetic head centre (the
  trunnion), by nodal volume (``region_point_load``).
* Distal femur fixed: every node below a plane (``fix_below_plane``; by default the plane
  ``fixed_length_mm`` above the lowest node along the superior axis).
* **Screw pull-out** (``screw_pullout``): ``force_n`` along the screw axis, out of the bone, on the
  screw's head nodes (local z <= ``head_depth_mm`` from the head/shank junction); bone boundary nodes
  farther than ``fixed_beyond_mm`` from the screw axis segment are fixed.
* **Vertebral compression** (``vertebral_compression``): ``force_n`` downward (along -``up``) spread by
  area over the superior endplate (boundary faces facing up within 45 deg, in the top
  ``endplate_depth_mm`` of the anterior half, the vertebral body); the inferior endplate (the same rule
  at the bottom, facing down) is fixed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from surgtwin.core.errors import SurgtwinError

G_M_S2 = 9.81
SUPERIOR = np.array([0.0, 0.0, 1.0])
POSTERIOR = np.array([0.0, 1.0, 0.0])
#: activity -> (multiple of body weight, lateral tilt deg, posterior tilt deg); see the module text
ACTIVITIES = {"walking": (2.5, 13.0, 5.0), "stairs": (2.6, 13.0, 15.0)}


@dataclass
class Loading:
    """Nodal forces ``force_n`` (N, 3) and supports ``fixed_nodes`` (all three components) of one
    load case, with the loaded nodes and a description for people and provenance."""

    name: str
    description: str
    force_n: np.ndarray
    fixed_nodes: np.ndarray
    load_nodes: np.ndarray
    parameters: dict = field(default_factory=dict)

    @property
    def total_force_n(self) -> np.ndarray:
        return self.force_n.sum(axis=0)

    @property
    def fixed_dofs(self) -> np.ndarray:
        return node_dofs(self.fixed_nodes)


def node_dofs(nodes) -> np.ndarray:
    """The (x, y, z) degrees of freedom of ``nodes`` (``3 * node + component``)."""
    n = np.asarray(nodes, dtype=np.int64).ravel()
    return (3 * n[:, None] + np.arange(3)).ravel()


def _unit(v, what="direction") -> np.ndarray:
    v = np.asarray(v, dtype=float).reshape(3)
    n = float(np.linalg.norm(v))
    if not np.isfinite(n) or n < 1e-12:
        raise SurgtwinError(f"the {what} must be a non-zero 3-vector, got {v.tolist()}")
    return v / n


def lateral_lps(side: str) -> np.ndarray:
    s = str(side).lower()
    if s not in ("left", "right"):
        raise SurgtwinError(f"the femur side must be 'left' or 'right', got {side!r}")
    return np.array([1.0, 0.0, 0.0]) if s == "left" else np.array([-1.0, 0.0, 0.0])


def parse_activity(load: str | float) -> tuple[float, float, float, str]:
    """``(multiple of BW, lateral tilt deg, posterior tilt deg, name)`` from ``walking``, ``stairs``,
    ``"3xBW"``/``"3×BW"``/``"3"`` or a number."""
    if isinstance(load, int | float) and not isinstance(load, bool):
        k, name = float(load), f"{float(load):g}xBW"
    else:
        text = str(load).strip().lower().replace(" ", "")
        if text in ACTIVITIES:
            k, lat, post = ACTIVITIES[text]
            return k, lat, post, text
        m = re.fullmatch(r"([0-9]*\.?[0-9]+)(?:[x×*]bw)?", text)
        if not m:
            raise SurgtwinError(f"unknown load {load!r}", hint="use walking, stairs or a multiple of body weight like 3xBW")
        k, name = float(m.group(1)), f"{float(m.group(1)):g}xBW"
    if not (0 < k <= 20):
        raise SurgtwinError(f"the hip load must be between 0 and 20 x body weight, got {k:g}")
    return k, ACTIVITIES["walking"][1], ACTIVITIES["walking"][2], name


def hip_joint_force_n(load: str | float = "walking", *, body_weight_kg: float = 75.0, side: str = "left") -> np.ndarray:
    """The hip joint force on the femoral head (N, LPS) for an activity or a multiple of body weight."""
    if not (10.0 <= float(body_weight_kg) <= 400.0):
        raise SurgtwinError(f"body weight must be between 10 and 400 kg, got {body_weight_kg}")
    k, lat_deg, post_deg, _ = parse_activity(load)
    lat, post = np.radians(lat_deg), np.radians(post_deg)
    d = np.tan(lat) * lateral_lps(side) + np.tan(post) * POSTERIOR - SUPERIOR
    return k * float(body_weight_kg) * G_M_S2 * _unit(d)


# -- geometry helpers ------------------------------------------------------------------------------
def face_areas_normals(nodes: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Areas (F,) and outward unit normals (F, 3) of outward-wound triangles."""
    p = nodes[faces]
    c = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    a = np.linalg.norm(c, axis=1)
    return 0.5 * a, c / np.maximum(a, 1e-300)[:, None]


def traction_on_faces(n_nodes: int, nodes: np.ndarray, faces: np.ndarray, total_force) -> np.ndarray:
    """(N, 3) nodal forces of a uniform traction over ``faces`` adding up to ``total_force`` (each
    face's share by area, split equally over its three corners: exact for P1)."""
    if len(faces) == 0:
        raise SurgtwinError("no surface to put the load on")
    area, _ = face_areas_normals(nodes, faces)
    share = area / area.sum()
    out = np.zeros((n_nodes, 3))
    for c in range(3):
        np.add.at(out, faces[:, c], (share / 3.0)[:, None] * np.asarray(total_force, float)[None, :])
    return out


def pressure_on_faces(n_nodes: int, nodes: np.ndarray, faces: np.ndarray, pressure_mpa: float) -> np.ndarray:
    """(N, 3) nodal forces of a pressure ``pressure_mpa`` (MPa, positive pushes into the body) on
    outward-wound boundary ``faces`` (each face's force -p A n split equally over its corners)."""
    area, normal = face_areas_normals(nodes, faces)
    out = np.zeros((n_nodes, 3))
    for c in range(3):
        np.add.at(out, faces[:, c], (-pressure_mpa * area / 3.0)[:, None] * normal)
    return out


def nodal_volumes(nodes: np.ndarray, elements: np.ndarray) -> np.ndarray:
    """Lumped volume of each node (a quarter of each element it belongs to), mm^3."""
    p = nodes[elements]
    v = np.abs(np.einsum("ij,ij->i", p[:, 1] - p[:, 0], np.cross(p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]))) / 6.0
    return np.bincount(elements.ravel(), weights=np.repeat(v / 4.0, 4), minlength=len(nodes))


def fix_below_plane(nodes: np.ndarray, point, normal=SUPERIOR) -> np.ndarray:
    """Nodes on the far side of the plane through ``point`` against ``normal`` ((x - p) . n < 0)."""
    fixed = np.flatnonzero((nodes - np.asarray(point, float)) @ _unit(normal, "plane normal") < 0)
    if len(fixed) < 3:
        raise SurgtwinError("fewer than 3 nodes lie below the support plane: the body would be free",
                            hint="raise the support plane (a longer fixed length)")
    return fixed


def region_point_load(mesh, regions, point, total_force, *, radius_mm: float = 8.0, min_nodes: int = 4) -> np.ndarray:
    """(N, 3) forces adding up to ``total_force`` on the nodes of elements in ``regions`` within
    ``radius_mm`` of ``point`` (at least the ``min_nodes`` nearest), by lumped nodal volume."""
    sel = np.isin(mesh.regions, np.atleast_1d(regions))
    if not sel.any():
        raise SurgtwinError("the mesh has no elements of the loaded region")
    el = mesh.elements[sel]
    cand = np.unique(el)
    d = np.linalg.norm(mesh.nodes[cand] - np.asarray(point, float), axis=1)
    pick = cand[d <= radius_mm]
    if len(pick) < min_nodes:
        pick = cand[np.argsort(d)[:min_nodes]]
    w = nodal_volumes(mesh.nodes, el)[pick]
    w = w / w.sum() if w.sum() > 0 else np.full(len(pick), 1.0 / len(pick))
    out = np.zeros((len(mesh.nodes), 3))
    out[pick] = w[:, None] * np.asarray(total_force, float)[None, :]
    return out


# -- load cases ------------------------------------------------------------------------------------
def femoral_head_load(mesh, total_force, *, patch_radius_mm: float = 15.0) -> tuple[np.ndarray, np.ndarray]:
    """``(forces (N, 3), loaded nodes)``: ``total_force`` over the femoral head's contact patch (see
    the module text). The apex is the boundary point farthest against the force."""
    d = _unit(total_force, "hip force")
    faces = mesh.boundary_faces()
    area, normal = face_areas_normals(mesh.nodes, faces)
    centre = mesh.nodes[faces].mean(axis=1)
    apex = centre[int(np.argmax(-(centre @ d)))]
    sel = (np.linalg.norm(centre - apex, axis=1) <= patch_radius_mm) & (normal @ -d > 0.0) & (area > 0)
    forces = traction_on_faces(len(mesh.nodes), mesh.nodes, faces[sel], total_force)
    return forces, np.unique(faces[sel])


def hip_loading(mesh, *, load: str | float = "walking", body_weight_kg: float = 75.0, side: str = "left",
                implant_regions=None, head_centre_lps=None, patch_radius_mm: float | None = None,
                fixed_length_mm: float = 10.0, unsupported_regions=None) -> Loading:
    """Hip joint force on the femoral head (intact) or on the implant's head (``implant_regions`` and
    ``head_centre_lps`` given), distal femur fixed below a plane ``fixed_length_mm`` above its lowest
    node. Nodes only in elements of ``unsupported_regions`` (an implant reaching the support) stay free."""
    force = hip_joint_force_n(load, body_weight_kg=body_weight_kg, side=side)
    k, _, _, name = parse_activity(load)
    if implant_regions is not None:
        if head_centre_lps is None:
            raise SurgtwinError("the implant's head centre is needed to load an implanted femur")
        r = 8.0 if patch_radius_mm is None else patch_radius_mm
        forces = region_point_load(mesh, implant_regions, head_centre_lps, force, radius_mm=r)
        where = f"the implant's head (nodes within {r:g} mm of its centre)"
    else:
        r = 15.0 if patch_radius_mm is None else patch_radius_mm
        forces, _ = femoral_head_load(mesh, force, patch_radius_mm=r)
        where = f"the femoral head (a {r:g} mm contact patch)"
    loaded = np.flatnonzero(np.any(forces != 0, axis=1))
    low = float(mesh.nodes[:, 2].min())
    fixed = fix_below_plane(mesh.nodes, [0.0, 0.0, low + fixed_length_mm])
    if unsupported_regions is not None:
        bone_nodes = np.unique(mesh.elements[~np.isin(mesh.regions, np.atleast_1d(unsupported_regions))])
        fixed = np.intersect1d(fixed, bone_nodes)
        if len(fixed) < 3:
            raise SurgtwinError("no bone below the support plane to fix", hint="the image must include more femur")
    desc = (f"hip joint force {name} = {np.linalg.norm(force):.0f} N ({k:g} x {body_weight_kg:g} kg body weight) on "
            f"{where}, direction LPS {np.round(force / np.linalg.norm(force), 3).tolist()}; femur fixed below "
            f"z = {low + fixed_length_mm:.1f} mm (the distal {fixed_length_mm:g} mm in the image)")
    params = {"load": name, "multiple_of_body_weight": k, "body_weight_kg": float(body_weight_kg),
              "force_lps_n": np.round(force, 2).tolist(), "side": side, "patch_radius_mm": r,
              "fixed_below_z_mm": round(low + fixed_length_mm, 3)}
    return Loading("hip", desc, forces, fixed, loaded, params)


def screw_pullout(mesh, implant_regions, head_lps, axis_lps, *, force_n: float = 500.0, length_mm: float | None = None,
                  head_depth_mm: float = 0.0, fixed_beyond_mm: float = 15.0) -> Loading:
    """Axial pull-out of a screw (see the module text). ``head_lps``: the head/shank junction;
    ``axis_lps``: toward the tip."""
    if not (0 < force_n <= 20_000):
        raise SurgtwinError(f"the pull-out force must be between 0 and 20000 N, got {force_n}")
    axis = _unit(axis_lps, "screw axis")
    head = np.asarray(head_lps, float)
    sel = np.isin(mesh.regions, np.atleast_1d(implant_regions))
    inodes = np.unique(mesh.elements[sel])
    if len(inodes) == 0:
        raise SurgtwinError("the mesh has no screw elements")
    t = (mesh.nodes[inodes] - head) @ axis
    length = float(t.max()) if length_mm is None else float(length_mm)
    pick = inodes[t <= head_depth_mm]
    if len(pick) < 4:
        pick = inodes[np.argsort(t)[:max(4, len(inodes) // 10)]]
    w = nodal_volumes(mesh.nodes, mesh.elements[sel])[pick]
    forces = np.zeros((len(mesh.nodes), 3))
    forces[pick] = (w / w.sum())[:, None] * (-force_n * axis)[None, :]
    bnodes = np.setdiff1d(np.unique(mesh.boundary_faces()), inodes)
    rel = mesh.nodes[bnodes] - head
    tt = np.clip(rel @ axis, 0.0, length)
    dist = np.linalg.norm(rel - tt[:, None] * axis, axis=1)
    fixed = bnodes[dist > fixed_beyond_mm]
    if len(fixed) < 3:
        raise SurgtwinError(f"no bone surface farther than {fixed_beyond_mm:g} mm from the screw to hold",
                            hint="a smaller fixed distance, or mesh more bone around the screw")
    desc = (f"screw pull-out {force_n:g} N along the screw axis (out of the bone) on its head; bone surface "
            f"farther than {fixed_beyond_mm:g} mm from the screw fixed")
    params = {"load": "pullout", "force_n": float(force_n), "axis_lps": np.round(axis, 5).tolist(),
              "fixed_beyond_mm": float(fixed_beyond_mm)}
    return Loading("screw_pullout", desc, forces, fixed, pick, params)


def _endplate_faces(mesh, up, depth_mm: float, top: bool) -> np.ndarray:
    faces = mesh.boundary_faces()
    area, normal = face_areas_normals(mesh.nodes, faces)
    centre = mesh.nodes[faces].mean(axis=1)
    h = centre @ up
    post = centre @ _unit(POSTERIOR - np.dot(POSTERIOR, up) * up, "posterior")
    anterior = post <= np.median(mesh.nodes @ _unit(POSTERIOR - np.dot(POSTERIOR, up) * up))
    sgn = 1.0 if top else -1.0
    facing = sgn * (normal @ up) >= np.cos(np.radians(45.0))
    level = (h >= h.max() - depth_mm) if top else (h <= h.min() + depth_mm)
    sel = facing & level & anterior & (area > 0)
    if not sel.any():
        sel = facing & level & (area > 0)
    if not sel.any():
        raise SurgtwinError(f"no {'superior' if top else 'inferior'} endplate found on the mesh",
                            hint="check the up direction and the endplate depth")
    return faces[sel]


def vertebral_compression(mesh, *, force_n: float = 1000.0, up_lps=SUPERIOR, endplate_depth_mm: float = 6.0) -> Loading:
    """Axial compression of a vertebra (or a stack) with its inferior endplate fixed."""
    if not (0 < force_n <= 20_000):
        raise SurgtwinError(f"the compression force must be between 0 and 20000 N, got {force_n}")
    up = _unit(up_lps, "up direction")
    top = _endplate_faces(mesh, up, endplate_depth_mm, True)
    bottom = _endplate_faces(mesh, up, endplate_depth_mm, False)
    forces = traction_on_faces(len(mesh.nodes), mesh.nodes, top, -force_n * up)
    fixed = np.unique(bottom)
    desc = (f"vertebral compression {force_n:g} N on the superior endplate ({len(top)} faces), inferior endplate "
            f"fixed ({len(fixed)} nodes)")
    params = {"load": "compression", "force_n": float(force_n), "up_lps": np.round(up, 5).tolist(),
              "endplate_depth_mm": float(endplate_depth_mm)}
    return Loading("vertebral_compression", desc, forces, fixed, np.unique(top), params)
