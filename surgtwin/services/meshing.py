"""Display surfaces from a label map until ``surgtwin.core.mesh`` lands (used by ``pipeline.build_meshes``).

Surface nets (VTK's ``vtkSurfaceNets3D`` through pyvista) on each structure's bounding box, mapped to
LPS mm through the label map's affine. For display only: ``surgtwin.core.mesh`` owns the real meshes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from surgtwin.core.progress import check, report


@dataclass
class DisplayMesh:
    """Same fields as ``surgtwin.core.mesh.StructureMesh``: vertices (N, 3) LPS mm, faces (M, 3)."""

    name: str
    label: int
    color: tuple[int, int, int]
    vertices: np.ndarray
    faces: np.ndarray


def surfaces_for_display(labelmap, *, labels=None, progress=None, cancel=None) -> dict[str, DisplayMesh]:
    import pyvista as pv
    from scipy import ndimage

    table = labelmap.labels
    wanted = [lab for lab in table if labels is None or lab.name in labels or lab.value in labels]
    arr = labelmap.array
    boxes = ndimage.find_objects(arr)
    out: dict[str, DisplayMesh] = {}
    for n, lab in enumerate(wanted):
        check(cancel)
        report(progress, n / max(1, len(wanted)), f"meshing {lab.name}")
        if lab.value - 1 >= len(boxes) or boxes[lab.value - 1] is None:
            continue
        box = tuple(slice(max(0, s.start - 1), min(dim, s.stop + 1)) for s, dim in zip(boxes[lab.value - 1],
                                                                                    arr.shape, strict=True))
        sub = (arr[box] == lab.value).astype(np.uint8)
        img = pv.ImageData(dimensions=sub.shape[::-1])  # x = column (i), y = row (j), z = slice (k)
        img.point_data["labels"] = sub.ravel(order="C")
        surf = img.contour_labels(select_inputs=[1], smoothing=True, smoothing_iterations=16,
                                  output_mesh_type="triangles", pad_background=True)
        if surf.n_points == 0:
            continue
        ijk = np.asarray(surf.points, dtype=np.float64)
        kji = ijk[:, ::-1] + np.array([s.start for s in box], dtype=np.float64)
        verts = labelmap.index_to_world(kji)
        faces = np.asarray(surf.faces).reshape(-1, 4)[:, 1:].astype(np.int64)
        out[lab.name] = DisplayMesh(lab.name, lab.value, tuple(lab.color), verts, faces)
    report(progress, 1.0, f"{len(out)} surfaces")
    return out


def simplify_for_display(mesh, target_triangles: int) -> DisplayMesh:
    """A lighter copy of ``mesh`` for the 3D view (vertex clustering: linear time, a few tenths of a
    second for a million triangles, where quadric decimation takes tens of seconds). The input is
    not changed, so full-resolution meshes stay available for export."""
    import vtk

    from surgtwin.render.scene import mesh_color, mesh_value, polydata

    verts, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    name = getattr(mesh, "name", "")
    if len(faces) <= target_triangles:
        return DisplayMesh(name, mesh_value(mesh), mesh_color(mesh), verts, faces)
    poly = polydata(verts, faces)
    extent = np.maximum(np.ptp(verts, axis=0), 1e-6)
    # surface triangles grow with the square of the divisions: start from the ratio, correct once
    n = 2.0 * np.sqrt(len(faces) / 2.0) * np.sqrt(target_triangles / len(faces))
    out_v, out_f = verts, faces
    for _ in range(6):
        div = np.maximum(2, np.rint(n * extent / extent.max())).astype(int)
        f = vtk.vtkQuadricClustering()
        f.SetInputData(poly)
        f.AutoAdjustNumberOfDivisionsOff()
        f.SetNumberOfDivisions(*(int(d) for d in div))
        f.Update()
        out = f.GetOutput()
        from vtk.util import numpy_support

        out_v = numpy_support.vtk_to_numpy(out.GetPoints().GetData()).astype(np.float64)
        out_f = numpy_support.vtk_to_numpy(out.GetPolys().GetConnectivityArray()).astype(np.int64).reshape(-1, 3)
        if len(out_f) <= target_triangles * 1.05:
            break
        n *= 0.9 * np.sqrt(target_triangles / len(out_f))
    return DisplayMesh(name, mesh_value(mesh), mesh_color(mesh), out_v, out_f)
