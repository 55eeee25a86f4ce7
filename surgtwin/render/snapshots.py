"""Offscreen pictures of a case (no Qt): a 3D snapshot of scene objects and MPR / oblique slices with
label outlines, plan contours, orientation letters and a scale bar, as RGB uint8 arrays (H, W, 3).

Used by the plan report (``surgtwin.services.report``) and the DICOM Secondary Capture export. All
geometry is LPS mm; the pictures burn in their own annotations (title, orientation letters at the
edges, a millimetre scale bar), so they stay readable when printed or exported on their own.

* ``render_scene(objects, ...)``: ``SceneObject``s (``surgtwin.render.scene``) in a parallel-projection
  view from a standard direction, framed on ``bounds`` (e.g. the plan objects), so a scale bar holds.
* ``case_objects(case, ...)``: the scene objects of a case as the app draws them: structure surfaces in
  their label colours, placed implants, the TAVR annulus and valve, planned trajectories.
* ``mpr_image(volume, plane, point, ...)``: the axial / coronal / sagittal slice through a point, shown
  the radiological way (``surgtwin.render.slices``), with label outlines and object contours.
* ``oblique_image(volume, centre, u, v, ...)``: a reslice on any plane (an annulus plane, a plane
  along a trajectory) with the same overlays.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from surgtwin.render.scene import STANDARD_VIEWS, SceneObject
from surgtwin.render.slices import EDGE_LETTERS

#: 3D background (bottom, top) RGB 0-1: the app's dark slate, so light bone and dark vessels both show
BACKGROUND = ((0.09, 0.10, 0.13), (0.25, 0.28, 0.34))
#: colours of plan objects (RGB 0-255)
IMPLANT_COLOUR = (80, 160, 255)
VALVE_COLOUR = (120, 230, 140)
ANNULUS_COLOUR = (255, 120, 40)
INSTRUMENT_COLOUR = (0, 230, 230)
FAIL_COLOUR = (255, 60, 60)
TARGET_COLOUR = (255, 107, 208)
ENTRY_COLOUR = (80, 220, 255)
CROSS_COLOUR = (255, 220, 40)
#: screen-direction names of the six standard views (the report's captions)
VIEW_NAMES = {"A": "anterior", "P": "posterior", "L": "left lateral", "R": "right lateral", "S": "superior",
              "I": "inferior"}
_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))  # LPS axis -> (letter of -axis, letter of +axis)


@dataclass(frozen=True)
class Overlay:
    """Drawn on a slice: a point (one LPS point: a ring with a cross), a segment or a polyline (more;
    ``closed`` joins the last to the first), in RGB ``colour``, with an optional ``label``."""

    points: tuple
    colour: tuple[int, int, int] = CROSS_COLOUR
    label: str = ""
    dashed: bool = False
    closed: bool = False


# -- annotations ----------------------------------------------------------------------------------
def direction_letters(vec, *, threshold: float = 0.35) -> str:
    """Orientation letters of an LPS direction, the strongest axis first (``(0.9, 0.4, 0) -> "LP"``)."""
    v = np.asarray(vec, float)
    v = v / max(float(np.linalg.norm(v)), 1e-12)
    order = np.argsort(-np.abs(v))
    out = [_LETTERS[a][1 if v[a] > 0 else 0] for a in order if abs(v[a]) >= threshold]
    return "".join(out[:2]) or _LETTERS[order[0]][1 if v[order[0]] > 0 else 0]


def nice_length_mm(max_mm: float) -> float:
    """The largest 1-2-5 x 10^k length not above ``max_mm`` (a scale bar's length)."""
    if max_mm <= 0:
        return 1.0
    exp = 10.0 ** np.floor(np.log10(max_mm))
    for m in (5.0, 2.0, 1.0):
        if m * exp <= max_mm:
            return float(m * exp)
    return float(exp)


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def annotate(rgb: np.ndarray, *, title: str = "", letters=None, px_per_mm: float | None = None,
             footer: str = "") -> np.ndarray:
    """Burn a title (top left), orientation ``letters`` (left, right, top, bottom edges), a scale bar
    (bottom right, when ``px_per_mm`` is given) and a ``footer`` (bottom left) into a copy of ``rgb``."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.ascontiguousarray(rgb[..., :3]).astype(np.uint8))
    d = ImageDraw.Draw(img)
    w, h = img.size
    fs = max(12, int(round(max(w, h) / 34)))
    font, small = _font(fs), _font(max(10, int(fs * 0.85)))
    halo = dict(stroke_width=max(1, fs // 8), stroke_fill=(0, 0, 0))
    if title:
        d.text((8, 6), title, fill=(255, 255, 255), font=font, **halo)
    if letters:
        left, right, top, bottom = letters
        big = _font(int(fs * 1.2))
        colour = (255, 235, 120)
        d.text((6, h / 2), left, fill=colour, font=big, anchor="lm", **halo)
        d.text((w - 6, h / 2), right, fill=colour, font=big, anchor="rm", **halo)
        top_y = 6
        if title and d.textlength(title, font=font) + 8 > w / 2 - 2 * fs:
            top_y += fs + 8  # below a long title
        d.text((w / 2, top_y), top, fill=colour, font=big, anchor="mt", **halo)
        d.text((w / 2, h - 6), bottom, fill=colour, font=big, anchor="mb", **halo)
    if px_per_mm and np.isfinite(px_per_mm) and px_per_mm > 0:
        mm = nice_length_mm(0.25 * w / px_per_mm)
        n = mm * px_per_mm
        x1, y = w - 12, h - 14
        x0 = x1 - n
        d.line([(x0, y), (x1, y)], fill=(255, 255, 255), width=3)
        for x in (x0, x1):
            d.line([(x, y - 6), (x, y + 1)], fill=(255, 255, 255), width=2)
        d.text(((x0 + x1) / 2, y - 6), f"{mm:g} mm", fill=(255, 255, 255), font=small, anchor="mb", **halo)
    if footer:
        d.text((8, h - 8), footer, fill=(220, 220, 220), font=small, anchor="lb", **halo)
    return np.asarray(img)


# -- 3D ---------------------------------------------------------------------------------------------
def objects_bounds(objects, *, margin_mm: float = 0.0):
    """(xmin, xmax, ymin, ymax, zmin, zmax) of the visible objects' world vertices (None if none)."""
    pts = [o.world_vertices() for o in objects if o.visible and len(o.vertices)]
    if not pts:
        return None
    allp = np.vstack(pts)
    lo, hi = allp.min(axis=0) - margin_mm, allp.max(axis=0) + margin_mm
    return (lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])


