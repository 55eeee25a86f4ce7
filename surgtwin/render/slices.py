"""MPR slice extraction and colouring (numpy only; no Qt, no VTK).

Each plane is shown the radiological way: axial seen from the feet (patient left on screen right,
anterior up), coronal seen from the front (patient left on screen right, superior up), sagittal seen
from the patient's left (anterior on screen left, superior up). ``PlaneMapping`` says which array axis
(of (slice, row, column)) runs along the screen's columns and rows and across slices, with flips;
it is picked from the affine, so any axis-aligned acquisition shows upright (an oblique one shows at
its nearest axis).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PLANES = ("axial", "coronal", "sagittal")
#: plane -> (LPS axis across slices, LPS direction of screen-right, LPS direction of screen-down)
_SCREEN = {
    "axial": (2, (0, +1), (1, +1)),  # right = +L, down = +P
    "coronal": (1, (0, +1), (2, -1)),  # right = +L, down = -S
    "sagittal": (0, (1, +1), (2, -1)),  # right = +P, down = -S
}
#: orientation letters at the screen's left, right, top, bottom edges
EDGE_LETTERS = {"axial": ("R", "L", "A", "P"), "coronal": ("R", "L", "S", "I"), "sagittal": ("A", "P", "S", "I")}


@dataclass(frozen=True)
class PlaneMapping:
    plane: str
    slice_axis: int
    row_axis: int
    col_axis: int
    flip_rows: bool
    flip_cols: bool
    slice_sign: int  # +1 when increasing the slice index moves towards +S / +P / +L
    n_slices: int
    n_rows: int
    n_cols: int
    row_spacing_mm: float
    col_spacing_mm: float

    def slice_from_index(self, kji) -> int:
        return int(round(kji[self.slice_axis]))

    def pixel_from_index(self, kji) -> tuple[float, float]:
        """(row, col) on screen of a continuous index (k, j, i)."""
        r = kji[self.row_axis]
        c = kji[self.col_axis]
        if self.flip_rows:
            r = self.n_rows - 1 - r
        if self.flip_cols:
            c = self.n_cols - 1 - c
        return float(r), float(c)

    def index_from_pixel(self, slice_index: float, row: float, col: float) -> np.ndarray:
        if self.flip_rows:
            row = self.n_rows - 1 - row
        if self.flip_cols:
            col = self.n_cols - 1 - col
        kji = np.zeros(3)
        kji[self.slice_axis] = slice_index
        kji[self.row_axis] = row
        kji[self.col_axis] = col
        return kji


def plane_mapping(affine: np.ndarray, shape, plane: str) -> PlaneMapping:
    if plane not in _SCREEN:
        raise ValueError(f"plane must be one of {PLANES}")
    direction = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    # which array axis lies along each LPS axis (greedy on the largest cosines)
    owner = {}
    free = [0, 1, 2]
    for lps in np.argsort(-np.max(np.abs(direction), axis=1)):
        ax = max(free, key=lambda a: abs(direction[lps, a]))
        owner[int(lps)] = ax
        free.remove(ax)
    normal_lps, (right_lps, right_sign), (down_lps, down_sign) = _SCREEN[plane]
    s_ax, c_ax, r_ax = owner[normal_lps], owner[right_lps], owner[down_lps]
    flip_cols = np.sign(direction[right_lps, c_ax]) != right_sign
    flip_rows = np.sign(direction[down_lps, r_ax]) != down_sign
    return PlaneMapping(plane, s_ax, r_ax, c_ax, bool(flip_rows), bool(flip_cols),
                        1 if direction[normal_lps, s_ax] > 0 else -1, int(shape[s_ax]), int(shape[r_ax]),
                        int(shape[c_ax]), float(spacing[r_ax]), float(spacing[c_ax]))


def extract(array: np.ndarray, m: PlaneMapping, slice_index: int) -> np.ndarray:
    """The 2D slice as (screen rows, screen columns): one copy of the slice (``np.take``), then views."""
    s = np.take(array, int(np.clip(slice_index, 0, m.n_slices - 1)), axis=m.slice_axis)
    remaining = [a for a in range(3) if a != m.slice_axis]
    if remaining.index(m.row_axis) == 1:
        s = s.T
    if m.flip_rows:
        s = s[::-1, :]
    if m.flip_cols:
        s = s[:, ::-1]
    return s


def window_to_gray(slice2d: np.ndarray, width: float, level: float) -> np.ndarray:
    """Window/level to uint8 (0 = level - width/2, 255 = level + width/2)."""
    lo = level - width / 2.0
    scale = 255.0 / max(width, 1e-6)
    out = (slice2d.astype(np.float32) - np.float32(lo)) * np.float32(scale)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def gray_to_bgra(gray: np.ndarray) -> np.ndarray:
    """uint8 (H, W) -> (H, W, 4) uint8 in the byte order of QImage.Format_RGB32 on little-endian."""
    h, w = gray.shape
    out = np.empty((h, w, 4), dtype=np.uint8)
    out[..., 0] = gray
    out[..., 1] = gray
    out[..., 2] = gray
    out[..., 3] = 255
    return out


def label_lut(display: dict, max_value: int) -> np.ndarray:
    """(max_value+1, 4) RGBA uint8 lookup table from ``{value: StructureDisplay}`` (hidden -> alpha 0)."""
    lut = np.zeros((max(int(max_value), max(display, default=0)) + 1, 4), dtype=np.uint8)
    for v, d in display.items():
        if d.visible and v < len(lut):
            lut[v, :3] = d.color
            lut[v, 3] = int(round(255 * d.opacity_2d))
    return lut


class Compositor:
    """Grey slice + label slice -> BGRA in one table lookup per pixel.

    For every visible label row ``r`` and grey level ``g`` the blended colour is precomputed:
    ``table[r, g] = g * (1 - a_r) + colour_r * a_r``; row 0 is plain grey (background and hidden
    labels). Label values map to rows through ``remap``. Rebuild it when display settings change.
    """

    def __init__(self, lut: np.ndarray) -> None:
        visible = np.flatnonzero(lut[:, 3] > 0)
        self.remap = np.zeros(len(lut), dtype=np.uint16 if len(visible) >= 255 else np.uint8)
        self.remap[visible] = np.arange(1, len(visible) + 1)
        g = np.arange(256, dtype=np.float32)[None, :, None]
        a = np.concatenate([[0.0], lut[visible, 3] / 255.0]).astype(np.float32)[:, None, None]
        col = np.concatenate([np.zeros((1, 3)), lut[visible, :3][:, ::-1]]).astype(np.float32)[:, None, :]  # BGR
        table = np.empty((len(visible) + 1, 256, 4), dtype=np.uint8)
        table[..., :3] = np.rint(g * (1 - a) + col * a).astype(np.uint8)
        table[..., 3] = 255
        self.table = table
        self._table32 = table.view(np.uint32).reshape(-1)  # one BGRA pixel per entry: row * 256 + grey
        self.edge_bgra = np.concatenate([np.zeros((1, 4)), np.c_[lut[visible, :3][:, ::-1], np.full(len(visible), 255)]
                                         ]).astype(np.uint8)

    def __call__(self, gray: np.ndarray, labels2d: np.ndarray | None, *, outline: bool = True) -> np.ndarray:
        if labels2d is None:
            return gray_to_bgra(gray)
        # flat gathers of whole pixels (uint32) instead of ``table[rows, gray]``: ~6x faster on 512x512
        rows = np.take(self.remap, labels2d, mode="clip")
        if len(self.table) <= 256:
            flat = rows.astype(np.uint16)
            flat <<= 8
            flat |= gray
        else:
            flat = rows.astype(np.intp) * 256 + gray
        out = np.take(self._table32, flat).view(np.uint8).reshape(*gray.shape, 4)
        if outline:
            e = label_edges(rows)
            if e.any():
                out[e] = self.edge_bgra[rows[e]]
        return out


def blend_labels(bgra: np.ndarray, labels2d: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Alpha-blend a label slice (through an RGBA LUT) over a BGRA image, in place; returns it."""
    lab = np.clip(labels2d, 0, len(lut) - 1)
    if not lab.any():
        return bgra
    rgba = lut[lab]
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    nz = a[..., 0] > 0
    if not nz.any():
        return bgra
    src = bgra[nz, :3].astype(np.float32)
    col = rgba[nz][:, [2, 1, 0]].astype(np.float32)  # RGB -> BGR
    an = a[nz]
    bgra[nz, :3] = (src * (1 - an) + col * an).astype(np.uint8)
    return bgra


