"""Mesh files: export STL (binary), OBJ, PLY, 3MF and VTP; import STL/OBJ/PLY/3MF/VTP with validation.

All coordinates are LPS millimetres; STL has no unit field, 3MF is written with ``unit="millimeter"``.
STL and 3MF are for 3D printing: a surface that is not a closed, consistently wound, outward surface is
refused with a ``SurgtwinError`` naming the structure and the reason (export it as OBJ/PLY/VTP to view it).
3MF is written and read here with the standard library (zip + XML), so no extra dependency is needed.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.mesh.structure import StructureMesh, vertex_normals

EXPORT_FORMATS = ("stl", "obj", "ply", "3mf", "vtp")
IMPORT_FORMATS = ("stl", "obj", "ply", "3mf", "vtp")
#: formats meant for 3D printing: watertight surfaces only
PRINT_FORMATS = ("stl", "3mf")

_NS_3MF = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"

#: plausible size of an anatomical structure or implant, mm (catches files in metres or microns)
_MIN_EXTENT_MM = 0.5
_MAX_EXTENT_MM = 2500.0


def safe_filename(name: str) -> str:
    """A structure name as a portable file stem."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("._")
    return stem or "structure"


def _format_of(path: Path, fmt: str | None, allowed) -> str:
    f = (fmt or path.suffix.lstrip(".")).lower()
    if f not in allowed:
        raise SurgtwinError(f"unsupported mesh format {f!r}", path=path, hint=f"use one of {', '.join(allowed)}")
    return f


def export_mesh(mesh: StructureMesh, path, *, fmt: str | None = None, require_watertight: bool | None = None) -> Path:
    """Write one structure to ``path`` (format from ``fmt`` or the suffix). Returns the path.

    ``require_watertight`` defaults to True for STL and 3MF (printing) and False otherwise.
    """
    path = Path(path)
    fmt = _format_of(path, fmt, EXPORT_FORMATS)
    if require_watertight is None:
        require_watertight = fmt in PRINT_FORMATS
    if len(mesh.faces) == 0:
        raise SurgtwinError(f"structure {mesh.name!r} has an empty mesh; nothing to export", path=path)
    if require_watertight:
        from surgtwin.core.mesh.checks import check_mesh

        q = check_mesh(mesh.vertices, mesh.faces)
        if not q.printable:
            raise SurgtwinError(
                f"structure {mesh.name!r} cannot be exported for 3D printing: {'; '.join(q.problems())}",
                path=path,
                hint="repair or re-segment it, or export it as OBJ/PLY/VTP for viewing only",
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        if fmt == "3mf":
            _write_3mf(mesh, tmp)
        elif fmt == "vtp":
            _write_vtp(mesh, tmp)
        else:
            tm = mesh.to_trimesh()
            if fmt == "ply":
                tm.visual.vertex_colors = np.tile(np.r_[np.asarray(mesh.color, np.uint8), 255], (len(tm.vertices), 1))
            data = tm.export(file_type=fmt)
            with open(tmp, "wb") as fh:
                fh.write(data if isinstance(data, bytes) else data.encode("utf-8"))
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SurgtwinError(f"cannot write mesh ({exc.strerror or exc})", path=path) from None
    return path


def export_meshes(meshes: dict[str, StructureMesh], out_dir, *, fmt: str = "stl") -> dict[str, Path]:
    """One file per structure in ``out_dir`` named after the structure. Returns {name: path}."""
    out_dir = Path(out_dir)
    fmt = _format_of(Path(f"x.{fmt}"), fmt, EXPORT_FORMATS)
    return {name: export_mesh(m, out_dir / f"{safe_filename(name)}.{fmt}", fmt=fmt) for name, m in meshes.items()}


def _write_3mf(mesh: StructureMesh, path: Path) -> None:
    from xml.sax.saxutils import quoteattr

    v = np.asarray(mesh.vertices, float)
    f = np.asarray(mesh.faces, np.int64)
    r, g, b = (int(c) for c in mesh.color)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<model unit="millimeter" xml:lang="en-US" xmlns="{_NS_3MF}">\n',
        f' <metadata name="Title">{_xml_text(mesh.name)}</metadata>\n',
        " <resources>\n",
        f'  <basematerials id="1"><base name={quoteattr(mesh.name)} displaycolor="#{r:02X}{g:02X}{b:02X}"/></basematerials>\n',
        f'  <object id="2" type="model" name={quoteattr(mesh.name)} pid="1" pindex="0">\n   <mesh>\n    <vertices>\n',
        "".join(f'<vertex x="{x:.6f}" y="{y:.6f}" z="{z:.6f}"/>\n' for x, y, z in v),
        "    </vertices>\n    <triangles>\n",
        "".join(f'<triangle v1="{a}" v2="{b_}" v3="{c}"/>\n' for a, b_, c in f),
        "    </triangles>\n   </mesh>\n  </object>\n </resources>\n",
        ' <build><item objectid="2"/></build>\n</model>\n',
    ]
    content_types = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>'
        "</Types>\n"
    )
    rels = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Target="/3D/3dmodel.model" Id="rel0" '
        'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>\n'
    )
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", content_types)
        z.writestr("_rels/.rels", rels)
        z.writestr("3D/3dmodel.model", "".join(parts))