def view_vectors(view) -> tuple[np.ndarray, np.ndarray]:
    """(camera direction from the focal point, view-up) of a standard view name or a (direction, up) pair."""
    direction, up = STANDARD_VIEWS[view] if isinstance(view, str) else view
    d = np.asarray(direction, float)
    d = d / np.linalg.norm(d)
    u = np.asarray(up, float) - d * float(np.dot(up, d))
    return d, u / np.linalg.norm(u)


def view_letters(view) -> tuple[str, str, str, str]:
    """(left, right, top, bottom) orientation letters of a view (a name or a (direction, up) pair)."""
    direction, up = view_vectors(view)
    right = np.cross(-direction, up)
    return (direction_letters(-right), direction_letters(right), direction_letters(up), direction_letters(-up))


def render_scene(objects, *, size=(900, 700), view="A", bounds=None, title: str = "",
                 zoom: float = 1.0) -> np.ndarray:
    """An offscreen picture (RGB uint8, ``size`` = (width, height)) of ``objects`` from ``view`` (a
    standard view name of ``surgtwin.render.scene.STANDARD_VIEWS`` or a (camera direction, up) pair in
    LPS), parallel projection framed on ``bounds`` (default: all objects), with the title,
    orientation letters and a scale bar burnt in."""
    import pyvista as pv

    from surgtwin.render.scene import ScenePainter

    objects = [o for o in objects if o.visible and len(o.faces)]
    w, h = int(size[0]), int(size[1])
    if not os.environ.get("DISPLAY"):  # headless: VTK tries X first and warns on stderr before EGL/OSMesa
        import vtk

        vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_ERROR)
    bounds = bounds if bounds is not None else objects_bounds(objects)
    pl = pv.Plotter(off_screen=True, window_size=(w, h))
    try:
        pl.set_background(BACKGROUND[0], top=BACKGROUND[1])
        painter = ScenePainter(pl)
        painter.sync({o.key: o for o in objects})
        px_per_mm = None
        if bounds is not None:
            px_per_mm = _frame(pl, view, bounds, w / h, zoom) * h
        img = np.asarray(pl.screenshot(return_img=True))[..., :3]
    finally:
        pl.close()
    return annotate(img, title=title, letters=view_letters(view), px_per_mm=px_per_mm)