def label_edges(labels2d: np.ndarray) -> np.ndarray:
    """Boolean mask of label boundary pixels (for outline drawing)."""
    e = np.zeros(labels2d.shape, dtype=bool)
    e[:-1, :] |= labels2d[:-1, :] != labels2d[1:, :]
    e[1:, :] |= labels2d[1:, :] != labels2d[:-1, :]
    e[:, :-1] |= labels2d[:, :-1] != labels2d[:, 1:]
    e[:, 1:] |= labels2d[:, 1:] != labels2d[:, :-1]
    return e & (labels2d > 0)


def contour_pixels(vertices_lps: np.ndarray, faces: np.ndarray, affine: np.ndarray, mapping: PlaneMapping,
                   slice_index: int) -> np.ndarray:
    """Where a closed triangle mesh cuts an MPR slice: (n, 2, 2) segments as (row, col) pixel
    coordinates of ``mapping``'s view. The slice is the plane ``index[slice_axis] = slice_index`` of
    the volume grid (an axis-aligned plane in index space, so each cut is a linear interpolation
    along the two triangle edges that cross it)."""
    if not len(faces):
        return np.zeros((0, 2, 2))
    kji = np.c_[np.asarray(vertices_lps, float), np.ones(len(vertices_lps))] @ np.linalg.inv(affine).T
    kji = kji[:, :3]
    d = kji[:, mapping.slice_axis] - float(slice_index)
    d = np.where(d == 0, 1e-9, d)  # a vertex on the plane counts as just above it
    f = np.asarray(faces, np.int64)
    side = d[f] > 0
    cut = side.any(axis=1) & ~side.all(axis=1)
    if not cut.any():
        return np.zeros((0, 2, 2))
    f = f[cut]
    pts = []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        va, vb = f[:, a], f[:, b]
        crosses = (d[va] > 0) != (d[vb] > 0)
        denom = np.where(crosses, d[va] - d[vb], 1.0)
        t = np.where(crosses, d[va] / denom, np.nan)
        pts.append(kji[va] + t[:, None] * (kji[vb] - kji[va]))
    pts = np.stack(pts, axis=1)  # (n, 3 edges, 3): exactly two edges cross
    ok = ~np.isnan(pts[..., 0])
    seg = pts[ok].reshape(-1, 2, 3)
    r, c = seg[..., mapping.row_axis], seg[..., mapping.col_axis]
    if mapping.flip_rows:
        r = mapping.n_rows - 1 - r
    if mapping.flip_cols:
        c = mapping.n_cols - 1 - c
    return np.stack([r, c], axis=-1)


