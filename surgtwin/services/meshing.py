"""Lighter copies of ``surgtwin.core.mesh`` surfaces for the 3D view (``pipeline.display_meshes``).

``surgtwin.core.mesh`` owns the real (export) meshes; this only thins them for the software renderer.
"""

from __future__ import annotations

import numpy as np

from surgtwin.core.mesh import StructureMesh


def simplify_for_display(mesh: StructureMesh, target_triangles: int) -> StructureMesh:
    """A lighter copy of ``mesh`` for the 3D view (vertex clustering: linear time, a few tenths of a
    second for a million triangles, where quadric decimation takes tens of seconds). The input is
    not changed, so full-resolution meshes stay available for export."""
    import vtk

    from surgtwin.render.scene import polydata

    verts, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    if len(faces) <= target_triangles:
        return mesh
    poly = polydata(verts, faces)
    extent = np.maximum(np.ptp(verts, axis=0), 1e-6)
    # surface triangles grow with the square of the divisions: start from the ratio, correct once
    n = 2.0 * np.sqrt(len(faces) / 2.0) * np.sqrt(target_triangles / len(faces))
    out_v, out_f = verts, faces
    for _ in range(6):
        div = np.maximum(2, np.rint(n * extent / extent.max())).astype(int)
        f = vtk.vtkBinnedDecimation()  # vertex clustering without quadrics: ~35x faster than
        f.SetInputData(poly)  # vtkQuadricClustering here (0.13 s vs 5.1 s on a 172k-triangle brain)
        f.AutoAdjustNumberOfDivisionsOff()
        f.SetNumberOfDivisions(*(int(d) for d in div))
        f.SetPointGenerationModeToBinAverages()
        f.Update()
        out = f.GetOutput()
        from vtk.util import numpy_support

        out_v = numpy_support.vtk_to_numpy(out.GetPoints().GetData()).astype(np.float64)
        out_f = numpy_support.vtk_to_numpy(out.GetPolys().GetConnectivityArray()).astype(np.int64).reshape(-1, 3)
        if len(out_f) <= target_triangles * 1.05:
            break
        n *= 0.9 * np.sqrt(target_triangles / len(out_f))
    return StructureMesh(mesh.name, mesh.label, tuple(mesh.color), out_v, out_f, quality=mesh.quality)