def _frame(pl, view, bounds, aspect: float, zoom: float) -> float:
    """Point the parallel camera from ``view`` at ``bounds``; returns pixels per mm over the height (1/(2 scale))."""
    direction, up = view_vectors(view)
    b = np.asarray(bounds, float)
    centre = np.array([(b[0] + b[1]) / 2, (b[2] + b[3]) / 2, (b[4] + b[5]) / 2])
    corners = np.array([[x, y, z] for x in b[0:2] for y in b[2:4] for z in b[4:6]]) - centre
    right = np.cross(-direction, up)
    half_w = float(np.max(np.abs(corners @ right)))
    half_h = float(np.max(np.abs(corners @ up)))
    scale = max(half_h, half_w / aspect, 1.0) * 1.08 / zoom
    dist = float(np.linalg.norm(b[1::2] - b[0::2])) * 2 + 100.0
    cam = pl.camera
    pl.enable_parallel_projection()
    cam.focal_point = centre
    cam.position = centre + direction * dist
    cam.up = up
    cam.parallel_scale = scale
    pl.renderer.ResetCameraClippingRange()
    return 1.0 / (2.0 * scale)


def case_objects(case, *, hidden=(), structure_opacity: float = 1.0, plan: bool = True,
                 meshes: dict | None = None) -> dict:
    """The case's scene objects as the app draws them: structures (label colours; names in ``hidden``
    left out; ``meshes`` may be lighter display copies), and with ``plan`` the placed implants, the
    TAVR annulus and valve, and the planned trajectories (instrument, entry and target markers)."""
    from surgtwin.render.glyphs import slab, sphere, tube

    hidden = {h.lower() for h in hidden}
    out: dict = {}
    for name, m in (case.meshes if meshes is None else meshes).items():
        if name.lower() in hidden:
            continue
        out[("structure", name)] = SceneObject(("structure", name), m.vertices, m.faces,
                                               color=tuple(int(c) for c in m.color[:3]), opacity=structure_opacity,
                                               value=int(m.label))
    if not plan:
        return out
    imp = case.item("implants")
    if imp is not None and imp.value:
        from surgtwin.core.plan.pose import placements_from_json

        for p in placements_from_json(imp.value):
            mesh = p.implant.mesh()
            out[("implant", p.id)] = SceneObject(("implant", p.id), mesh.vertices, mesh.faces, color=IMPLANT_COLOUR,
                                                 matrix=p.pose.matrix, contour=True)
    tavr = case.item("tavr")
    if tavr is not None and tavr.value:
        m = tavr.value["measurement"]
        contour = np.asarray(m["contour_lps"], float)
        v, f = slab(contour, m["normal_lps"], thickness_mm=0.8)
        out[("tavr", "annulus")] = SceneObject(("tavr", "annulus"), v, f, color=ANNULUS_COLOUR, opacity=0.45,
                                               contour=True)
        v, f, _ = tube(contour, 0.6, sides=8, closed=True)
        out[("tavr", "ring")] = SceneObject(("tavr", "ring"), v, f, color=ANNULUS_COLOUR)
        valve = tavr.value.get("valve")
        if valve:
            from surgtwin.core.plan.implants import family

            mesh = family(valve["implant_family"]).implant(str(valve["size"])).mesh()
            out[("tavr", "valve")] = SceneObject(("tavr", "valve"), mesh.vertices, mesh.faces, color=VALVE_COLOUR,
                                                 opacity=0.75, matrix=np.asarray(valve["matrix_lps"], float),
                                                 contour=True)
    traj = case.item("trajectories")
    for t in (traj.value if traj is not None else None) or []:
        entry, target = np.asarray(t["entry_lps"], float), np.asarray(t["target_lps"], float)
        inst = t.get("instrument")
        dia = float(inst.get("diameter_mm") or 2.0) if isinstance(inst, dict) else 2.0
        colour = INSTRUMENT_COLOUR if t.get("passed", True) else FAIL_COLOUR
        tid = str(t.get("id"))
        v, f, _ = tube(np.array([entry, target]), max(dia / 2, 0.6), sides=16)
        out[("trajectory", tid)] = SceneObject(("trajectory", tid), v, f, color=colour, contour=True)
        for name, p, c in (("entry", entry, ENTRY_COLOUR), ("target", target, TARGET_COLOUR)):
            v, f = sphere(p, 2.5)
            out[("trajectory", f"{tid}-{name}")] = SceneObject(("trajectory", f"{tid}-{name}"), v, f, color=c,
                                                               contour=True)
    return out


