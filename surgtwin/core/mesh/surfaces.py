"""Surfaces of all structures of a label map at once.

Pipeline: VTK ``vtkSurfaceNets3D`` on the whole label map (one pass, every label) -> outward winding
decided from the voxels themselves -> ``vtkWindowedSincPolyDataFilter`` on the shared multi-label
mesh (so neighbouring organs keep a common boundary) -> index -> LPS mm through the label map's affine
(winding flipped when the affine is a reflection) -> per structure: optional quadric decimation to a
triangle budget, cheap trimesh repair, vertex normals, quality report.

Smoothing happens in index space: the windowed-sinc filter uses uniform (topological) Laplacian
weights, so it commutes with the affine and doing it before the LPS mapping is exact for oblique and
anisotropic grids. A structure whose surface-nets surface is not a closed manifold (two voxels of one
label touching only along an edge: the mesh edge dual to that 2x2 square is shared by four quads) is
re-extracted on its own by surface nets on its binary mask with those contacts closed (a voxel added
to each such square); binary flying edges is the last resort when that would add more than
``MAX_CONTACT_FILL`` of its voxels. Checks are NumPy (``checks.check_mesh``); trimesh repair runs
only for a structure whose checks fail.
"""

from __future__ import annotations

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.mesh.structure import StructureMesh, vertex_normals
from surgtwin.core.progress import CancelToken, ProgressFn, check, report

#: default windowed-sinc settings (VTK's pass band on normalised coordinates; smaller is smoother)
DEFAULT_SMOOTHING_ITERATIONS = 20
DEFAULT_PASS_BAND = 0.05


def _compact(arr: np.ndarray) -> np.ndarray:
    """Integer label array in the smallest unsigned type that holds it (C-contiguous)."""
    if arr.size == 0:
        raise SurgtwinError("the label map is empty")
    if np.issubdtype(arr.dtype, np.signedinteger):
        lo = int(arr.min())
        if lo < 0:
            raise SurgtwinError(f"the label map has negative values (minimum {lo})", hint="labels must be >= 0")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    hi = int(arr.max())
    dtype = np.uint8 if hi < 256 else np.uint16 if hi < 65536 else np.uint32
    return np.ascontiguousarray(arr, dtype=dtype)


def _describe(table, v: int) -> tuple[int, str, tuple[int, int, int]]:
    if v in table:
        lab = table[v]
        return v, lab.name, tuple(int(c) for c in lab.color)  # type: ignore[return-value]
    return v, f"label_{v}", (200, 200, 200)


