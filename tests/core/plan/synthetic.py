"""Synthetic anatomy with known geometry for the planning tests (no sample data needed)."""

from __future__ import annotations

import numpy as np

from surgtwin.core.types import Label, LabelMap, LabelTable, Volume

SPACING = (0.6, 0.5, 0.55)
#: a coarser grid over the same extent, for the service and command-line tests (5 times fewer voxels)
COARSE = {"spacing": (1.0, 0.9, 0.95), "shape": (66, 78, 75)}
HALF = np.array([20.0, 15.0, 40.0])  # the bone block's half sizes along L, P, S (mm)
CANAL_X, CANAL_R = -10.0, 5.0
AORTA_Y, AORTA_R = -30.0, 6.0


def spine_block(shape=(110, 140, 130), spacing=SPACING):
    """(labels, ct, centre): a bone ('vertebrae') block on an oblique anisotropic grid around
    ``centre`` (LPS), a 'spinal_canal' cylinder along S inside it at x = CANAL_X, an 'aorta' tube
    in front of it (y = AORTA_Y), a 2 mm cortical shell (1200 HU) around cancellous bone (300 HU)."""
    from tests.core.test_mesh_surfaces import oblique_affine

    a = oblique_affine(spacing)
    arr = np.zeros(shape, np.uint8)
    table = LabelTable([Label(1, "vertebrae"), Label(2, "spinal_canal"), Label(3, "aorta")])
    lm = LabelMap(arr, a, labels=table)
    centre = lm.index_to_world(np.array(shape) / 2)
    rel = (lm.index_to_world(np.argwhere(np.ones(shape, bool))) - centre).reshape(*shape, 3)
    bone = np.all(np.abs(rel) < HALF, axis=-1)
    canal = np.hypot(rel[..., 0] - CANAL_X, rel[..., 1]) < CANAL_R
    aorta = np.hypot(rel[..., 0], rel[..., 1] - AORTA_Y) < AORTA_R
    arr[bone] = 1
    arr[canal] = 2
    arr[aorta] = 3
    depth = np.min(HALF - np.abs(rel), axis=-1)
    hu = np.where(bone & ~canal, np.where(depth < 2.0, 1200, 300), np.where(canal, 20, -100))
    hu[aorta] = 250
    return lm, Volume(hu.astype(np.int16), a, modality="CT"), centre
