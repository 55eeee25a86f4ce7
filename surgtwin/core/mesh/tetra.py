"""Tetrahedral meshes of structures for finite elements: a clean, licence-free lattice mesher.

Method (all numpy/scipy, no third-party mesher; see README.md "third-party licences"):

1. Smooth indicator fields: each chosen structure's voxel mask blurred with a small Gaussian, and the
   union's; their 0.5 level sets are the (sub-voxel) structure boundaries.
2. A cubic lattice of edge ``size_mm`` aligned with the label map's index axes (so it is a true cube
   lattice in LPS for any direction matrix), every cube split into 6 Kuhn tetrahedra (all cubes the
   same way, so the mesh is conforming). A tetrahedron is kept when the union field at its centroid
   is >= 0.5; its region is the structure with the largest field there.
3. Outer-boundary nodes are moved onto the union's 0.5 level set and interface nodes between two
   structures onto the first structure's level set (a few Newton steps along the field gradient,
   at most half an element size).
4. Inversion guard: a tetrahedron whose scaled Jacobian falls below ``min_scaled_jacobian`` gets its
   nodes' moves halved, then undone; the undisplaced lattice is valid, so this always ends with no
   inverted element.

Elements are ordered with positive volume in LPS (``MeshTet`` accepts them directly). Per-element
mean HU is the 4-point Gauss rule of the trilinearly interpolated CT over the tetrahedron.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.mesh.surfaces import compact_ids
from surgtwin.core.progress import CancelToken, ProgressFn, check, report

#: Kuhn split of the unit cube (corner bits: k=4, j=2, i=1): one tetrahedron per axis permutation
_AXIS_BIT = (4, 2, 1)
_KUHN = []
for _perm in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)):
    _c, _tet = 0, [0]
    for _ax in _perm:
        _c |= _AXIS_BIT[_ax]
        _tet.append(_c)
    _KUHN.append(_tet)
_KUHN = np.array(_KUHN, dtype=np.int64)  # (6, 4) corner codes
_CORNER_OFFSETS = np.array([[(c >> 2) & 1, (c >> 1) & 1, c & 1] for c in range(8)], dtype=np.int64)

#: faces of a tetrahedron (vertex triples), face f is opposite vertex f
_TET_FACES = np.array([[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]], dtype=np.int64)


@dataclass
class TetQuality:
    elements: int
    nodes: int
    inverted: int
    min_dihedral_deg: float
    mean_min_dihedral_deg: float
    min_scaled_jacobian: float
    mean_scaled_jacobian: float
    volume_ml: dict[str, float] = field(default_factory=dict)
    voxel_volume_ml: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "elements": self.elements,
            "nodes": self.nodes,
            "inverted": self.inverted,
            "min_dihedral_deg": round(self.min_dihedral_deg, 3),
            "mean_min_dihedral_deg": round(self.mean_min_dihedral_deg, 3),
            "min_scaled_jacobian": round(self.min_scaled_jacobian, 4),
            "mean_scaled_jacobian": round(self.mean_scaled_jacobian, 4),
            "volume_ml": {k: round(v, 4) for k, v in self.volume_ml.items()},
            "voxel_volume_ml": {k: round(v, 4) for k, v in self.voxel_volume_ml.items()},
        }


@dataclass(eq=False)
class TetMesh:
    """Tetrahedra in LPS mm: ``nodes`` (N, 3), ``elements`` (M, 4) positively oriented, ``regions``
    (M,) label value of each element, ``region_names`` {value: name}, ``mean_hu`` (M,) or None."""

    nodes: np.ndarray
    elements: np.ndarray
    regions: np.ndarray
    region_names: dict[int, str]
    size_mm: float
    mean_hu: np.ndarray | None = None
    quality: TetQuality | None = None

    def to_skfem(self):
        """A ``skfem.MeshTet`` (nodes as columns, in mm)."""
        from skfem import MeshTet

        return MeshTet(np.ascontiguousarray(self.nodes.T), np.ascontiguousarray(self.elements.T))

    def element_volumes_mm3(self) -> np.ndarray:
        return tet_volumes(self.nodes, self.elements)

    def boundary_faces(self) -> np.ndarray:
        """(F, 3) outward-wound boundary triangles of the whole mesh."""
        return self.boundary()[0]

    def boundary(self, elements: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """((F, 3) outward-wound boundary triangles, (F,) the element each belongs to) of the whole
        mesh, or of the sub-mesh of the element indices ``elements`` (e.g. the bone without the
        implant): the surface to colour with per-element results."""
        idx = np.arange(len(self.elements)) if elements is None else np.asarray(elements, np.int64)
        faces, _, counts, first = _faces(self.elements[idx])
        keep = first[counts == 1]
        return faces[keep], idx[keep // 4]

    def __repr__(self) -> str:
        return f"TetMesh(nodes={len(self.nodes)}, elements={len(self.elements)}, regions={self.region_names})"


# -- element geometry -----------------------------------------------------------------------------
def tet_volumes(nodes: np.ndarray, elements: np.ndarray) -> np.ndarray:
    """Signed volumes (mm^3); positive for right-handed (p1-p0, p2-p0, p3-p0)."""
    p = nodes[elements]
    a, b, c = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]
    return np.einsum("ij,ij->i", a, np.cross(b, c)) / 6.0


def scaled_jacobians(nodes: np.ndarray, elements: np.ndarray) -> np.ndarray:
    """Minimum over the 4 corners of det(e1, e2, e3) / (|e1||e2||e3|), times sqrt(2) (1 = regular
    tetrahedron, <= 0 = inverted/degenerate)."""
    p = nodes[elements]
    out = np.full(len(elements), np.inf)
    # corner v with its three edges in an order of the same handedness as (1, 2, 3) at corner 0
    for v, (a, b, c) in enumerate(((1, 2, 3), (0, 3, 2), (0, 1, 3), (0, 2, 1))):
        e1, e2, e3 = p[:, a] - p[:, v], p[:, b] - p[:, v], p[:, c] - p[:, v]
        det = np.einsum("ij,ij->i", e1, np.cross(e2, e3))
        norm = np.linalg.norm(e1, axis=1) * np.linalg.norm(e2, axis=1) * np.linalg.norm(e3, axis=1)
        out = np.minimum(out, det / np.maximum(norm, 1e-300))
    return out * np.sqrt(2.0)


def dihedral_angles_deg(nodes: np.ndarray, elements: np.ndarray) -> np.ndarray:
    """(M, 6) interior dihedral angles in degrees."""
    p = nodes[elements]
    normals = []
    for f in _TET_FACES:
        n = np.cross(p[:, f[1]] - p[:, f[0]], p[:, f[2]] - p[:, f[0]])
        normals.append(n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-300))
    ang = []
    for i in range(4):
        for j in range(i + 1, 4):
            cos = np.clip(np.einsum("ij,ij->i", normals[i], normals[j]), -1.0, 1.0)
            ang.append(180.0 - np.degrees(np.arccos(cos)))
    return np.stack(ang, axis=1)


def _faces(elements: np.ndarray):
    """All element faces (outward wound for positive elements), unique keys, counts, first index."""
    faces = elements[:, _TET_FACES].reshape(-1, 3)
    srt = np.sort(faces, axis=1)
    n = int(faces.max()) + 1 if len(faces) else 1
    if n ** 3 < 2**62:  # one int64 key per face: far faster than np.unique(axis=0)
        key = (srt[:, 0] * n + srt[:, 1]) * n + srt[:, 2]
        order = np.argsort(key, kind="stable")
        ks = key[order]
        start = np.r_[True, ks[1:] != ks[:-1]]
        group = np.cumsum(start) - 1
        inverse = np.empty(len(key), np.int64)
        inverse[order] = group
        first = order[start]
        counts = np.diff(np.r_[np.flatnonzero(start), len(key)])
        return faces, inverse, counts, first
    _, first, inverse, counts = np.unique(srt, axis=0, return_index=True, return_inverse=True, return_counts=True)
    return faces, inverse.ravel(), counts, first


# -- the mesher -----------------------------------------------------------------------------------
def _resolve(labelmap, structures) -> list[tuple[int, str]]:
    if isinstance(structures, (str, int)):
        structures = [structures]
    out = []
    for s in structures:
        value = labelmap.labels.by_name(s).value if isinstance(s, str) else int(s)
        name = labelmap.labels[value].name if value in labelmap.labels else f"label_{value}"
        if not np.any(labelmap.array == value):
            raise SurgtwinError(f"structure {name!r} (label {value}) has no voxels; cannot build a tet mesh")
        out.append((value, name))
    if not out:
        raise SurgtwinError("no structure chosen for the tet mesh")
    if len({v for v, _ in out}) != len(out):
        raise SurgtwinError("a structure is listed twice for the tet mesh")
    return out


def _sample(field_: np.ndarray, q: np.ndarray, cval: float = 0.0) -> np.ndarray:
    from scipy.ndimage import map_coordinates

    return map_coordinates(field_, q.T, order=1, mode="constant", cval=cval, prefilter=False)


def tet_mesh(
    labelmap,
    structures,
    *,
    size_mm: float = 2.0,
    ct=None,
    smoothing_sigma_mm: float | None = None,
    snap: bool = True,
    min_scaled_jacobian: float = 0.2,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> TetMesh:
    """Tetrahedral mesh of one structure or several touching ones (e.g. ``["femur", "implant"]``).

    ``size_mm``: lattice cube edge (element edges are size, size*sqrt(2), size*sqrt(3)).
    ``ct``: a CT ``Volume`` in HU (any grid in the same LPS frame) for per-element mean HU.
    ``smoothing_sigma_mm``: blur of the masks before meshing (default: half the smallest voxel size).
    """
    from scipy.ndimage import gaussian_filter

    from surgtwin.core.types import LabelMap

    if not isinstance(labelmap, LabelMap):
        raise SurgtwinError("a tet mesh needs a LabelMap")
    if not (0.05 <= float(size_mm) <= 100.0):
        raise SurgtwinError(f"tet element size must be between 0.05 and 100 mm, got {size_mm}")
    chosen = _resolve(labelmap, structures)
    spacing = labelmap.spacing_mm
    step = float(size_mm) / spacing  # lattice step in voxels along (k, j, i)
    if np.any(step < 0.25):
        raise SurgtwinError(f"tet element size {size_mm} mm is below a quarter voxel", hint="use a larger size")
    report(progress, 0.0, "tet mesh: fields")

    # crop to the chosen structures plus a margin of one lattice step and 3 sigma
    values = np.array([v for v, _ in chosen])
    union = np.isin(labelmap.array, values)
    idx = np.nonzero(union)
    sigma_mm = float(smoothing_sigma_mm) if smoothing_sigma_mm is not None else 0.5 * float(spacing.min())
    sigma_vox = sigma_mm / spacing
    margin = np.ceil(step + 3 * sigma_vox + 2).astype(int)
    lo = np.maximum(np.array([i.min() for i in idx]) - margin, 0)
    hi = np.minimum(np.array([i.max() for i in idx]) + margin + 1, labelmap.shape)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    sub = labelmap.array[sl]
    voxel_ml = labelmap.voxel_volume_ml

    def blur(mask):
        f = mask.astype(np.float32)
        return gaussian_filter(f, sigma_vox, mode="constant") if sigma_mm > 0 else f

    # a field that is 0.5 exactly half-way between an inside and an outside voxel centre
    fields = [blur(sub == v) for v in values]
    f_union = fields[0] if len(fields) == 1 else blur(np.isin(sub, values))
    check(cancel)
    report(progress, 0.2, "tet mesh: lattice")

    # lattice nodes in (cropped) index coordinates
    extent = np.array(sub.shape, float) - 1.0
    n_cells = np.maximum(np.ceil(extent / step).astype(int), 1)
    grids = [np.arange(n + 1) for n in n_cells]
    node_shape = tuple(n + 1 for n in n_cells)
    # cubes whose corners touch the structure (cheap pre-filter on node values)
    node_q = np.stack(np.meshgrid(*grids, indexing="ij"), axis=-1).reshape(-1, 3) * step
    node_val = _sample(f_union, node_q).reshape(node_shape)
    cube_max = node_val[:-1, :-1, :-1].copy()
    for dk in (0, 1):
        for dj in (0, 1):
            for di in (0, 1):
                np.maximum(cube_max, node_val[dk:dk + n_cells[0], dj:dj + n_cells[1], di:di + n_cells[2]], out=cube_max)
    cubes = np.argwhere(cube_max > 0.05)  # (C, 3)
    if len(cubes) == 0:
        raise SurgtwinError(f"structure(s) {[n for _, n in chosen]} are smaller than one element of {size_mm} mm")
    # tetrahedra of those cubes as flat lattice-node ids
    strides = np.array([node_shape[1] * node_shape[2], node_shape[2], 1], dtype=np.int64)
    cube_base = cubes @ strides
    corner_ids = _CORNER_OFFSETS @ strides  # (8,)
    tets = cube_base[:, None, None] + corner_ids[_KUHN][None, :, :]  # (C, 6, 4)
    tets = tets.reshape(-1, 4)
    flat_q = lambda ids: np.stack(np.unravel_index(ids, node_shape), axis=-1).astype(float) * step  # noqa: E731
    centroids = flat_q(tets).mean(axis=1)
    keep = _sample(f_union, centroids) >= 0.5
    keep = _fill_nonmanifold_edges(tets, keep, int(np.prod(node_shape)))
    tets, centroids = tets[keep], centroids[keep]
    if len(tets) == 0:
        raise SurgtwinError(f"structure(s) {[n for _, n in chosen]} are smaller than one element of {size_mm} mm")
    region_idx = np.argmax(np.stack([_sample(f, centroids) for f in fields]), axis=0)
    check(cancel)
    report(progress, 0.45, f"tet mesh: {len(tets)} elements")

    used, elements = compact_ids(tets, int(np.prod(node_shape)))
    q0 = flat_q(used)  # cropped index coords of the nodes (undisplaced)
    A = labelmap.affine[:3, :3]
    origin = labelmap.affine[:3, 3] + A @ lo

    def to_world(q):
        return q @ A.T + origin

    x0 = to_world(q0)
    vol0 = tet_volumes(x0, elements)
    neg = vol0 < 0
    elements[neg] = elements[neg][:, [0, 2, 1, 3]]

    disp = np.zeros_like(x0)
    if snap:
        disp = _snap_displacements(q0, elements, region_idx, fields, f_union, A, float(size_mm))
        check(cancel)
        report(progress, 0.7, "tet mesh: guarding element quality")
        disp = _guard(x0, disp, elements, min_scaled_jacobian)
    nodes = x0 + disp

    vols = tet_volumes(nodes, elements)
    sj = scaled_jacobians(nodes, elements)
    dih = dihedral_angles_deg(nodes, elements).min(axis=1)
    regions = values[region_idx].astype(np.int32)
    names = {int(v): n for v, n in chosen}
    quality = TetQuality(
        elements=int(len(elements)),
        nodes=int(len(nodes)),
        inverted=int(np.sum(vols <= 0)),
        min_dihedral_deg=float(dih.min()),
        mean_min_dihedral_deg=float(dih.mean()),
        min_scaled_jacobian=float(sj.min()),
        mean_scaled_jacobian=float(sj.mean()),
        volume_ml={n: float(vols[regions == v].sum() / 1000.0) for v, n in names.items()},
        voxel_volume_ml={n: float(np.count_nonzero(sub == v) * voxel_ml) for v, n in names.items()},
    )
    mesh = TetMesh(nodes, elements, regions, names, float(size_mm), quality=quality)
    if ct is not None:
        report(progress, 0.9, "tet mesh: HU per element")
        mesh.mean_hu = element_mean_hu(mesh, ct)
    report(progress, 1.0, f"tet mesh: {len(elements)} elements")
    return mesh


_TET_EDGES = np.array([[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]], dtype=np.int64)


def _fill_nonmanifold_edges(tets: np.ndarray, keep: np.ndarray, n_nodes: int, max_rounds: int = 20) -> np.ndarray:
    """Add candidate tetrahedra around boundary edges shared by more than two boundary faces (parts
    touching along an edge only), so the mesh boundary is a closed manifold surface. Only grows."""
    keep = keep.copy()
    edges_all = np.sort(tets[:, _TET_EDGES], axis=2)  # (T, 6, 2)
    keys_all = edges_all[..., 0] * n_nodes + edges_all[..., 1]
    for _ in range(max_rounds):
        kept = tets[keep]
        faces, _, counts, first = _faces(kept)
        bfaces = np.sort(faces[first[counts == 1]], axis=1)
        e = np.concatenate([bfaces[:, [0, 1]], bfaces[:, [1, 2]], bfaces[:, [0, 2]]])
        ekeys, ecounts = np.unique(e[:, 0] * n_nodes + e[:, 1], return_counts=True)
        bad = ekeys[ecounts > 2]
        if len(bad) == 0:
            break
        grow = ~keep & np.isin(keys_all, bad).any(axis=1)
        if not grow.any():
            break
        keep |= grow
    return keep


def _snap_displacements(q0, elements, region_idx, fields, f_union, A, size_mm) -> np.ndarray:
    """World displacements moving boundary nodes onto the union's 0.5 level set and interface nodes
    onto their structure's, each at most half an element size."""
    faces, inverse, counts, first = _faces(elements)
    face_elem = np.repeat(np.arange(len(elements)), 4)
    outer = np.unique(faces[first[counts == 1]])
    targets: list[tuple[np.ndarray, np.ndarray]] = [(outer, f_union)]
    if len(fields) > 1:
        # interior faces shared by elements of different structures
        order = np.argsort(inverse, kind="stable")
        inv_sorted = inverse[order]
        pair_start = np.nonzero(np.r_[True, inv_sorted[1:] != inv_sorted[:-1]])[0]
        two = counts[inv_sorted[pair_start]] == 2
        a = face_elem[order[pair_start[two]]]
        b = face_elem[order[pair_start[two] + 1]]
        differ = region_idx[a] != region_idx[b]
        iface_faces = faces[order[pair_start[two]][differ]]
        iface_region = np.minimum(region_idx[a[differ]], region_idx[b[differ]])
        for r in range(len(fields)):
            nodes_r = np.setdiff1d(np.unique(iface_faces[iface_region == r]), outer)
            if len(nodes_r):
                targets.append((nodes_r, fields[r]))
    Ainv = np.linalg.inv(A)
    disp = np.zeros((len(q0), 3))
    max_move = 0.5 * size_mm
    for nodes_idx, fld in targets:
        q = q0[nodes_idx].copy()
        for _ in range(4):
            phi = _sample(fld, q)
            g_q = np.stack(
                [(_sample(fld, q + e) - _sample(fld, q - e)) / 2.0 for e in np.eye(3)], axis=1
            )
            g_x = g_q @ Ainv  # world gradient = A^-T g_q (row-vector form)
            gg = np.einsum("ij,ij->i", g_x, g_x)
            ok = gg > 1e-12
            dx = np.zeros_like(g_x)
            dx[ok] = -((phi[ok] - 0.5) / gg[ok])[:, None] * g_x[ok]
            total = (q - q0[nodes_idx]) @ A.T + dx
            length = np.linalg.norm(total, axis=1)
            scale = np.where(length > max_move, max_move / np.maximum(length, 1e-300), 1.0)
            total *= scale[:, None]
            q = q0[nodes_idx] + total @ Ainv.T
        disp[nodes_idx] = (q - q0[nodes_idx]) @ A.T
    return disp