def _xml_text(s: str) -> str:
    from xml.sax.saxutils import escape

    return escape(s)


def _read_3mf(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import xml.etree.ElementTree as ET

    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if n.lower().endswith(".model")]
        if not names:
            raise SurgtwinError("3MF file has no 3D model part", path=path)
        root = ET.fromstring(z.read(names[0]))
    ns = {"m": _NS_3MF}
    unit = root.get("unit", "millimeter")
    scale = {"micron": 1e-3, "millimeter": 1.0, "centimeter": 10.0, "inch": 25.4, "foot": 304.8, "meter": 1000.0}
    if unit not in scale:
        raise SurgtwinError(f"3MF unit {unit!r} is not supported", path=path)
    verts, faces, offset = [], [], 0
    for m in root.iterfind(".//m:object/m:mesh", ns):
        v = np.array([[float(e.get("x")), float(e.get("y")), float(e.get("z"))] for e in m.iterfind("m:vertices/m:vertex", ns)])
        t = np.array([[int(e.get("v1")), int(e.get("v2")), int(e.get("v3"))] for e in m.iterfind("m:triangles/m:triangle", ns)], np.int64)
        if len(v) and len(t):
            verts.append(v)
            faces.append(t + offset)
            offset += len(v)
    if not verts:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    return np.concatenate(verts) * scale[unit], np.concatenate(faces)


def _write_vtp(mesh: StructureMesh, path: Path) -> None:
    import vtk
    from vtk.util import numpy_support

    from surgtwin.core.mesh.surfaces import polydata

    poly = polydata(mesh.vertices, mesh.faces)
    normals = mesh.normals if mesh.normals is not None else vertex_normals(mesh.vertices, mesh.faces)
    arr = numpy_support.numpy_to_vtk(np.ascontiguousarray(normals, dtype=np.float32), deep=True)
    arr.SetName("Normals")
    poly.GetPointData().SetNormals(arr)
    name = vtk.vtkStringArray()
    name.SetName("StructureName")
    name.InsertNextValue(mesh.name)
    poly.GetFieldData().AddArray(name)
    w = vtk.vtkXMLPolyDataWriter()
    w.SetFileName(str(path))
    w.SetInputData(poly)
    w.SetDataModeToAppended()
    w.SetCompressorTypeToZLib()
    if not w.Write():
        raise OSError(f"VTK could not write {path}")