def oblique(array: np.ndarray, affine: np.ndarray, centre_lps, u_lps, v_lps, *, half_size_mm: float = 30.0,
            spacing_mm: float = 0.25, order: int = 1, cval: float = -1024.0) -> np.ndarray:
    """A double-oblique reslice: the volume sampled on the plane through ``centre_lps`` spanned by the
    unit vectors ``u_lps`` (screen right) and ``v_lps`` (screen down), over +-``half_size_mm`` at
    ``spacing_mm`` (trilinear for ``order=1``). Returns (rows along v, cols along u); pixel (r, c) is
    ``centre + (c*s - h) u + (r*s - h) v``."""
    from scipy.ndimage import map_coordinates

    n = int(round(2 * half_size_mm / spacing_mm)) + 1
    t = np.arange(n) * spacing_mm - half_size_mm
    u, v = np.asarray(u_lps, float), np.asarray(v_lps, float)
    pts = np.asarray(centre_lps, float) + t[None, :, None] * u + t[:, None, None] * v  # (rows, cols, 3)
    inv = np.linalg.inv(np.asarray(affine, float))
    kji = pts @ inv[:3, :3].T + inv[:3, 3]
    return map_coordinates(np.asarray(array, np.float32), kji.transpose(2, 0, 1), order=order, mode="constant",
                           cval=cval, prefilter=False)


def oblique_pixel(centre_lps, u_lps, v_lps, points_lps, *, half_size_mm: float = 30.0,
                  spacing_mm: float = 0.25) -> np.ndarray:
    """(row, col) pixels of ``points_lps`` (N, 3) projected onto an ``oblique`` reslice's plane."""
    d = np.asarray(points_lps, float) - np.asarray(centre_lps, float)
    return np.stack([(d @ np.asarray(v_lps, float) + half_size_mm) / spacing_mm,
                     (d @ np.asarray(u_lps, float) + half_size_mm) / spacing_mm], axis=-1)