def _guard(x0, disp, elements, min_sj: float) -> np.ndarray:
    """Shrink, then undo, the moves of nodes of elements below ``min_sj`` (never leaves an inverted
    element: with every move undone the lattice elements are back to Kuhn quality)."""
    disp = disp.copy()
    kuhn_sj = float(scaled_jacobians(np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1.0]]), np.array([[0, 1, 2, 3]]))[0])
    if not (0 < min_sj < abs(kuhn_sj)):
        raise SurgtwinError(f"min_scaled_jacobian must be in (0, {abs(kuhn_sj):.3f}), got {min_sj}")
    moved = np.any(disp != 0, axis=1)
    cand = np.nonzero(moved[elements].any(axis=1))[0]
    it = 0
    while True:  # ends: from round 4 on each round undoes >= 1 move, and unmoved elements are good
        sj = scaled_jacobians(x0 + disp, elements[cand])
        bad = cand[sj < min_sj]
        if len(bad) == 0:
            break
        nodes = np.unique(elements[bad])
        disp[nodes] *= 0.5 if it < 4 else 0.0
        it += 1
    return disp


def element_mean_hu(mesh: TetMesh, ct) -> np.ndarray:
    """Per-element mean HU: 4-point Gauss rule on the trilinear CT (outside the CT counts as air)."""
    a, b = 0.5854101966249685, 0.1381966011250105
    bary = np.full((4, 4), b)
    np.fill_diagonal(bary, a)
    p = mesh.nodes[mesh.elements]  # (M, 4, 3)
    data = np.asarray(ct.array, dtype=np.float32)
    inv = np.linalg.inv(ct.affine)
    total = np.zeros(len(mesh.elements))
    for w in bary:
        x = np.einsum("k,mkd->md", w, p)
        q = x @ inv[:3, :3].T + inv[:3, 3]
        total += _sample(data, q, cval=-1000.0)
    return total / 4.0