# -- slices -----------------------------------------------------------------------------------------
def label_colours(labels) -> dict[int, tuple[int, int, int]]:
    """{label value: RGB} from a label map's table."""
    return {int(lab.value): tuple(int(c) for c in lab.color[:3]) for lab in labels.labels}


def _resize(arr: np.ndarray, out_hw: tuple[int, int], *, nearest: bool) -> np.ndarray:
    h, w = arr.shape[:2]
    rows = np.clip(((np.arange(out_hw[0]) + 0.5) * h / out_hw[0] - 0.5), 0, h - 1)
    cols = np.clip(((np.arange(out_hw[1]) + 0.5) * w / out_hw[1] - 0.5), 0, w - 1)
    if nearest:
        return arr[np.rint(rows).astype(int)[:, None], np.rint(cols).astype(int)[None, :]]
    from scipy.ndimage import map_coordinates

    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return map_coordinates(arr.astype(np.float32), [rr, cc], order=1, mode="nearest")


def _compose(gray: np.ndarray, lab: np.ndarray | None, colours: dict, fill_alpha: float, outline_only) -> np.ndarray:
    """Grey (H, W) float 0-255 and labels (H, W) at output size -> RGB with fills and 2-px outlines."""
    from surgtwin.render.slices import label_edges

    rgb = np.repeat(np.clip(gray, 0, 255)[..., None], 3, axis=2).astype(np.float32)
    if lab is None or not lab.any():
        return rgb.astype(np.uint8)
    top = int(lab.max())
    lut = np.zeros((top + 1, 3), np.float32)
    fill = np.zeros(top + 1, bool)
    for v, c in colours.items():
        if 0 < v <= top:
            lut[v] = c
            fill[v] = v not in outline_only
    lab = lab.astype(np.int64)
    f = fill[lab] & (lab > 0)
    rgb[f] = rgb[f] * (1 - fill_alpha) + lut[lab[f]] * fill_alpha
    e = label_edges(lab)
    e2 = e.copy()
    e2[1:, :] |= e[:-1, :] & (lab[1:, :] == lab[:-1, :])
    e2[:, 1:] |= e[:, :-1] & (lab[:, 1:] == lab[:, :-1])
    rgb[e2] = lut[lab[e2]]
    return rgb.astype(np.uint8)


