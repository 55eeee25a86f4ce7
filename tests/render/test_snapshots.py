"""Offscreen pictures (surgtwin.render.snapshots): orientation, label outlines, plan contours, scale bar."""

from __future__ import annotations

import numpy as np
import pytest

from surgtwin.core.types import Label, LabelMap, LabelTable, Volume
from surgtwin.render import snapshots as sn
from surgtwin.render.glyphs import sphere
from surgtwin.render.scene import SceneObject

RED = (255, 0, 0)


def small_volume():
    """30 x 40 x 50 voxels of 2 x 1 x 1 mm (LPS = (i, j, 2k)); the patient's left half (x > 25) bright,
    a labelled box in the anterior left."""
    shape = (30, 40, 50)
    aff = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [2, 0, 0, 0], [0, 0, 0, 1]], float)
    arr = np.full(shape, -100, np.int16)
    arr[:, :, 25:] = 300
    lab = np.zeros(shape, np.uint8)
    lab[10:20, 5:15, 30:40] = 1
    vol = Volume(arr, aff, modality="CT")
    labels = LabelMap(lab, aff.copy(), labels=LabelTable([Label(1, "liver", (255, 0, 0))]))
    return vol, labels


def colour_pixels(img, rgb, tol=40):
    return np.all(np.abs(img.astype(int) - np.asarray(rgb)) <= tol, axis=-1)


def test_letters_and_scale_lengths():
    assert sn.direction_letters((1, 0, 0)) == "L" and sn.direction_letters((0, -1, 0)) == "A"
    assert sn.direction_letters((0.9, 0.5, 0)) == "LP" and sn.direction_letters((0, 0, -1)) == "I"
    assert sn.view_letters("A") == ("R", "L", "S", "I")
    assert sn.view_letters("L")[:2] == ("A", "P")
    assert [sn.nice_length_mm(x) for x in (7, 23, 180, 0.4)] == [5, 20, 100, 0.2]


def test_axial_slice_is_radiological_with_outlines_and_scale_bar():
    vol, labels = small_volume()
    img = sn.mpr_image(vol, "axial", (35.0, 10.0, 30.0), window=(400, 40), labels=labels, max_px=500)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    h, w, _ = img.shape
    assert w == 500 and h == 400  # 50 x 40 mm at square pixels
    mid = img[h // 2 - 40: h // 2 + 40]
    # patient left (x > 25 mm, bright) is on the screen's right
    assert mid[:, int(0.6 * w):int(0.9 * w)].mean() > mid[:, int(0.1 * w):int(0.4 * w)].mean() + 60
    red = colour_pixels(img, RED)
    rows, cols = np.nonzero(red)
    assert red.sum() > 100  # the liver box's outline
    assert cols.mean() > 0.55 * w and rows.mean() < 0.5 * h  # left (screen right) and anterior (up)
    assert (img[h - 20:h - 8, w - 120:w - 12] > 240).all(axis=-1).any()  # the white scale bar


def test_contours_and_overlays_on_slices():
    vol, labels = small_volume()
    v, f = sphere((20.0, 20.0, 30.0), 6.0, rings=16, sectors=24)
    obj = SceneObject(("implant", "1"), v, f, color=(0, 0, 255), contour=True)
    img = sn.mpr_image(vol, "coronal", (20.0, 20.0, 30.0), objects=[obj],
                       overlays=[sn.Overlay(((20.0, 20.0, 30.0),), (0, 255, 0))])
    assert colour_pixels(img, (0, 0, 255)).sum() > 50 and colour_pixels(img, (0, 255, 0)).sum() > 20
    obl = sn.oblique_image(vol, (20.0, 20.0, 30.0), (1, 0, 0), (0, 0, -1), half_size_mm=15.0, objects=[obj],
                           labels=labels, max_px=300, title="oblique")
    assert obl.shape == (300, 300, 3)
    blue = colour_pixels(obl, (0, 0, 255))
    rows, cols = np.nonzero(blue)
    assert blue.sum() > 50
    # a 6 mm sphere cut through its centre: a ring of radius 6 mm = 6 * 299/30 px about the centre
    r = np.hypot(rows - 149.5, cols - 149.5)
    assert np.median(r) == pytest.approx(6 * 299 / 30, rel=0.1)


def test_render_scene_frames_the_objects():
    v, f = sphere((10.0, -5.0, 40.0), 20.0, rings=12, sectors=16)
    obj = SceneObject(("structure", "ball"), v, f, color=(220, 40, 40))
    img = sn.render_scene([obj], size=(320, 240), view="A", title="ball")
    assert img.shape == (240, 320, 3) and img.dtype == np.uint8
    reddish = (img[..., 0].astype(int) - img[..., 2] > 60)
    rows, cols = np.nonzero(reddish)
    assert reddish.sum() > 0.15 * img.shape[0] * img.shape[1]
    assert abs(cols.mean() - 160) < 20 and abs(rows.mean() - 120) < 20


def test_case_objects_of_a_planned_case():
    from tests.services.rehearsal_cases import synthetic_case

    case = synthetic_case()  # a trajectory record, no meshes
    objs = sn.case_objects(case)
    assert {("trajectory", "T1"), ("trajectory", "T1-entry"), ("trajectory", "T1-target")} <= set(objs)
    tube = objs[("trajectory", "T1")]
    assert tube.contour and np.allclose(tube.world_vertices().mean(axis=0)[1], 25.0, atol=1.0)
    assert not any(k[0] == "structure" for k in objs)
