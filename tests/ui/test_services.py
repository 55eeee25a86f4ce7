"""Headless tests of the app's services and render layers (no Qt, no display)."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import Cancelled


@pytest.fixture(scope="module")
def case():
    from surgtwin.services.demo import phantom

    return phantom(shape=(30, 48, 48), spacing_mm=(4.0, 3.0, 3.0))


def test_services_and_render_do_not_import_qt():
    code = ("import sys, surgtwin.services.session, surgtwin.services.jobs, surgtwin.services.pipeline, "
            "surgtwin.services.recovery, surgtwin.services.panels, surgtwin.services.label_edits, "
            "surgtwin.render.slices, surgtwin.render.scene, surgtwin.core.case;"
            "bad=[m for m in sys.modules if m.split('.')[0] in ('PySide6','vtk','vtkmodules','pyvista','pyvistaqt')];"
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_session_events_and_crosshair_clamped(case):
    from surgtwin.core.case import Case
    from surgtwin.services.session import Session

    vol, lab = case
    s = Session()
    seen = []
    s.crosshair_changed.connect(lambda: seen.append("x"))
    s.labels_changed.connect(lambda bbox: seen.append(("l", bbox)))
    s.set_case(Case(vol))
    s.case.set_labels(lab)
    assert s.window == (400.0, 40.0)
    assert sorted(s.display) == list(range(1, 9))
    s.set_crosshair([1e6, -1e6, 0])
    k, j, i = s.crosshair_index()
    assert i == vol.shape[2] - 1 and j == 0
    assert "x" in seen and ("l", None) in seen
    with pytest.raises(SurgtwinError):
        s.set_structure(99, visible=False)


def test_plane_mapping_follows_the_affine():
    from surgtwin.render.slices import EDGE_LETTERS, extract, plane_mapping

    arr = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    # slices go inferior (-S), rows go anterior (-P): both must be flipped to show upright
    aff = np.array([[0, 0, 1.0, 0], [0, -2.0, 0, 0], [-3.0, 0, 0, 0], [0, 0, 0, 1]])
    ax = plane_mapping(aff, arr.shape, "axial")
    assert (ax.slice_axis, ax.row_axis, ax.col_axis, ax.flip_rows, ax.slice_sign) == (0, 1, 2, True, -1)
    np.testing.assert_array_equal(extract(arr, ax, 1), arr[1, ::-1, :])
    cor = plane_mapping(aff, arr.shape, "coronal")
    assert (cor.slice_axis, cor.row_axis, cor.col_axis, cor.flip_rows) == (1, 0, 2, False)  # -S runs down already
    sag = plane_mapping(aff, arr.shape, "sagittal")
    assert (sag.slice_axis, sag.row_axis, sag.col_axis, sag.flip_cols) == (2, 0, 1, True)
    np.testing.assert_array_equal(extract(arr, sag, 2), arr[:, ::-1, 2])
    r, c = sag.pixel_from_index((1.0, 3.0, 2.0))
    np.testing.assert_allclose(sag.index_from_pixel(2, r, c), (1.0, 3.0, 2.0))
    assert EDGE_LETTERS["axial"] == ("R", "L", "A", "P")


def test_window_and_overlay_colours():
    from surgtwin.render.slices import blend_labels, gray_to_bgra, label_lut, window_to_gray
    from surgtwin.services.session import StructureDisplay

    g = window_to_gray(np.array([[-1000, 40, 240, 3000]]), 400, 40)
    assert g.tolist() == [[0, 127, 255, 255]]
    lut = label_lut({1: StructureDisplay(1, "a", (255, 0, 0), opacity_2d=1.0),
                     2: StructureDisplay(2, "b", (0, 255, 0), visible=False)}, 255)
    img = blend_labels(gray_to_bgra(np.zeros((1, 3), np.uint8)), np.array([[0, 1, 2]]), lut)
    assert img[0, 0, :3].tolist() == [0, 0, 0]
    assert img[0, 1, :3].tolist() == [0, 0, 255]  # BGR order: red
    assert img[0, 2, :3].tolist() == [0, 0, 0]  # hidden structure


def test_paint_erase_threshold_and_undo_are_exact():
    from surgtwin.services import label_edits as LE

    lab = np.zeros((5, 20, 20), np.uint8)
    img = np.zeros_like(lab, dtype=np.int16)
    img[:, :, 10:] = 300
    e = LE.paint(lab, (2.0, 1.0, 1.0), (2, 10, 10), 3.0, 4, axis=0)
    e.apply(lab)
    assert lab[2].sum() == 4 * 29 and lab[1].sum() == 0  # a 3 mm disc = 29 pixels, one slice only
    t = LE.paint(lab, (2.0, 1.0, 1.0), (3, 10, 10), 3.0, 7, axis=0, image=img, hu_range=(100, 500))
    t.apply(lab)
    assert set(np.unique(lab[3, :, :10])) == {0} and (lab[3] == 7).sum() > 0
    before = lab.copy()
    x = LE.erase(lab, (2.0, 1.0, 1.0), (2, 10, 10), 1.0, only_value=4, axis=0)
    x.apply(lab)
    assert (lab[2] == 4).sum() == 29 - 5
    x.revert(lab)
    np.testing.assert_array_equal(lab, before)


def test_merge_of_a_stroke_reverts_to_the_start():
    from surgtwin.services import label_edits as LE

    lab = np.zeros((3, 30, 30), np.uint8)
    start = lab.copy()
    edits = []
    for c in (5, 8, 11, 14):
        e = LE.paint(lab, (1, 1, 1), (1, 10, c), 3.0, 2, axis=0)
        e.apply(lab)
        edits.append(e)
    m = LE.merge(edits, lab, "Paint")
    end = lab.copy()
    m.revert(lab)
    np.testing.assert_array_equal(lab, start)
    m.apply(lab)
    np.testing.assert_array_equal(lab, end)


def test_keep_largest_island_and_smooth():
    from surgtwin.services import label_edits as LE

    lab = np.zeros((10, 10, 10), np.uint8)
    lab[2:7, 2:7, 2:7] = 3
    lab[8, 8, 8] = 3
    lab[4, 4, 4] = 0  # a hole
    e = LE.keep_largest_island(lab, 3)
    e.apply(lab)
    assert lab[8, 8, 8] == 0 and lab[3, 3, 3] == 3
    s = LE.smooth(lab, 3)
    s.apply(lab)
    assert lab[4, 4, 4] == 3  # closing fills the hole
    with pytest.raises(SurgtwinError):
        LE.keep_largest_island(lab, 9)


def test_measurements_and_structure_stats(case):
    from surgtwin.core.measure import angle_deg, distance_mm
    from surgtwin.services.measure import structure_stats

    assert distance_mm((0, 0, 0), (3, 4, 12)) == pytest.approx(13.0)
    assert angle_deg((1, 0, 0), (0, 0, 0), (0, 5, 0)) == pytest.approx(90.0)
    vol, lab = case
    st = structure_stats(lab, vol)
    liver = st[1]
    n = int((lab.array == 1).sum())
    assert liver["voxels"] == n
    assert liver["volume_ml"] == pytest.approx(n * 4 * 3 * 3 / 1000)
    assert liver["mean_hu"] == pytest.approx(float(vol.array[lab.array == 1].mean()))
    assert 40 < liver["mean_hu"] < 85  # the phantom's liver is 62 HU plus noise


def test_jobs_report_progress_cancel_and_errors():
    from surgtwin.services.jobs import Job

    def slow(n, *, progress=None, cancel=None):
        for i in range(n):
            progress(i / n, f"step {i}")
            time.sleep(0.01)
        return n

    j = Job("ok", slow, 5).start()
    assert j.wait(5) and j.status().state == "done" and j.result == 5 and j.status().fraction == 1.0
    c = Job("cancel", slow, 10_000).start()
    time.sleep(0.05)
    c.cancel()
    assert c.wait(5) and c.status().state == "cancelled"

    def bad(*, progress=None, cancel=None):
        raise SurgtwinError("broken file", path="/x.nii")

    f = Job("bad", bad).start()
    f.wait(5)
    assert f.status().state == "failed" and isinstance(f.error, SurgtwinError)
    def cancels_itself(*, progress=None, cancel=None):
        cancel.cancel()
        progress(0.5, "after cancel")  # the job's progress callback raises Cancelled
        return "never"

    with pytest.raises(Cancelled):
        Job("self-cancel", cancels_itself).run_here()


def test_session_is_view_state_over_the_case_and_follows_case_signals(case):
    from surgtwin.core.case import Case
    from surgtwin.core.measure import Measurement
    from surgtwin.services.session import Session

    vol, lab = case
    c1, c2 = Case(vol), Case(vol)
    s = Session()
    s.set_case(c1)
    s.set_case(c2)  # the first case's signals no longer reach the session
    seen = []
    s.measurements_changed.connect(lambda: seen.append("m"))
    s.labels_replaced.connect(lambda: seen.append("r"))
    c1.add_measurement(Measurement("distance", [(0, 0, 0), (3, 4, 0)]))
    assert seen == []
    c2.set_labels(lab)
    c2.add_measurement(Measurement("distance", [(0, 0, 0), (3, 4, 0)]))
    assert seen == ["r", "m"] and sorted(s.display) == list(range(1, 9))
    s.set_structure(2, visible=False, color=(10, 20, 30))
    s.set_window(1800, 400)
    view = s.view_state(layout="1x3")
    c2.set_view(view)
    s2 = Session(case=c2)
    assert s2.window == (1800.0, 400.0) and s2.display[2].visible is False and s2.display[2].color == (10, 20, 30)


def test_panel_registry():
    from surgtwin.services.panels import PanelSpec, default_registry

    reg = default_registry()
    assert [s.id for s in reg.specs()][:2] == ["structures", "tools"]
    assert {"case", "implants", "fem"} <= {s.id for s in reg.specs()}
    reg.register(PanelSpec("trajectories", "Trajectories", "x.y:Z", "left", 50))
    assert "trajectories" in reg
    with pytest.raises(SurgtwinError):
        reg.register(PanelSpec("trajectories", "Again", "x.y:Z"))
    with pytest.raises(SurgtwinError):
        PanelSpec("bad", "Bad", "no.such.module:X").load_factory()


def test_display_meshes_are_in_lps(case):
    from surgtwin.services.pipeline import compute_surfaces, display_meshes

    vol, lab = case
    meshes = display_meshes(compute_surfaces(lab, structures=["aorta"])[0])
    m = meshes["aorta"]
    idx = lab.world_to_index(m.vertices)
    inside = np.argwhere(lab.array == 5)
    assert np.all(idx.min(axis=0) >= inside.min(axis=0) - 1) and np.all(idx.max(axis=0) <= inside.max(axis=0) + 1)


def test_compositor_matches_alpha_blending():
    from surgtwin.render.slices import Compositor, blend_labels, gray_to_bgra, label_lut
    from surgtwin.services.session import StructureDisplay

    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    lab = rng.integers(0, 4, (40, 50)).astype(np.uint8)
    lut = label_lut({1: StructureDisplay(1, "a", (250, 10, 10), opacity_2d=0.4),
                     2: StructureDisplay(2, "b", (10, 250, 10), opacity_2d=0.8),
                     3: StructureDisplay(3, "c", (0, 0, 250), visible=False)}, 255)
    fast = Compositor(lut)(gray, lab, outline=False)
    slow = blend_labels(gray_to_bgra(gray), lab, lut)
    assert np.abs(fast.astype(int) - slow.astype(int)).max() <= 1
    assert np.array_equal(fast[lab == 3], gray_to_bgra(gray)[lab == 3])


def test_body_wall_structures_start_hidden(case):
    from surgtwin.core.case import Case
    from surgtwin.core.types import Label, LabelMap, LabelTable
    from surgtwin.services.session import Session

    vol, lab = case
    table = LabelTable([Label(1, "skin"), Label(2, "liver")])
    s = Session(case=Case(vol))
    s.case.set_labels(LabelMap(np.zeros(vol.shape, np.uint8), vol.affine, labels=table))
    assert s.display[1].visible is False and s.display[2].visible is True


def test_display_meshes_stay_within_the_triangle_budget():
    from surgtwin.services import pipeline

    assert pipeline.display_triangle_budget(28) * 28 <= pipeline.DISPLAY_TRIANGLE_BUDGET
    assert pipeline.display_triangle_budget(1000) == pipeline.MIN_TRIANGLES_PER_STRUCTURE
    assert pipeline.display_triangle_budget(1) == pipeline.DISPLAY_TRIANGLE_BUDGET


def test_display_meshes_are_decimated_full_meshes_are_not():
    from surgtwin.services import pipeline
    from surgtwin.services.demo import phantom

    _, labels = phantom(shape=(48, 96, 96), spacing_mm=(3.0, 2.0, 2.0))
    full, _ = pipeline.compute_surfaces(labels, structures=["liver"])
    shown = pipeline.display_meshes(full, n_structures=len(labels.labels), total_triangles=len(labels.labels) * 1000)
    n_full, n_shown = len(full["liver"].faces), len(shown["liver"].faces)
    assert n_full > pipeline.MIN_TRIANGLES_PER_STRUCTURE  # else the budget would not apply
    assert 0.3 * pipeline.MIN_TRIANGLES_PER_STRUCTURE < n_shown <= pipeline.MIN_TRIANGLES_PER_STRUCTURE * 1.05 < n_full


def test_pipeline_segment_classical_returns_the_full_result(case):
    from surgtwin.core.case import Case
    from surgtwin.services import pipeline

    vol, _ = case
    c = Case(vol)
    out = pipeline.run_step(c, "segment", method="classical")
    res = out.result
    assert c.labels is res.labels or np.array_equal(c.labels.array, res.labels.array)
    assert c.item("labels").provenance.method == "segment:classical"
    assert res.method == "classical"
    assert res.labels.shape == vol.shape and np.allclose(res.labels.affine, vol.affine)
    assert res.structures and all(s.volume_ml > 0 and s.confidence is None for s in res.structures)


def test_check_bundle_refuses_a_folder_that_is_not_a_bundle_naming_it(tmp_path):
    from surgtwin.services import pipeline

    folder = tmp_path / "hospital_model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\0" * 16)
    with pytest.raises(SurgtwinError) as info:
        pipeline.check_bundle(folder)
    assert info.value.path == str(folder)
    assert "not a usable MONAI bundle" in info.value.reason and "metadata.json" in info.value.reason
    with pytest.raises(SurgtwinError, match="not a usable MONAI bundle"):
        pipeline.check_bundle(tmp_path / "missing")


def test_contour_of_a_sphere_on_an_axial_slice_is_its_equator():
    import trimesh

    from surgtwin.render.slices import contour_pixels, plane_mapping

    aff = np.array([[0, 0, 1.0, 0], [0, 1.0, 0, 0], [2.0, 0, 0, 0], [0, 0, 0, 1]])  # slices 2 mm along S
    m = plane_mapping(aff, (20, 50, 50), "axial")
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=10)
    sphere.apply_translation([25, 25, 20])
    seg = contour_pixels(sphere.vertices, sphere.faces, aff, m, 10)  # the slice through the centre
    assert not m.flip_rows and not m.flip_cols  # rows run to P, columns to L: screen = index
    radii = np.linalg.norm(seg.reshape(-1, 2) - [25, 25], axis=1)
    assert len(seg) > 40 and np.all(np.abs(radii - 10) < 0.2)
    assert len(contour_pixels(sphere.vertices, sphere.faces, aff, m, 2)) == 0  # z = 4 mm: below the sphere