def _draw_segments(rgb: np.ndarray, segments, colour, width: int = 2) -> np.ndarray:
    """Draw (n, 2, 2) (row, col) pixel segments onto ``rgb`` (a new array)."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(rgb)
    d = ImageDraw.Draw(img)
    for (r0, c0), (r1, c1) in np.asarray(segments, float):
        d.line([(c0, r0), (c1, r1)], fill=tuple(int(x) for x in colour), width=width)
    return np.asarray(img)


def _draw_overlays(rgb: np.ndarray, overlays, to_px) -> np.ndarray:
    """Points (a ring with a cross) and segments (``to_px``: LPS (N, 3) -> (N, 2) row, col)."""
    from PIL import Image, ImageDraw

    if not overlays:
        return rgb
    img = Image.fromarray(rgb)
    d = ImageDraw.Draw(img)
    font = _font(max(11, int(min(img.size) / 40)))
    for ov in overlays:
        px = np.asarray(to_px(np.asarray(ov.points, float).reshape(-1, 3)), float)
        colour = tuple(int(x) for x in ov.colour)
        if len(px) == 1:
            r, c = px[0]
            d.ellipse([c - 7, r - 7, c + 7, r + 7], outline=colour, width=2)
            d.line([(c - 11, r), (c - 3, r)], fill=colour, width=2)
            d.line([(c + 3, r), (c + 11, r)], fill=colour, width=2)
            d.line([(c, r - 11), (c, r - 3)], fill=colour, width=2)
            d.line([(c, r + 3), (c, r + 11)], fill=colour, width=2)
        elif len(px) > 2:
            pts = [(c, r) for r, c in px] + ([(px[0][1], px[0][0])] if ov.closed else [])
            d.line(pts, fill=colour, width=2, joint="curve")
            r, c = px[0]
        else:
            (r0, c0), (r1, c1) = px[0], px[-1]
            if ov.dashed:
                n = max(2, int(np.hypot(r1 - r0, c1 - c0) / 8))
                t = np.linspace(0, 1, n + 1)
                for a, b in zip(t[0::2], t[1::2], strict=False):
                    d.line([(c0 + a * (c1 - c0), r0 + a * (r1 - r0)), (c0 + b * (c1 - c0), r0 + b * (r1 - r0))],
                           fill=colour, width=2)
            else:
                d.line([(c0, r0), (c1, r1)], fill=colour, width=2)
            r, c = px[0]
        if ov.label:
            d.text((c + 12, r - 12), ov.label, fill=colour, font=font, stroke_width=2, stroke_fill=(0, 0, 0))
    return np.asarray(img)


def _out_size(h_mm: float, w_mm: float, max_px: int) -> tuple[int, int, float]:
    """(height, width, px per mm) of a picture ``h_mm`` x ``w_mm`` whose longer side is ``max_px``."""
    ppm = max_px / max(h_mm, w_mm)
    return max(1, int(round(h_mm * ppm))), max(1, int(round(w_mm * ppm))), ppm


PLANE_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}


def slice_position_text(plane: str, point_lps) -> str:
    """Where an MPR slice lies along its normal, e.g. ``"S 12.5 mm"`` (LPS, axial: along S)."""
    ax = PLANE_AXIS[plane]
    v = float(np.asarray(point_lps, float)[ax])
    return f"{_LETTERS[ax][1 if v >= 0 else 0]} {abs(v):.1f} mm"


def mpr_image(volume, plane: str, point_lps, *, window=(400.0, 40.0), labels=None, colours: dict | None = None,
              objects=(), overlays=(), fill_alpha: float = 0.25, outline_only=(), max_px: int = 640,
              title: str | None = None) -> np.ndarray:
    """The ``plane`` slice ("axial", "coronal", "sagittal") of ``volume`` through ``point_lps``
    (radiological display), window (width, level), with ``labels`` filled and outlined (``colours``
    {value: RGB}; values in ``outline_only`` not filled), the contours of ``objects`` whose ``contour``
    is set, ``overlays`` (points, segments) near the slice, orientation letters and a scale bar.
    Square pixels: the longer side is ``max_px``."""
    from surgtwin.render.slices import contour_pixels, extract, plane_mapping, window_to_gray

    m = plane_mapping(volume.affine, volume.shape, plane)
    kji = volume.world_to_index(np.asarray(point_lps, float).reshape(1, 3))[0]
    k = int(np.clip(round(float(kji[m.slice_axis])), 0, m.n_slices - 1))
    gray = window_to_gray(extract(volume.array, m, k), float(window[0]), float(window[1]))
    h, w, ppm = _out_size(m.n_rows * m.row_spacing_mm, m.n_cols * m.col_spacing_mm, max_px)
    g = _resize(gray, (h, w), nearest=False)
    lab = None
    if labels is not None:
        lab = _resize(extract(labels.array, m, k), (h, w), nearest=True)
        colours = label_colours(labels) if colours is None else colours
    rgb = _compose(g, lab, colours or {}, fill_alpha, set(outline_only))
    sy, sx = h / m.n_rows, w / m.n_cols

    def scale(rc):
        return np.stack([(rc[..., 0] + 0.5) * sy - 0.5, (rc[..., 1] + 0.5) * sx - 0.5], axis=-1)

    for o in objects:
        if o.visible and o.contour and len(o.faces):
            segs = contour_pixels(o.world_vertices(), o.faces, volume.affine, m, k)
            if len(segs):
                rgb = _draw_segments(rgb, scale(segs), o.color)

    def to_px(pts):
        idx = volume.world_to_index(pts)
        return scale(np.array([m.pixel_from_index(p) for p in idx]))

    near = [ov for ov in overlays if len(ov.points) > 1 or abs(
        float(volume.world_to_index(np.asarray(ov.points, float).reshape(1, 3))[0][m.slice_axis]) - k) <= 1.5]
    rgb = _draw_overlays(rgb, near, to_px)
    pos = volume.index_to_world(m.index_from_pixel(k, 0, 0))
    text = title if title is not None else f"{plane.capitalize()}  {slice_position_text(plane, pos)}"
    return annotate(rgb, title=text, letters=EDGE_LETTERS[plane], px_per_mm=ppm,
                    footer=f"W {window[0]:g} / L {window[1]:g}")


def oblique_frame(centre_lps, u_lps, v_lps, half_size_mm: float, spacing_mm: float, n_px: int):
    """(affine, PlaneMapping) of an ``oblique`` reslice as a one-slice volume grid: index (0, row, col)
    is the reslice's pixel (row, col), so ``contour_pixels`` cuts meshes on the oblique plane too."""
    from surgtwin.render.slices import PlaneMapping

    u, v = np.asarray(u_lps, float), np.asarray(v_lps, float)
    aff = np.eye(4)
    aff[:3, 0] = np.cross(u, v)
    aff[:3, 1] = v * spacing_mm
    aff[:3, 2] = u * spacing_mm
    aff[:3, 3] = np.asarray(centre_lps, float) - half_size_mm * (u + v)
    m = PlaneMapping("oblique", 0, 1, 2, False, False, 1, 1, int(n_px), int(n_px), float(spacing_mm), float(spacing_mm))
    return aff, m