def _read_vtp(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import vtk

    from surgtwin.core.mesh.surfaces import polydata_arrays

    r = vtk.vtkXMLPolyDataReader()
    r.SetFileName(str(path))
    r.Update()
    tri = vtk.vtkTriangleFilter()
    tri.SetInputData(r.GetOutput())
    tri.Update()
    return polydata_arrays(tri.GetOutput())


def read_mesh_arrays(path, *, fmt: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Raw (vertices, faces) of a mesh file; no repair. Raises SurgtwinError on unreadable files."""
    path = Path(path)
    fmt = _format_of(path, fmt, IMPORT_FORMATS)
    if not path.is_file():
        raise SurgtwinError("mesh file not found", path=path)
    if path.stat().st_size == 0:
        raise SurgtwinError("mesh file is empty", path=path)
    try:
        if fmt == "3mf":
            return _read_3mf(path)
        if fmt == "vtp":
            return _read_vtp(path)
        import trimesh

        tm = trimesh.load(str(path), file_type=fmt, force="mesh", process=False)
        return np.asarray(tm.vertices, float), np.asarray(tm.faces, np.int64)
    except SurgtwinError:
        raise
    except Exception as exc:  # parsers raise anything on corrupt files
        raise SurgtwinError(f"cannot read {fmt.upper()} mesh ({type(exc).__name__}: {exc})", path=path,
                            hint="is the file complete and really a mesh?") from None


def import_mesh(
    path,
    *,
    name: str | None = None,
    label: int = 0,
    color=(192, 192, 192),
    fmt: str | None = None,
    require_watertight: bool = False,
) -> StructureMesh:
    """Load a surface (e.g. a vendor's implant STL, in mm) as a validated, repaired ``StructureMesh``.

    Checks: the file parses, has triangles, finite coordinates, a plausible size in mm; cheap repairs
    (merge vertices, drop degenerate/duplicate triangles, consistent outward winding) are applied and
    listed in ``quality.repairs``. ``require_watertight`` refuses open surfaces.
    """
    from surgtwin.core.mesh.checks import check_mesh, repair_mesh

    path = Path(path)
    v, f = read_mesh_arrays(path, fmt=fmt)
    if len(f) == 0 or len(v) == 0:
        raise SurgtwinError("the file has no triangles", path=path)
    if not np.all(np.isfinite(v)):
        raise SurgtwinError("the mesh has non-finite (NaN/inf) vertex coordinates", path=path)
    if f.min() < 0 or f.max() >= len(v):
        raise SurgtwinError("the mesh has triangles that refer to missing vertices", path=path)
    extent = float(np.max(v.max(axis=0) - v.min(axis=0)))
    if not (_MIN_EXTENT_MM <= extent <= _MAX_EXTENT_MM):
        raise SurgtwinError(
            f"the mesh is {extent:g} units across, implausible for millimetres",
            path=path,
            hint="export it from the vendor software in mm",
        )
    v, f, repairs = repair_mesh(v, f)
    if len(f) == 0:
        raise SurgtwinError("the mesh has only degenerate triangles", path=path)
    q = check_mesh(v, f, method=f"imported {path.suffix.lstrip('.').lower()}")
    q.repairs = repairs
    if require_watertight and not q.printable:
        raise SurgtwinError(f"the mesh is not a closed surface: {'; '.join(q.problems())}", path=path,
                            hint="ask the vendor for a watertight model")
    mesh = StructureMesh(name or path.stem, int(label), tuple(int(c) for c in color), v, f, vertex_normals(v, f), q)
    return mesh


def write_tet_mesh(tet, stem) -> list[Path]:
    """Write a ``TetMesh`` as ``STEM.vtu`` (VTK, cell data "region" and "mean_hu") and ``STEM.npz``
    (nodes_mm, elements, regions, mean_hu, region values/names; load with numpy for scikit-fem)."""
    import json

    import vtk
    from vtk.util import numpy_support

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    npz = stem.with_suffix(".npz")
    vtu = stem.with_suffix(".vtu")
    extra = {} if tet.mean_hu is None else {"mean_hu": tet.mean_hu}
    try:
        np.savez_compressed(
            npz, nodes_mm=tet.nodes, elements=tet.elements, regions=tet.regions,
            region_names=json.dumps({str(k): v for k, v in tet.region_names.items()}), **extra,
        )
    except OSError as exc:
        raise SurgtwinError(f"cannot write tet mesh ({exc.strerror or exc})", path=npz) from None
    grid = vtk.vtkUnstructuredGrid()
    pts = vtk.vtkPoints()
    pts.SetData(numpy_support.numpy_to_vtk(np.ascontiguousarray(tet.nodes, np.float64), deep=True))
    grid.SetPoints(pts)
    cells = vtk.vtkCellArray()
    offsets = numpy_support.numpy_to_vtk(np.arange(0, 4 * len(tet.elements) + 1, 4, dtype=np.int64), deep=True)
    conn = numpy_support.numpy_to_vtk(np.ascontiguousarray(tet.elements, np.int64).ravel(), deep=True)
    cells.SetData(offsets, conn)
    grid.SetCells(vtk.VTK_TETRA, cells)
    for name, values in (("region", tet.regions), ("mean_hu", tet.mean_hu)):
        if values is not None:
            a = numpy_support.numpy_to_vtk(np.ascontiguousarray(values), deep=True)
            a.SetName(name)
            grid.GetCellData().AddArray(a)
    w = vtk.vtkXMLUnstructuredGridWriter()
    w.SetFileName(str(vtu))
    w.SetInputData(grid)
    w.SetDataModeToAppended()
    w.SetCompressorTypeToZLib()
    if not w.Write():
        raise SurgtwinError("VTK could not write the tet mesh", path=vtu)
    return [vtu, npz]