def _label_counts(arr: np.ndarray) -> dict[int, int]:
    """Voxel count of every value present (one pass; slab-wise bincount keeps memory bounded)."""
    hi = int(arr.max())
    if hi >= 65536:
        vals, cnt = np.unique(arr, return_counts=True)
        return {int(v): int(c) for v, c in zip(vals, cnt, strict=True)}
    total = np.zeros(hi + 1, np.int64)
    step = max(1, (1 << 23) // max(1, arr[0].size))
    for k in range(0, arr.shape[0], step):
        total += np.bincount(arr[k:k + step].ravel(), minlength=hi + 1)
    return {int(v): int(total[v]) for v in np.flatnonzero(total)}


def _resolve_requested(labelmap, labels, counts: dict[int, int]) -> list[tuple[int, str, tuple[int, int, int]]]:
    """Requested names/values as (value, name, colour); unknown names/absent values are user errors."""
    table = labelmap.labels
    out = []
    for item in labels:
        value = table.by_name(item).value if isinstance(item, str) else int(item)
        if value <= 0 or counts.get(value, 0) == 0:
            name = table[value].name if value in table else str(value)
            raise SurgtwinError(
                f"structure {name!r} (label {value}) has no voxels in the label map",
                hint="check the label table against the label image",
            )
        out.append(_describe(table, value))
    return out


def _image_data(arr: np.ndarray, origin_ijk=(0.0, 0.0, 0.0)):
    """vtkImageData in index space: x = column i, y = row j, z = slice k, spacing 1."""
    import vtk
    from vtk.util import numpy_support

    img = vtk.vtkImageData()
    nk, nj, ni = arr.shape
    img.SetDimensions(ni, nj, nk)
    img.SetSpacing(1.0, 1.0, 1.0)
    img.SetOrigin(*origin_ijk)
    scalars = numpy_support.numpy_to_vtk(arr.ravel(), deep=False)
    scalars.SetName("labels")
    img.GetPointData().SetScalars(scalars)
    img._keep_alive = arr  # numpy buffer must outlive the VTK array
    return img


def polydata_arrays(poly) -> tuple[np.ndarray, np.ndarray]:
    """(points (N, 3) float64, triangles (M, 3) int64) of a VTK triangle polydata."""
    from vtk.util import numpy_support

    if poly.GetNumberOfPoints() == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    pts = numpy_support.vtk_to_numpy(poly.GetPoints().GetData()).astype(np.float64)
    conn = numpy_support.vtk_to_numpy(poly.GetPolys().GetConnectivityArray()).astype(np.int64)
    return pts, conn.reshape(-1, 3)


def polydata(points: np.ndarray, faces: np.ndarray):
    """A ``vtkPolyData`` of the triangles ``faces`` (M, 3) over ``points`` (N, 3)."""
    import vtk
    from vtk.util import numpy_support

    poly = vtk.vtkPolyData()
    p = vtk.vtkPoints()
    p.SetData(numpy_support.numpy_to_vtk(np.ascontiguousarray(points, dtype=np.float64), deep=True))
    poly.SetPoints(p)
    cells = vtk.vtkCellArray()
    offsets = numpy_support.numpy_to_vtk(np.arange(0, 3 * len(faces) + 1, 3, dtype=np.int64), deep=True)
    conn = numpy_support.numpy_to_vtk(np.ascontiguousarray(faces, dtype=np.int64).ravel(), deep=True)
    cells.SetData(offsets, conn)
    poly.SetPolys(cells)
    return poly


def _smooth(poly, iterations: int, pass_band: float):
    import vtk

    if iterations <= 0:
        return poly
    f = vtk.vtkWindowedSincPolyDataFilter()
    f.SetInputData(poly)
    f.SetNumberOfIterations(int(iterations))
    f.SetPassBand(float(pass_band))
    f.NormalizeCoordinatesOn()
    f.BoundarySmoothingOff()
    f.FeatureEdgeSmoothingOff()
    f.NonManifoldSmoothingOn()
    f.Update()
    return f.GetOutput()


def _to_lps(points_ijk: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """VTK index-space points (i, j, k) -> LPS mm via the (k, j, i) affine."""
    return points_ijk[:, ::-1] @ affine[:3, :3].T + affine[:3, 3]


def _signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    v = vertices[faces]
    return float(np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6.0)


def _decimate(vertices: np.ndarray, faces: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    import vtk

    if target <= 0 or len(faces) <= target:
        return vertices, faces
    f = vtk.vtkQuadricDecimation()
    f.SetInputData(polydata(vertices, faces))
    f.SetTargetReduction(1.0 - target / len(faces))
    f.VolumePreservationOn()
    f.Update()
    v2, f2 = polydata_arrays(f.GetOutput())
    if len(f2) and np.sign(_signed_volume(v2, f2)) != np.sign(_signed_volume(vertices, faces)):
        f2 = f2[:, ::-1].copy()
    return v2, f2


def _outward_flip(points_ijk: np.ndarray, tris: np.ndarray, bl: np.ndarray, arr: np.ndarray, pad: int):
    """For each raw surface-nets triangle: True where its right-hand normal points into the voxel of
    ``bl[:, 0]`` (so the triangle must be flipped for label ``bl[:, 0]`` and kept for ``bl[:, 1]``).

    Unsmoothed surface-nets triangles lie in a plane half-way between the two voxels whose labels
    differ, perpendicular to the grid axis joining them; half a voxel along the normal from the
    centroid is exactly the voxel centre on the front side.
    """
    p = points_ijk[tris]
    c = p.mean(axis=1)
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    axis = np.argmax(np.abs(n), axis=1)
    sign = np.sign(n[np.arange(len(n)), axis])
    front = c.copy()
    front[np.arange(len(n)), axis] += 0.5 * sign
    idx = np.rint(front).astype(np.int64) + pad  # (i, j, k)
    for ax, size in zip((0, 1, 2), arr.shape[::-1], strict=True):
        np.clip(idx[:, ax], 0, size - 1, out=idx[:, ax])
    front_label = arr[idx[:, 2], idx[:, 1], idx[:, 0]]
    return front_label == bl[:, 0]


def _connect_edge_contacts(mask: np.ndarray, max_passes: int = 16) -> np.ndarray:
    """Binary mask with every edge-only contact closed: wherever two voxels of the mask touch only
    along an edge (a 2x2 "checkerboard" in any axis plane), one of the two other voxels of that
    square is added. Surface nets then gives a closed 2-manifold (each mesh edge is dual to a 2x2
    square and is used by 4 quads exactly in that configuration). Only adds voxels, so it
    converges; a thin structure (rib, vessel) stays connected the way it is drawn."""
    m = mask.copy()
    for _ in range(max_passes):
        changed = False
        for ax1, ax2 in ((0, 1), (0, 2), (1, 2)):
            def view(o1: int, o2: int, ax1=ax1, ax2=ax2):
                s = [slice(None)] * 3
                s[ax1] = slice(o1, m.shape[ax1] - 1 + o1)
                s[ax2] = slice(o2, m.shape[ax2] - 1 + o2)
                return m[tuple(s)]
            a, b, c, d = view(0, 0), view(1, 1), view(1, 0), view(0, 1)
            bad = (a & b & ~c & ~d) | (c & d & ~a & ~b)
            if bad.any():
                # fill the lower-index off-diagonal voxel of each bad square
                first = bad & a & b
                c |= first
                a |= bad & ~first
                changed = True
        if not changed:
            break
    return m


#: most voxels (fraction of the label) that closing edge contacts may add before flying edges is used
MAX_CONTACT_FILL = 0.025


def _structure_surface_binary_nets(arr: np.ndarray, value: int, smoothing_iterations: int, pass_band: float):
    """Closed surface of one label alone: surface nets on its edge-contact-free binary mask (padded
    crop, index space, outward). Returns (points, triangles, voxels added), or None when closing the
    contacts would add more than ``MAX_CONTACT_FILL`` of the label's voxels (e.g. a thin cortex)."""
    import vtk

    where = np.nonzero(arr == value)
    lo = np.maximum(np.array([w.min() for w in where]) - 2, 0)
    hi = np.minimum(np.array([w.max() for w in where]) + 3, arr.shape)
    crop = np.pad(arr[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] == value, 1)
    fixed = _connect_edge_contacts(crop)
    n_voxels = int(np.count_nonzero(crop))
    added = int(np.count_nonzero(fixed)) - n_voxels
    if added > MAX_CONTACT_FILL * n_voxels:
        return None
    img = _image_data(fixed.astype(np.uint8), origin_ijk=(lo[2] - 1.0, lo[1] - 1.0, lo[0] - 1.0))
    nets = vtk.vtkSurfaceNets3D()
    nets.SetInputData(img)
    nets.SetBackgroundLabel(0)
    nets.SetNumberOfLabels(1)
    nets.SetLabel(0, 1.0)
    nets.SmoothingOff()
    nets.SetOutputMeshTypeToTriangles()
    nets.Update()
    poly = _smooth(nets.GetOutput(), smoothing_iterations, pass_band)
    pts, tris = polydata_arrays(poly)
    if len(tris) and _signed_volume(pts, tris) < 0:
        tris = tris[:, ::-1].copy()
    return pts, tris, added


def _structure_surface_flying_edges(arr: np.ndarray, value: int, smoothing_iterations: int, pass_band: float):
    """Closed surface of one label by binary flying edges on a padded crop (index space, outward)."""
    import vtk

    where = np.nonzero(arr == value)
    lo = np.maximum(np.array([w.min() for w in where]) - 2, 0)
    hi = np.minimum(np.array([w.max() for w in where]) + 3, arr.shape)
    crop = (arr[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] == value).astype(np.uint8)
    crop = np.pad(crop, 1)
    img = _image_data(crop, origin_ijk=(lo[2] - 1.0, lo[1] - 1.0, lo[0] - 1.0))
    fe = vtk.vtkDiscreteFlyingEdges3D()
    fe.SetInputData(img)
    fe.SetValue(0, 1)
    fe.ComputeNormalsOff()
    fe.ComputeGradientsOff()
    fe.ComputeScalarsOff()
    fe.Update()
    clean = vtk.vtkCleanPolyData()
    clean.SetInputConnection(fe.GetOutputPort())
    clean.Update()
    poly = _smooth(clean.GetOutput(), smoothing_iterations, pass_band)
    pts, tris = polydata_arrays(poly)
    if len(tris) and _signed_volume(pts, tris) < 0:
        tris = tris[:, ::-1].copy()
    return pts, tris


def _orientation_flip(points_ijk, tris, bl, work, pad) -> np.ndarray:
    """``_outward_flip`` for every triangle, computed on a sample first: VTK 9.4+ writes every
    surface-nets triangle outward for ``BoundaryLabels[0]``; when the sample agrees unanimously the
    whole array is that constant (the per-structure edge/volume checks below still verify it)."""
    n = len(tris)
    if n == 0:
        return np.zeros(0, bool)
    sample = np.linspace(0, n - 1, min(n, 4096)).astype(np.int64)
    f = _outward_flip(points_ijk, tris[sample], bl[sample], work, pad)
    if not f.any():
        return np.zeros(n, bool)
    if f.all():
        return np.ones(n, bool)
    return _outward_flip(points_ijk, tris, bl, work, pad)


def surfaces_from_labels(
    labelmap,
    *,
    labels=None,
    smoothing_iterations: int = DEFAULT_SMOOTHING_ITERATIONS,
    pass_band: float = DEFAULT_PASS_BAND,
    target_triangles: int | None = None,
    repair: bool = True,
    compute_quality: bool = True,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, StructureMesh]:
    """Closed, outward-wound triangle surfaces (LPS mm) of the structures of ``labelmap``.

    ``labels``: names or values to keep (default: every non-zero value present).
    ``smoothing_iterations``: windowed-sinc iterations (0 = no smoothing; blocky surface-nets output).
    ``target_triangles``: ``None`` (default) keeps full resolution (export, printing, measurements);
    an int is a per-structure triangle budget (volume-preserving quadric decimation of every larger
    structure; a structure whose decimated surface is no longer a closed manifold keeps its full
    resolution, noted in ``quality.repairs``).
    ``repair``: run trimesh repair on a structure whose checks fail (a clean structure is left alone).
    Returns ``{name: StructureMesh}`` in label-value order; each has a ``quality`` report unless
    ``compute_quality`` is False.
    """
    import vtk
    from vtk.util import numpy_support

    from surgtwin.core.mesh.checks import check_mesh, edge_topology, face_normals_raw
    from surgtwin.core.types import LabelMap

    if not isinstance(labelmap, LabelMap):
        raise SurgtwinError("surfaces need a LabelMap (integer labels plus a label table)")
    if target_triangles is not None and target_triangles < 100:
        raise SurgtwinError(f"target_triangles must be at least 100, got {target_triangles}")
    report(progress, 0.0, "preparing label map")
    arr = _compact(labelmap.array)
    hi = int(arr.max())
    if hi == 0:
        if labels is not None:
            _resolve_requested(labelmap, labels, {})
        raise SurgtwinError("the label map has no labelled voxels", hint="is it the right file?")
    counts = _label_counts(arr)
    selected = _resolve_requested(labelmap, labels, counts) if labels is not None else None
    check(cancel)

    border = any(
        np.any(s) for s in (arr[0], arr[-1], arr[:, 0], arr[:, -1], arr[:, :, 0], arr[:, :, -1])
    )
    pad = 1 if border else 0
    work = np.pad(arr, 1) if border else arr
    img = _image_data(work, origin_ijk=(-float(pad),) * 3)
    report(progress, 0.05, "extracting surfaces (surface nets)")

    nets = vtk.vtkSurfaceNets3D()
    nets.SetInputData(img)
    nets.SetBackgroundLabel(0)
    values = [v for v in counts if v > 0]
    nets.SetNumberOfLabels(len(values))
    for n, v in enumerate(values):
        nets.SetLabel(n, float(v))
    nets.SmoothingOff()
    nets.SetOutputMeshTypeToTriangles()
    nets.Update()
    raw = nets.GetOutput()
    check(cancel)
    report(progress, 0.35, "orienting")

    pts_raw, tris = polydata_arrays(raw)
    bl = numpy_support.vtk_to_numpy(raw.GetCellData().GetArray("BoundaryLabels")).astype(np.int64).reshape(-1, 2)
    flip0 = _orientation_flip(pts_raw, tris, bl, work, pad)
    # triangles grouped by the label on each side (one stable sort instead of a scan per label)
    order = [np.argsort(bl[:, s], kind="stable") for s in (0, 1)]
    sorted_bl = [bl[order[s], s] for s in (0, 1)]

    def rows_of(value: int, side: int) -> np.ndarray:
        lo, hi_ = np.searchsorted(sorted_bl[side], [value, value + 1])
        return order[side][lo:hi_]

    if selected is None:  # every label that has a surface, i.e. every label present
        present = np.zeros(int(bl.max(initial=0)) + 1, bool)
        present[bl.ravel()] = True
        selected = [_describe(labelmap.labels, int(v)) for v in np.flatnonzero(present) if v > 0]
    check(cancel)
    report(progress, 0.45, "smoothing")
    smoothed = _smooth(raw, smoothing_iterations, pass_band)
    pts_ijk, _ = polydata_arrays(smoothed)
    if len(pts_ijk) != len(pts_raw):
        raise RuntimeError("smoothing changed the number of points")  # programming error
    affine = labelmap.affine
    # VTK points are (i, j, k); the affine takes (k, j, i): that swap is itself a reflection, so the
    # index-space winding survives exactly when the affine's own determinant is negative.
    reflect = np.linalg.det(affine[:3, :3]) > 0
    pts_lps = _to_lps(pts_ijk, affine)
    check(cancel)

    budgets = {v: int(target_triangles) for v, _, _ in selected} if target_triangles else {}

    out: dict[str, StructureMesh] = {}
    voxel_ml = labelmap.voxel_volume_ml
    for n, (value, name, color) in enumerate(selected):
        check(cancel)
        report(progress, 0.55 + 0.45 * n / len(selected), f"structure {name}")
        r0, r1 = rows_of(value, 0), rows_of(value, 1)
        # a triangle is outward for BoundaryLabels[0] unless flip0 says otherwise; reversed for [1]
        flip = np.concatenate([flip0[r0], ~flip0[r1]])
        if reflect:
            flip = ~flip
        f = tris[np.concatenate([r0, r1])]
        f = np.where(flip[:, None], f[:, ::-1], f)
        used, faces = compact_ids(f, len(pts_lps))
        verts = pts_lps[used]
        method = "surface-nets"
        contact_note: list[str] = []
        watertight, winding, _ = edge_topology(faces, len(verts))
        if not (watertight and winding):
            # voxels of this label touching only along an edge give non-manifold surface-nets edges
            # there: redo this label alone with those contacts closed (a few voxels added)
            alone = _structure_surface_binary_nets(work, value, smoothing_iterations, pass_band)
            if alone is not None:
                p2, f2, added = alone
                method = "surface-nets (edge contacts closed)"
                contact_note = [f"closed edge-only voxel contacts: re-extracted alone with {added} voxels added"]
                watertight, winding, _ = edge_topology(f2, len(p2))
            if alone is None or not (watertight and winding):
                p2, f2 = _structure_surface_flying_edges(work, value, smoothing_iterations, pass_band)
                method, contact_note = "flying-edges", []
            verts, faces = _to_lps(p2 - pad, affine), (f2[:, ::-1].copy() if reflect else f2)
        if value in budgets and len(faces) > budgets[value]:
            v_dec, f_dec = _decimate(verts, faces, budgets[value])
            if all(edge_topology(f_dec, len(v_dec))[:2]):
                verts, faces = v_dec, f_dec
            else:  # quadric decimation can pinch thin parts into non-manifold edges: keep it closed
                contact_note = [*contact_note, "decimation left the surface open; kept full resolution"]
        voxel_volume_ml = float(counts.get(value, 0)) * voxel_ml
        fn = face_normals_raw(verts, faces)
        quality = check_mesh(verts, faces, voxel_volume_ml=voxel_volume_ml, method=method, face_normals=fn) \
            if (compute_quality or repair) else None
        repairs: list[str] = []
        if repair and quality is not None and not quality.printable:
            verts, faces, repairs = _repair(verts, faces)
            fn = face_normals_raw(verts, faces)
            quality = check_mesh(verts, faces, voxel_volume_ml=voxel_volume_ml, method=method, face_normals=fn)
        mesh = StructureMesh(name, value, color, verts, faces, vertex_normals(verts, faces, face_normals=fn))
        if compute_quality and quality is not None:
            quality.repairs = contact_note + repairs
            mesh.quality = quality
        out[name] = mesh
    report(progress, 1.0, f"{len(out)} surfaces")
    return out


def _repair(verts, faces):
    from surgtwin.core.mesh.checks import repair_mesh

    return repair_mesh(verts, faces)


def compact_ids(cells: np.ndarray, n_ids: int) -> tuple[np.ndarray, np.ndarray]:
    """(used ids, cells renumbered 0..len(used)-1) without sorting (ids are < n_ids)."""
    mark = np.zeros(n_ids, bool)
    mark[cells.ravel()] = True
    used = np.flatnonzero(mark)
    remap = np.cumsum(mark) - 1
    return used, remap[cells].astype(np.int64)