def oblique_image(volume, centre_lps, u_lps, v_lps, *, half_size_mm: float = 40.0, window=(400.0, 40.0),
                  labels=None, colours: dict | None = None, objects=(), overlays=(), fill_alpha: float = 0.25,
                  outline_only=(), max_px: int = 640, title: str = "") -> np.ndarray:
    """A reslice of ``volume`` on the plane through ``centre_lps`` spanned by the unit vectors ``u_lps``
    (screen right) and ``v_lps`` (screen down), +-``half_size_mm``, with the overlays of ``mpr_image``."""
    from surgtwin.render.slices import contour_pixels, oblique, oblique_pixel

    u, v = np.asarray(u_lps, float), np.asarray(v_lps, float)
    u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
    n_px = int(max_px)
    sp = 2.0 * half_size_mm / (n_px - 1)
    g = oblique(volume.array, volume.affine, centre_lps, u, v, half_size_mm=half_size_mm, spacing_mm=sp,
                cval=float(np.min(volume.array)))
    span = float(window[0]) if float(window[0]) > 0 else 1.0
    gray = (g - (float(window[1]) - span / 2)) * (255.0 / span)
    lab = None
    if labels is not None:
        lab = np.rint(oblique(labels.array, labels.affine, centre_lps, u, v, half_size_mm=half_size_mm, spacing_mm=sp,
                              order=0, cval=0)).astype(np.int64)
        colours = label_colours(labels) if colours is None else colours
    rgb = _compose(gray, lab, colours or {}, fill_alpha, set(outline_only))

    def to_px(pts):
        return oblique_pixel(centre_lps, u, v, pts, half_size_mm=half_size_mm, spacing_mm=sp)

    aff, m = oblique_frame(centre_lps, u, v, half_size_mm, sp, n_px)
    for o in objects:
        if o.visible and o.contour and len(o.faces):
            segs = contour_pixels(o.world_vertices(), o.faces, aff, m, 0)
            if len(segs):
                rgb = _draw_segments(rgb, segs, o.color)
    rgb = _draw_overlays(rgb, list(overlays), to_px)
    letters = (direction_letters(-u), direction_letters(u), direction_letters(-v), direction_letters(v))
    return annotate(rgb, title=title, letters=letters, px_per_mm=1.0 / sp,
                    footer=f"W {window[0]:g} / L {window[1]:g}")
