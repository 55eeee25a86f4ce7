"""Centerlines with radius from a binary vessel mask (skeleton + distance map, then cross-sections).

Method (the skeleton/distance-map family of centerline extraction; e.g. Lee, Kashyap & Chu 1994,
CVGIP 56:462, the thinning ``skimage.morphology.skeletonize`` implements for 3D):

1. the mask is cropped to its bounding box, holes filled (``binary_fill_holes``: cavities inside
   the lumen; no closing, which would fill in a stenosis on thick slices) and split into 26-connected pieces: more than one sizeable piece is an
   error naming their sizes (or ``components="largest"`` keeps the largest); specks below
   ``min_piece_ml`` are dropped with a warning;
2. 3D thinning gives a one-voxel skeleton; its voxels with one neighbour are ends, clusters of
   voxels with three or more are junctions; the runs between them are branches (ordered voxel
   paths);
3. spurs (a branch from a junction to an end shorter than ``spur_factor`` x the junction's
   inscribed radius) are removed and two-branch nodes merged, until none is left; loops are
   opened (the closing branch of a cycle is dropped, with a warning);
4. the tree is rooted at the end of the widest vessel (or the end nearest ``root_lps``), every
   branch runs proximal -> distal, terminal ends are extended along their tangent to the mask's
   surface, and each branch is smoothed (Gaussian, sigma ``smooth_mm``) and resampled every
   ``step_mm`` in LPS mm;
5. radius: the inscribed radius from the Euclidean distance map (anisotropic ``sampling``), and
   the cross-section equivalent radius perpendicular to the centerline
   (:mod:`surgtwin.core.vessels.cross_section`), used where the section is clean (away from
   junctions and ends) and interpolated along the branch elsewhere;
6. stenoses per branch (:mod:`surgtwin.core.vessels.stenosis`).

Public API: ``extract_centerlines(mask, affine, ...) -> CenterlineGraph``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import CancelToken, ProgressFn, check, report
from surgtwin.core.vessels.cross_section import cross_section_radii, sample_mask
from surgtwin.core.vessels.graph import Branch, CenterlineGraph
from surgtwin.core.vessels.stenosis import DEFAULT_MIN_PERCENT, find_stenoses

_OFFSETS = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)
                     if (a, b, c) != (0, 0, 0)])


def spacing_of(affine: np.ndarray) -> np.ndarray:
    """Voxel spacing in mm along the array axes (slice, row, column)."""
    return np.linalg.norm(np.asarray(affine, float)[:3, :3], axis=0)


# -- 1. the mask ----------------------------------------------------------------------------------
@dataclass
class PreparedMask:
    mask: np.ndarray  # bool, cropped (with a margin)
    origin: np.ndarray  # index of the crop's (0, 0, 0) in the full grid
    warnings: list = field(default_factory=list)


def prepare_mask(mask, spacing_mm, *, components: str = "error", min_piece_ml: float = 0.05,
                 fill_holes: bool = True) -> PreparedMask:
    """Crop, fill small holes and keep one 26-connected piece (see the module docstring)."""
    from scipy import ndimage

    m = np.asarray(mask) > 0
    if m.ndim != 3:
        raise SurgtwinError(f"a vessel mask must be 3-D, got shape {m.shape}")
    if components not in ("error", "largest"):
        raise SurgtwinError(f"components must be 'error' or 'largest', got {components!r}")
    if not m.any():
        raise SurgtwinError("the vessel mask is empty", hint="check the structures/label values chosen")
    nz = np.nonzero(m)
    pad = 3
    lo = np.array([max(0, int(a.min()) - pad) for a in nz])
    hi = np.array([min(s, int(a.max()) + pad + 1) for a, s in zip(nz, m.shape, strict=True)])
    crop = m[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].copy()
    if fill_holes:
        crop = ndimage.binary_fill_holes(crop)
    lab, n = ndimage.label(crop, structure=np.ones((3, 3, 3), bool))
    warnings = []
    if n > 1:
        sizes = np.bincount(lab.ravel())[1:]
        voxel_ml = float(np.prod(spacing_mm)) / 1000.0
        ml = sizes * voxel_ml
        order = np.argsort(-sizes)
        keep = [int(i) + 1 for i in order if ml[i] >= min_piece_ml]
        specks = [i for i in order if ml[i] < min_piece_ml]
        if specks:
            warnings.append(f"dropped {len(specks)} speck(s) under {min_piece_ml:g} ml "
                            f"({int(sizes[specks].sum())} voxels)")
        if len(keep) > 1 and components == "error":
            pieces = ", ".join(f"{ml[k - 1]:.2f} ml" for k in keep[:8]) + (" ..." if len(keep) > 8 else "")
            raise SurgtwinError(f"the vessel mask is in {len(keep)} disconnected pieces ({pieces})",
                                hint="join them in the label map, or keep the largest piece "
                                     "(components='largest', --largest on the command line)")
        if len(keep) > 1:
            warnings.append("kept the largest of " + str(len(keep)) + " pieces (" +
                            ", ".join(f"{ml[k - 1]:.2f} ml" for k in keep[:8]) + ")")
        if not keep:
            keep = [int(order[0]) + 1]
        crop = lab == keep[0]
    return PreparedMask(crop, lo, warnings)


# -- 2. skeleton -> graph ------------------------------------------------------------------------
@dataclass
class _Edge:
    a: int
    b: int
    path: np.ndarray  # (n, 3) float index coords (crop), node positions included at both ends


def _skeleton_graph(skel: np.ndarray) -> tuple[list[np.ndarray], list[_Edge]]:
    """(node positions, edges) of a one-voxel skeleton (index coordinates of the crop)."""
    from scipy import ndimage

    vox = np.argwhere(skel)
    nvox = len(vox)
    lookup = np.full(skel.shape, -1, np.int64)
    lookup[tuple(vox.T)] = np.arange(nvox)
    padded = np.pad(lookup, 1, constant_values=-1)
    nbrs = padded[tuple((vox[:, None, :] + 1 + _OFFSETS[None]).transpose(2, 0, 1))]  # (nvox, 26)
    deg = (nbrs >= 0).sum(axis=1)
    is_node = (deg != 2)
    # node voxels: ends (deg <= 1) are their own node; junction voxels (deg >= 3) cluster
    node_of = np.full(nvox, -1, np.int64)
    positions: list[np.ndarray] = []
    junction = np.zeros(skel.shape, bool)
    junction[tuple(vox[deg >= 3].T)] = True
    jl, nj = ndimage.label(junction, structure=np.ones((3, 3, 3), bool))
    if nj:
        jv = np.flatnonzero(deg >= 3)
        ids = jl[tuple(vox[jv].T)] - 1
        node_of[jv] = ids
        for k in range(nj):
            positions.append(vox[jv[ids == k]].mean(axis=0))
    for v in np.flatnonzero(deg <= 1):
        node_of[v] = len(positions)
        positions.append(vox[v].astype(float))
    edges: list[_Edge] = []
    visited = np.zeros(nvox, bool)
    direct: set[tuple[int, int]] = set()
    for v in np.flatnonzero(is_node & (deg >= 1)):
        na = int(node_of[v])
        for w in nbrs[v][nbrs[v] >= 0]:
            if is_node[w]:
                nb = int(node_of[w])
                if nb != na and (min(na, nb), max(na, nb)) not in direct:
                    direct.add((min(na, nb), max(na, nb)))
                    edges.append(_Edge(na, nb, np.array([positions[na], positions[nb]], float)))
                continue
            if visited[w]:
                continue
            path = [w]
            visited[w] = True
            prev, cur = v, w
            end = -1
            while True:
                nxt = [x for x in nbrs[cur] if x >= 0 and x != prev and not (x == v and len(path) == 1)]
                nxt_nodes = [x for x in nxt if is_node[x]]
                nxt_free = [x for x in nxt if not is_node[x] and not visited[x]]
                if nxt_nodes and (not nxt_free or len(path) > 1):
                    end = int(node_of[nxt_nodes[0]])
                    break
                if not nxt_free:
                    break
                prev, cur = cur, nxt_free[0]
                visited[cur] = True
                path.append(cur)
            if end < 0:
                continue  # a dangling run (should not happen on a thin skeleton)
            pts = np.vstack([positions[na][None], vox[path].astype(float), positions[end][None]])
            edges.append(_Edge(na, end, pts))
    return positions, edges


def _path_length(p: np.ndarray, spacing: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(p, axis=0) * spacing, axis=1).sum())


def _simplify(positions, edges, radius_at, spacing, spur_factor, warnings):
    """Remove spurs and loops, merge two-edge nodes, until stable."""
    edges = [e for e in edges if not (e.a == e.b and _path_length(e.path, spacing) < 1e-9)]
    changed = True
    while changed:
        changed = False
        degree = np.zeros(len(positions), int)
        for e in edges:
            degree[e.a] += 1
            degree[e.b] += 1
        # self-loops: drop
        loops = [e for e in edges if e.a == e.b]
        if loops:
            edges = [e for e in edges if e.a != e.b]
            warnings.append(f"opened {len(loops)} loop(s) of the skeleton")
            changed = True
            continue
        # spurs: an end joined to a junction, shorter than spur_factor x the junction's radius
        spurs = []
        for i, e in enumerate(edges):
            for end, other in ((e.a, e.b), (e.b, e.a)):
                if degree[end] == 1 and degree[other] >= 3:
                    if _path_length(e.path, spacing) < spur_factor * radius_at(positions[other]):
                        spurs.append((_path_length(e.path, spacing), i))
                    break
        if spurs:
            # remove the shortest spur at each junction first (two short arms may be one vessel end)
            spurs.sort()
            removed_nodes: set[int] = set()
            drop = set()
            for _, i in spurs:
                e = edges[i]
                jn = e.b if degree[e.a] == 1 else e.a
                if jn in removed_nodes:
                    continue
                removed_nodes.add(jn)
                drop.add(i)
            edges = [e for i, e in enumerate(edges) if i not in drop]
            changed = True
            continue
        # merge nodes with exactly two edges
        for n in np.flatnonzero(degree == 2):
            inc = [i for i, e in enumerate(edges) if n in (e.a, e.b)]
            if len(inc) != 2 or edges[inc[0]] is edges[inc[1]]:
                continue
            e1, e2 = edges[inc[0]], edges[inc[1]]
            p1 = e1.path if e1.b == n else e1.path[::-1]
            a1 = e1.a if e1.b == n else e1.b
            p2 = e2.path if e2.a == n else e2.path[::-1]
            b2 = e2.b if e2.a == n else e2.a
            merged = _Edge(a1, b2, np.vstack([p1, p2[1:]]))
            edges = [e for i, e in enumerate(edges) if i not in inc] + [merged]
            changed = True
            break
    return edges


def _tree(positions, edges, root: int, warnings):
    """Orient edges from ``root`` (BFS); drop the edges that close a cycle. Returns (edges, parents)."""
    adj: dict[int, list[int]] = {}
    for i, e in enumerate(edges):
        adj.setdefault(e.a, []).append(i)
        adj.setdefault(e.b, []).append(i)
    seen_nodes = {root}
    incoming: dict[int, int] = {}
    order: list[tuple[int, _Edge]] = []
    used = set()
    queue = [root]
    dropped = 0
    while queue:
        n = queue.pop(0)
        for i in adj.get(n, []):
            if i in used:
                continue
            used.add(i)
            e = edges[i]
            other = e.b if e.a == n else e.a
            if other in seen_nodes:
                dropped += 1
                continue
            seen_nodes.add(other)
            path = e.path if e.a == n else e.path[::-1]
            k = len(order)
            order.append((incoming.get(n, -1), _Edge(n, other, path)))
            incoming[other] = k
            queue.append(other)
    if dropped:
        warnings.append(f"opened {dropped} loop(s) of the vessel tree")
    return [e for _, e in order], [p for p, _ in order]


# -- 4. smoothing, resampling ---------------------------------------------------------------------
def _resample(p: np.ndarray, step: float) -> np.ndarray:
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 0:
        return p[[0, -1]]
    n = max(2, int(math.ceil(s[-1] / step)) + 1)
    si = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(si, s, p[:, k]) for k in range(3)], axis=1)


def _smooth(p: np.ndarray, sigma_mm: float, step: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    if len(p) < 3 or sigma_mm <= 0:
        return p
    q = gaussian_filter1d(p, sigma_mm / step, axis=0, mode="nearest")
    # keep the ends (shared with the neighbouring branches) and blend into them
    w = np.clip(np.arange(len(p)) * step / max(sigma_mm, 1e-9), 0, 1)[:, None]
    w = np.minimum(w, w[::-1])
    return w * q + (1 - w) * p


def _extend(p: np.ndarray, mask01, inv, r: float, step: float) -> np.ndarray:
    """``p`` continued from its last point along the end tangent while inside the mask (<= 2 r)."""
    if len(p) < 2:
        return p
    back = min(len(p) - 1, max(1, int(round(r / step))))
    t = p[-1] - p[-1 - back]
    nt = np.linalg.norm(t)
    if nt == 0:
        return p
    t /= nt
    ds = np.arange(1, int(2.0 * r / (0.25 * step)) + 1) * 0.25 * step
    vals = sample_mask(mask01, inv, p[-1] + ds[:, None] * t)
    out = np.flatnonzero(vals <= 0.5)
    reach = ds[out[0] - 1] if out.size and out[0] > 0 else (0.0 if out.size else ds[-1])
    if reach <= 0.5 * step:
        return p
    return np.vstack([p, p[-1] + reach * t])


# -- the public entry ------------------------------------------------------------------------------
def extract_centerlines(mask, affine, *, labels=None, components: str = "error", root_lps=None,
                        step_mm: float = 1.0, smooth_mm: float | None = None, spur_factor: float = 1.5,
                        min_stenosis_percent: float = DEFAULT_MIN_PERCENT, min_piece_ml: float = 0.05,
                        progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> CenterlineGraph:
    """Centerline graph (LPS mm, radius, stenoses) of the binary vessel ``mask`` on ``affine``'s grid.

    ``labels``: an integer label array on the same grid, to record each branch's label value.
    ``root_lps``: a point near the inlet end (default: the end of the widest vessel).
    ``smooth_mm``: Gaussian sigma along the centerline (default: the largest voxel spacing).
    """
    from scipy import ndimage
    from skimage.morphology import skeletonize

    affine = np.asarray(affine, float)
    if affine.shape != (4, 4):
        raise SurgtwinError(f"affine must be 4x4, got {affine.shape}")
    spacing = spacing_of(affine)
    if step_mm <= 0 or spur_factor < 0:
        raise SurgtwinError("step_mm must be > 0 and spur_factor >= 0")
    report(progress, 0.0, "centerlines: preparing the mask")
    prep = prepare_mask(mask, spacing, components=components, min_piece_ml=min_piece_ml)
    warnings = list(prep.warnings)
    crop = prep.mask
    crop_affine = affine.copy()
    crop_affine[:3, 3] = affine[:3, :3] @ prep.origin + affine[:3, 3]
    inv = np.linalg.inv(crop_affine)
    check(cancel)
    report(progress, 0.1, "centerlines: distance map and skeleton")
    dist = ndimage.distance_transform_edt(crop, sampling=spacing)
    skel = skeletonize(crop).astype(bool)
    if skel.sum() < 2:
        raise SurgtwinError("the vessel mask is too small or too short for a centerline",
                            hint="a vessel needs to be several voxels long and wide")
    check(cancel)
    report(progress, 0.3, "centerlines: skeleton graph")
    positions, edges = _skeleton_graph(skel)

    def radius_at(pos_idx):
        return float(ndimage.map_coordinates(dist, np.asarray(pos_idx, float).reshape(3, 1), order=1)[0])

    edges = _simplify(positions, edges, radius_at, spacing, spur_factor, warnings)
    if not edges:
        raise SurgtwinError("the vessel mask's skeleton has no branch", hint="is the mask a tube?")
    # keep the largest connected part of the graph (a skeleton may leave small islands)
    degree = np.zeros(len(positions), int)
    for e in edges:
        degree[e.a] += 1
        degree[e.b] += 1
    ends = [n for n in range(len(positions)) if degree[n] == 1]
    to_lps = (lambda q: q @ crop_affine[:3, :3].T + crop_affine[:3, 3])  # noqa: E731
    if root_lps is not None:
        cand = ends or [n for n in range(len(positions)) if degree[n] > 0]
        d = [np.linalg.norm(to_lps(positions[n]) - np.asarray(root_lps, float)) for n in cand]
        root = cand[int(np.argmin(d))]
    elif ends:
        def end_radius(n):
            e = next(e for e in edges if n in (e.a, e.b))
            p = e.path if e.a == n else e.path[::-1]
            k = min(len(p), max(3, len(p) // 2))
            r = ndimage.map_coordinates(dist, p[:k].T, order=1)
            return float(np.median(r))
        root = max(ends, key=end_radius)
    else:
        root = edges[0].a
    tree_edges, parents = _tree(positions, edges, root, warnings)
    check(cancel)
    report(progress, 0.45, f"centerlines: {len(tree_edges)} branches, smoothing and resampling")
    mask01 = crop.astype(np.float32)
    sigma = float(np.max(spacing)) if smooth_mm is None else float(smooth_mm)
    used = sorted({n for e in tree_edges for n in (e.a, e.b)})
    node_index = {n: i for i, n in enumerate(used)}
    deg_final = np.zeros(len(positions), int)
    for e in tree_edges:
        deg_final[e.a] += 1
        deg_final[e.b] += 1
    fine = min(step_mm, 0.5 * float(np.min(spacing)))
    polys = []
    for e in tree_edges:
        p = to_lps(e.path)
        p = _resample(p, fine)
        p = _smooth(p, sigma, fine)
        r_end = radius_at(positions[e.b])
        if deg_final[e.b] == 1:
            p = _extend(p, mask01, inv, max(r_end, float(np.max(spacing))), fine)
        if e.a == root and deg_final[e.a] == 1:
            r0 = radius_at(positions[e.a])
            p = _extend(p[::-1], mask01, inv, max(r0, float(np.max(spacing))), fine)[::-1]
        polys.append(_resample(p, step_mm))
    report(progress, 0.55, "centerlines: cross-sections")
    branches = []
    label_arr = None if labels is None else np.asarray(labels)
    for k, (e, p) in enumerate(zip(tree_edges, polys, strict=True)):
        check(cancel)
        idx = p @ inv[:3, :3].T + inv[:3, 3]
        r_in = ndimage.map_coordinates(dist, idx.T, order=1, mode="nearest")
        r_cs, clean = cross_section_radii(mask01, crop_affine, p, np.maximum(r_in, 0.5 * spacing.min()),
                                          spacing_mm=spacing)
        s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))])
        valid = clean.copy()
        for node, at_start in ((e.a, True), (e.b, False)):
            r_node = radius_at(positions[node])
            if deg_final[node] >= 3:
                margin = 1.2 * r_node + float(np.max(spacing))
            else:
                margin = 0.5 * r_node + float(np.max(spacing))
            valid &= (s > margin) if at_start else (s < s[-1] - margin)
        radius = _fill_radius(s, r_cs, r_in, valid)
        lab = 0
        if label_arr is not None:
            full_idx = np.rint(idx + prep.origin).astype(int)
            full_idx = np.clip(full_idx, 0, np.array(label_arr.shape) - 1)
            vals = label_arr[tuple(full_idx.T)]
            vals = vals[vals > 0]
            if vals.size:
                lab = int(np.bincount(vals.astype(np.int64)).argmax())
        branches.append(Branch(k, parents[k], (node_index[e.a], node_index[e.b]), p, radius, r_in, valid, lab))
        report(progress, 0.55 + 0.4 * (k + 1) / len(tree_edges), "centerlines: cross-sections")
    stenoses = []
    for b in branches:
        stenoses.extend(find_stenoses(b, min_percent=min_stenosis_percent))
    node_lps = np.array([to_lps(positions[n]) for n in used]).reshape(-1, 3)
    node_degree = np.array([deg_final[n] for n in used], np.int32)
    # the root node's position is the (extended) start of the root branch
    if branches:
        node_lps[node_index[root]] = branches[0].points_lps[0]
        for b, e in zip(branches, tree_edges, strict=True):
            if deg_final[e.b] == 1:
                node_lps[node_index[e.b]] = b.points_lps[-1]
    report(progress, 1.0, f"centerlines: {len(branches)} branches, {len(stenoses)} stenoses")
    return CenterlineGraph(tuple(branches), node_lps, node_degree, node_index[root], tuple(stenoses),
                           tuple(warnings))


def _fill_radius(s, r_cs, r_in, valid) -> np.ndarray:
    """The cross-section radius where valid, interpolated along the branch elsewhere."""
    if valid.sum() >= 1:
        return np.interp(s, s[valid], r_cs[valid])
    return np.asarray(r_in, float).copy()
