"""Mesh export/import: round trips through trimesh and VTK keep the volume; print formats refuse holes."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.mesh.io import EXPORT_FORMATS, export_mesh, export_meshes, import_mesh, read_mesh_arrays
from surgtwin.core.mesh.structure import StructureMesh
from tests.core.test_mesh_surfaces import ellipsoids_labelmap, oblique_affine


@pytest.fixture(scope="module")
def kidney():
    from surgtwin.core.mesh.surfaces import surfaces_from_labels

    lm = ellipsoids_labelmap(oblique_affine(reflect=True))
    return surfaces_from_labels(lm, labels=["kidney"], target_triangles=4000)["kidney"]


def _vtk_volume_mm3(path) -> float:
    import vtk

    reader = {"stl": vtk.vtkSTLReader, "obj": vtk.vtkOBJReader, "ply": vtk.vtkPLYReader,
              "vtp": vtk.vtkXMLPolyDataReader}[path.suffix[1:]]()
    reader.SetFileName(str(path))
    reader.Update()
    clean = vtk.vtkCleanPolyData()  # STL has no shared vertices
    clean.SetInputConnection(reader.GetOutputPort())
    tri = vtk.vtkTriangleFilter()
    tri.SetInputConnection(clean.GetOutputPort())
    mp = vtk.vtkMassProperties()
    mp.SetInputConnection(tri.GetOutputPort())
    mp.Update()
    return mp.GetVolume()


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_round_trip_keeps_volume(kidney, tmp_path, fmt):
    path = export_mesh(kidney, tmp_path / f"kidney.{fmt}")
    assert path.is_file() and path.stat().st_size > 0
    vol_ml = kidney.quality.volume_ml
    back = import_mesh(path, require_watertight=True)
    assert back.quality.volume_ml == pytest.approx(vol_ml, rel=1e-5)
    assert np.allclose(back.quality.centroid_lps, kidney.quality.centroid_lps, atol=1e-3)
    if fmt in ("stl", "obj", "ply"):
        import trimesh

        tm = trimesh.load(str(path), file_type=fmt, force="mesh")
        assert tm.is_watertight
        assert tm.volume / 1000.0 == pytest.approx(vol_ml, rel=1e-5)
    if fmt != "3mf":  # VTK has no 3MF reader
        assert _vtk_volume_mm3(path) / 1000.0 == pytest.approx(vol_ml, rel=1e-4)


def test_stl_is_binary_and_3mf_in_mm(kidney, tmp_path):
    stl = export_mesh(kidney, tmp_path / "k.stl")
    assert stl.stat().st_size == 84 + 50 * kidney.n_triangles  # binary STL layout
    m3 = export_mesh(kidney, tmp_path / "k.3mf")
    with zipfile.ZipFile(m3) as z:
        assert {"[Content_Types].xml", "_rels/.rels", "3D/3dmodel.model"} <= set(z.namelist())
        model = z.read("3D/3dmodel.model").decode()
    assert 'unit="millimeter"' in model and 'name="kidney"' in model


def _open_mesh(kidney) -> StructureMesh:
    return StructureMesh("left kidney", 2, (1, 2, 3), kidney.vertices, kidney.faces[:-5])


@pytest.mark.parametrize("fmt", ["stl", "3mf"])
def test_print_formats_refuse_open_surfaces(kidney, tmp_path, fmt):
    with pytest.raises(SurgtwinError, match="left kidney.*not closed") as exc:
        export_mesh(_open_mesh(kidney), tmp_path / f"k.{fmt}")
    assert str(tmp_path) in str(exc.value)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_view_formats_accept_open_surfaces(kidney, tmp_path):
    path = export_mesh(_open_mesh(kidney), tmp_path / "k.obj")
    v, f = read_mesh_arrays(path)
    assert len(f) == kidney.n_triangles - 5


def test_export_meshes_names_files_safely(kidney, tmp_path):
    paths = export_meshes({"left kidney/1": kidney}, tmp_path, fmt="ply")
    assert paths["left kidney/1"].name == "left_kidney_1.ply"


def test_import_repairs_inside_out_and_duplicated_vertices(kidney, tmp_path):
    import trimesh

    inside_out = trimesh.Trimesh(kidney.vertices, kidney.faces[:, ::-1], process=False)
    path = tmp_path / "implant.stl"
    path.write_bytes(inside_out.export(file_type="stl"))
    m = import_mesh(path, name="implant")
    assert m.quality.watertight and m.quality.outward
    assert any("flipped" in r for r in m.quality.repairs)
    assert any("merged" in r for r in m.quality.repairs)
    assert m.quality.volume_ml == pytest.approx(kidney.quality.volume_ml, rel=1e-5)


def test_import_validation_errors(kidney, tmp_path):
    with pytest.raises(SurgtwinError, match="not found"):
        import_mesh(tmp_path / "missing.stl")
    (tmp_path / "empty.stl").write_bytes(b"")
    with pytest.raises(SurgtwinError, match="empty"):
        import_mesh(tmp_path / "empty.stl")
    (tmp_path / "junk.obj").write_text("this is not a mesh\n")
    with pytest.raises(SurgtwinError, match="junk.obj"):
        import_mesh(tmp_path / "junk.obj")
    with pytest.raises(SurgtwinError, match="unsupported mesh format"):
        import_mesh(tmp_path / "x.step")
    metres = StructureMesh("m", 1, (0, 0, 0), kidney.vertices / 1000.0, kidney.faces)
    export_mesh(metres, tmp_path / "metres.obj")
    with pytest.raises(SurgtwinError, match="implausible for millimetres"):
        import_mesh(tmp_path / "metres.obj")
    export_mesh(_open_mesh(kidney), tmp_path / "open.obj")
    with pytest.raises(SurgtwinError, match="not a closed surface"):
        import_mesh(tmp_path / "open.obj", require_watertight=True)
