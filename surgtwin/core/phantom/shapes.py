"""Smooth implicit shape primitives and the canvas they are painted on.

Shapes are approximate signed distance fields (mm, negative inside) in an *anatomy frame*: patient
LPS millimetres around the body centre, rotated by the patient's slight rotation in the scanner.
A ``Canvas`` owns the voxel grid (array order (slice, row, column), see ``surgtwin.core.types``),
evaluates each shape only inside its bounding box and paints labels in order (later wins).

Primitives: ellipsoids, smooth unions/subtractions, tubes swept along Catmull-Rom splines with a
radius profile, and smooth random deformations (sums of a few long-wavelength sine modes).
Everything is computed in float64 so that results do not hinge on the last bit of a float32.
"""

from __future__ import annotations

import itertools

import numpy as np

_FAR = 1.0e3  # "far outside" distance (mm) used where a shape was not evaluated


def rotation(ax_deg: float = 0.0, ay_deg: float = 0.0, az_deg: float = 0.0) -> np.ndarray:
    """Rotation matrix R = Rz @ Ry @ Rx (angles in degrees about the L, P, S axes)."""
    ax, ay, az = np.radians([ax_deg, ay_deg, az_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def frame_from_axis(axis, hint=(1.0, 0.0, 0.0)) -> np.ndarray:
    """Orthonormal 3x3 matrix whose third column is ``axis`` (first column close to ``hint``)."""
    w = np.asarray(axis, float)
    w = w / np.linalg.norm(w)
    u = np.asarray(hint, float) - np.dot(hint, w) * w
    if np.linalg.norm(u) < 1e-6:
        u = np.cross(w, [0.0, 1.0, 0.0])
    u = u / np.linalg.norm(u)
    v = np.cross(w, u)
    return np.stack([u, v, w], axis=1)


def smin(a, b, k: float):
    """Polynomial smooth minimum (smooth union of two distance fields), blend width ``k`` mm."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - h * h * k * 0.25


def smax(a, b, k: float):
    return -smin(-a, -b, k)


def _lerp_axis(a, c, m, ax):
    c = np.asarray(c)
    if len(c) == 1:
        return a.take(np.zeros(m, int), axis=ax)
    full = np.arange(m)
    hi = np.clip(np.searchsorted(c, full), 1, len(c) - 1)
    lo = hi - 1
    w = ((full - c[lo]) / (c[hi] - c[lo])).astype(np.float32)
    shp = [1, 1, 1]
    shp[ax] = m
    return a.take(lo, axis=ax) * (1 - w).reshape(shp) + a.take(hi, axis=ax) * w.reshape(shp)


def upsample_linear(a, idx, n):
    """Separable linear interpolation of ``a`` sampled at index lists ``idx`` onto ``range(n)``.

    The first axis is done on the whole (small) array, the other two slab by slab (the same
    element-wise arithmetic, in cache-sized blocks)."""
    a = _lerp_axis(a, idx[0], n[0], 0)
    step = max(1, (1 << 18) // max(1, int(n[1]) * int(n[2])))
    out = None
    for k in range(0, a.shape[0], step):
        b = a[k : k + step]
        for ax in (1, 2):
            b = _lerp_axis(b, idx[ax], n[ax], ax)
        if out is None:
            out = np.empty((a.shape[0], *b.shape[1:]), b.dtype)
        out[k : k + step] = b
    return out


class Canvas:
    """The voxel grid, the anatomy frame and the label/zone arrays being painted."""

    def __init__(self, shape, affine, *, centre_lps, rotation_matrix):
        self.shape = tuple(int(s) for s in shape)
        self.affine = np.asarray(affine, float)
        self.centre = np.asarray(centre_lps, float)
        self.rot = np.asarray(rotation_matrix, float)
        # anatomy coords q = R^T (p - c), p = A3 @ idx + At  =>  q = M @ idx + t
        self.M = self.rot.T @ self.affine[:3, :3]
        self.t = self.rot.T @ (self.affine[:3, 3] - self.centre)
        self.Minv = np.linalg.inv(self.M)
        h = float(np.max(np.linalg.norm(self.affine[:3, :3], axis=0)))
        #: safety band (mm) of the coarse-to-fine evaluation, see ``field``: trilinear interpolation
        #: over a cell of side 2h of an L-Lipschitz field errs by at most L * h * sqrt(3); L <= 1.6
        self.band = 1.6 * h * np.sqrt(3.0)
        #: culling pad (mm) for parts of a shape evaluated only near their bounding box (see ``_pad``)
        self.pad = 1.6 * 2.0 * h * np.sqrt(3.0)
        #: margin (mm) around each tube segment's box in native evaluation (outside it: "far")
        self.tube_margin = 2.0
        self.labels = np.zeros(self.shape, np.uint8)
        self.zone = np.zeros(self.shape, np.uint8)

    # -- geometry ---------------------------------------------------------------------------
    def anatomy_to_lps(self, q) -> np.ndarray:
        return np.asarray(q, float) @ self.rot.T + self.centre

    def lps_to_anatomy(self, p) -> np.ndarray:
        return (np.asarray(p, float) - self.centre) @ self.rot

    def slices_for(self, lo, hi, margin_mm: float = 2.0):
        """Index slices covering the anatomy-frame box [lo, hi] (None if outside the grid)."""
        lo = np.asarray(lo, float) - margin_mm
        hi = np.asarray(hi, float) + margin_mm
        corners = np.array(list(itertools.product(*zip(lo, hi, strict=True))))
        idx = (corners - self.t) @ self.Minv.T
        a = np.floor(idx.min(axis=0)).astype(int)
        b = np.ceil(idx.max(axis=0)).astype(int) + 1
        a = np.maximum(a, 0)
        b = np.minimum(b, self.shape)
        if np.any(b <= a):
            return None
        return tuple(slice(int(x), int(y)) for x, y in zip(a, b, strict=True))

    def coords(self, sl):
        return self.coords_idx(*(np.arange(s.start, s.stop, dtype=float) for s in sl))

    def coords_idx(self, k, j, i):
        """Anatomy coordinates of the grid points with index arrays k, j, i (broadcast 3D)."""
        k = np.asarray(k, float)[:, None, None]
        j = np.asarray(j, float)[None, :, None]
        i = np.asarray(i, float)[None, None, :]
        M, t = self.M, self.t
        return tuple(M[r, 0] * k + M[r, 1] * j + M[r, 2] * i + t[r] for r in range(3))

    def coords_at(self, sl, kk, jj, ii):
        """Anatomy coordinates of the voxels (kk, jj, ii) of the block ``sl`` (same arithmetic as
        ``coords``, so the same values)."""
        M, t = self.M, self.t
        k = kk + float(sl[0].start)
        j = jj + float(sl[1].start)
        i = ii + float(sl[2].start)
        return tuple(M[r, 0] * k + M[r, 1] * j + M[r, 2] * i + t[r] for r in range(3))

    def field(self, shape: Shape, *, inner_mm: float = 0.0, levels=None):
        """(slices, distance array) of ``shape`` over its bounding box.

        Large boxes are evaluated coarse-to-fine: on every second voxel (natively, on that regular
        sub-grid, so each part of the shape only touches its own bounding box), interpolated linearly,
        then recomputed exactly wherever the interpolated value lies within a safety band of a level
        the caller thresholds at: the surface (0) and every depth in ``levels`` (or, without
        ``levels``, anything down to the ``inner_mm`` rim). The fields are ~1-Lipschitz, so the band
        bounds the interpolation error and labels are the same as an exact evaluation; values away
        from those levels are only interpolated.
        """
        sl = self.slices_for(shape.lo, shape.hi)
        if sl is None:
            return None, None
        n = [s.stop - s.start for s in sl]
        if np.prod(n) < 120_000 or isinstance(shape, Tube):  # tubes: exact per-segment boxes
            X, Y, Z = np.broadcast_arrays(*self.coords(sl))
            return sl, shape.eval(self, sl, X, Y, Z, True)
        sub = _SubGrid(self, [s.start for s in sl], 2, [m // 2 + 1 for m in n])
        full = tuple(slice(0, m) for m in sub.shape)
        Xc, Yc, Zc = np.broadcast_arrays(*sub.coords(full))
        d = _upsample2(shape.eval(sub, full, Xc, Yc, Zc, True).astype(np.float32), n)
        del Xc, Yc, Zc
        band = np.float32(self.band)
        if levels is None:
            sel = (d < band) & (d > np.float32(-inner_mm) - band)
        else:
            sel = np.abs(d) < band
            for lev in levels:
                if lev != 0:
                    sel |= np.abs(d - np.float32(lev)) < band
        kk, jj, ii = np.nonzero(sel)
        del sel
        if len(kk):
            d[kk, jj, ii] = shape.eval(self, None, *self.coords_at(sl, kk, jj, ii), False)
        return sl, d

    # -- painting ---------------------------------------------------------------------------
    def paint(self, shape: Shape, value: int, *, rim_mm: float = 0.0, only=None, keep=None,
              where=None, zone_value: int = 0) -> None:
        """Label voxels inside ``shape`` with ``value``.

        ``rim_mm``: voxels within that depth of the surface get zone 1 (cortex, wall), deeper ones
        ``zone_value``. ``only``: overwrite only voxels whose current label is in this set; ``keep``:
        never overwrite these labels. ``where``: callable (X, Y, Z) -> bool mask restricting the paint.
        """
        sl, d = self.field(shape, levels=(0.0, -rim_mm) if rim_mm > 0 else (0.0,))
        if sl is not None:
            self.paint_field(sl, d, value, rim_mm=rim_mm, only=only, keep=keep, where=where,
                             zone_value=zone_value)

    def paint_field(self, sl, d, value: int, *, offset_mm: float = 0.0, rim_mm: float = 0.0, only=None,
                    keep=None, where=None, zone_value: int = 0) -> None:
        """Like ``paint`` with a precomputed field ``d`` over ``sl``, shrunk by ``offset_mm``."""
        d = d + offset_mm if offset_mm else d
        m = d < 0
        cur = self.labels[sl]
        if only is not None:
            lut = np.zeros(256, bool)
            lut[list(only)] = True
            m &= lut[cur]
        if keep is not None:
            lut = np.ones(256, bool)
            lut[list(keep)] = False
            m &= lut[cur]
        if where is not None:  # element-wise: evaluated only where the paint would land
            kk, jj, ii = np.nonzero(m)
            if len(kk):
                m[kk, jj, ii] = where(*self.coords_at(sl, kk, jj, ii))
        cur[m] = value
        if rim_mm > 0:
            self.zone[sl][m] = np.where(d[m] > -rim_mm, np.uint8(1), np.uint8(zone_value))
        else:
            self.zone[sl][m] = zone_value

    def mask(self, *values) -> np.ndarray:
        return np.isin(self.labels, values)


class _SubGrid:
    """Every ``step``-th voxel of a canvas from ``origin`` (a regular grid of ``shape``), posing as the
    canvas for native (sub-block) shape evaluation during the coarse pass of ``Canvas.field``."""

    slices_for = Canvas.slices_for
    coords = Canvas.coords
    coords_idx = Canvas.coords_idx

    def __init__(self, canvas: Canvas, origin, step: int, shape):
        self.shape = tuple(int(m) for m in shape)
        self.M = canvas.M * float(step)
        self.t = canvas.t + canvas.M @ np.asarray(origin, float)
        self.Minv = np.linalg.inv(self.M)
        self.band = canvas.band
        self.pad = canvas.pad
        # coarse values only steer the refinement: tube segments must be evaluated out to the
        # culling pad, not just to the 2 mm that decides a label on the fine grid
        self.tube_margin = canvas.pad + 2.0


def _up2_axis(a, m, ax):
    """``a`` sampled on indices 0, 2, 4, ... along ``ax`` -> linear interpolation onto range(m)."""
    a = np.moveaxis(a, ax, 0)
    out = np.empty((m, *a.shape[1:]), a.dtype)
    out[0::2] = a[: (m + 1) // 2]
    no = m // 2
    if no:
        odd = out[1::2]
        np.add(a[:no], a[1 : no + 1], out=odd)
        odd *= a.dtype.type(0.5)
    return np.moveaxis(out, 0, ax)


def _upsample2(a, n):
    """Linear interpolation of ``a`` sampled on every second index onto ``range(n[ax])`` per axis
    (the first axis on the whole array, the other two slab by slab, in cache-sized blocks)."""
    a = _up2_axis(a, n[0], 0)
    out = np.empty(tuple(n), a.dtype)
    step = max(1, (1 << 18) // max(1, int(n[1]) * int(n[2])))
    for k in range(0, n[0], step):
        out[k : k + step] = _up2_axis(_up2_axis(a[k : k + step], n[1], 1), n[2], 2)
    return out


class Shape:
    """An approximate signed distance field with an anatomy-frame bounding box [lo, hi]."""

    lo: np.ndarray
    hi: np.ndarray

    def eval(self, canvas, sl, X, Y, Z, native):  # pragma: no cover - interface
        raise NotImplementedError

    def __or__(self, other):
        return Union([self, other])


class Implicit(Shape):
    def __init__(self, fn, lo, hi):
        self.fn, self.lo, self.hi = fn, np.asarray(lo, float), np.asarray(hi, float)

    def eval(self, canvas, sl, X, Y, Z, native):
        return self.fn(X, Y, Z)


def ellipsoid(centre, radii, rot=None) -> Implicit:
    """Ellipsoid (approximate SDF) with semi-axes ``radii`` along the columns of ``rot``."""
    c = np.asarray(centre, float)
    r = np.asarray(radii, float)
    R = np.eye(3) if rot is None else np.asarray(rot, float)
    ext = np.abs(R) @ r

    def fn(X, Y, Z):
        dx, dy, dz = X - c[0], Y - c[1], Z - c[2]
        u = (R[0, 0] * dx + R[1, 0] * dy + R[2, 0] * dz) / r[0]
        v = (R[0, 1] * dx + R[1, 1] * dy + R[2, 1] * dz) / r[1]
        w = (R[0, 2] * dx + R[1, 2] * dy + R[2, 2] * dz) / r[2]
        k0 = np.sqrt(u * u + v * v + w * w)
        k1 = np.sqrt((u / r[0]) ** 2 + (v / r[1]) ** 2 + (w / r[2]) ** 2)
        return k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)

    return Implicit(fn, c - ext, c + ext)


def slab(point, normal, half_mm: float, lo, hi) -> Implicit:
    """|distance to a plane| - half thickness, limited to the box [lo, hi]."""
    p = np.asarray(point, float)
    n = np.asarray(normal, float) / np.linalg.norm(normal)

    def fn(X, Y, Z):
        return np.abs((X - p[0]) * n[0] + (Y - p[1]) * n[1] + (Z - p[2]) * n[2]) - half_mm

    return Implicit(fn, lo, hi)


def halfspace_mask(point, normal):
    """``where`` callable: True on the side of the plane that ``normal`` points to."""
    p = np.asarray(point, float)
    n = np.asarray(normal, float)
    return lambda X, Y, Z: (X - p[0]) * n[0] + (Y - p[1]) * n[1] + (Z - p[2]) * n[2] > 0


def _eval_culled(shape, canvas, sl, X, Y, Z, native, pad):
    """Evaluate ``shape`` only inside its bounding box (+ ``pad`` mm); ``_FAR`` elsewhere."""
    out = np.full(X.shape, _FAR)
    if native:
        ss = canvas.slices_for(shape.lo, shape.hi, margin_mm=pad)
        if ss is None:
            return out
        rel = []
        for s_outer, s_in in zip(sl, ss, strict=True):
            a0, b0 = max(s_outer.start, s_in.start), min(s_outer.stop, s_in.stop)
            if b0 <= a0:
                return out
            rel.append(slice(a0 - s_outer.start, b0 - s_outer.start))
        rel = tuple(rel)
        sub = tuple(slice(r.start + o.start, r.stop + o.start) for r, o in zip(rel, sl, strict=True))
        out[rel] = shape.eval(canvas, sub, X[rel], Y[rel], Z[rel], True)
        return out
    lo, hi = shape.lo - pad, shape.hi + pad
    sel = ((X > lo[0]) & (X < hi[0]) & (Y > lo[1]) & (Y < hi[1]) & (Z > lo[2]) & (Z < hi[2]))
    if sel.all():
        return shape.eval(canvas, sl, X, Y, Z, False)
    if sel.any():
        out[sel] = shape.eval(canvas, None, X[sel], Y[sel], Z[sel], False)
    return out


def _pad(canvas, k):
    return max(float(k), canvas.pad) + 2.0


class Union(Shape):
    def __init__(self, shapes, k: float = 0.0):
        self.shapes = list(shapes)
        self.k = float(k)
        self.lo = np.min([s.lo for s in self.shapes], axis=0)
        self.hi = np.max([s.hi for s in self.shapes], axis=0)

    def eval(self, canvas, sl, X, Y, Z, native):
        d = None
        pad = _pad(canvas, self.k)
        for s in self.shapes:
            e = _eval_culled(s, canvas, sl, X, Y, Z, native, pad)
            d = e if d is None else smin(d, e, self.k)
        return d


class Subtract(Shape):
    """``a`` minus ``b`` (smooth edge of width ``k``)."""

    def __init__(self, a: Shape, b: Shape, k: float = 0.0):
        self.a, self.b, self.k = a, b, float(k)
        self.lo, self.hi = a.lo, a.hi

    def eval(self, canvas, sl, X, Y, Z, native):
        b = _eval_culled(self.b, canvas, sl, X, Y, Z, native, _pad(canvas, self.k))
        return smax(self.a.eval(canvas, sl, X, Y, Z, native), -b, self.k)


class Intersect(Shape):
    def __init__(self, a: Shape, b: Shape, k: float = 0.0):
        self.a, self.b, self.k = a, b, float(k)
        self.lo, self.hi = np.maximum(a.lo, b.lo), np.minimum(a.hi, b.hi)

    def eval(self, canvas, sl, X, Y, Z, native):
        return smax(self.a.eval(canvas, sl, X, Y, Z, native), self.b.eval(canvas, sl, X, Y, Z, native), self.k)


class Offset(Shape):
    """``shape`` grown by ``mm`` (negative: shrunk)."""

    def __init__(self, shape: Shape, mm: float):
        self.s, self.mm = shape, float(mm)
        self.lo, self.hi = shape.lo - max(mm, 0), shape.hi + max(mm, 0)

    def eval(self, canvas, sl, X, Y, Z, native):
        return self.s.eval(canvas, sl, X, Y, Z, native) - self.mm


class _SineField:
    """A smooth random displacement field: a few long-wavelength sine modes."""

    def __init__(self, rng, amp_mm: float, wavelength_mm: float, n_modes: int = 3):
        dirs = rng.normal(size=(n_modes, 3))
        self.kvec = dirs / np.linalg.norm(dirs, axis=1, keepdims=True) * (2 * np.pi / wavelength_mm)
        disp = rng.normal(size=(n_modes, 3))
        self.disp = disp / np.linalg.norm(disp, axis=1, keepdims=True) * (amp_mm / np.sqrt(n_modes))
        self.phase = rng.uniform(0, 2 * np.pi, n_modes)
        self.amp = amp_mm

    def __call__(self, X, Y, Z):
        out = None  # the first mode's terms start the sums (0 + x == x: same values as from zeros)
        for kv, dv, ph in zip(self.kvec, self.disp, self.phase, strict=True):
            s = np.sin(kv[0] * X + kv[1] * Y + kv[2] * Z + ph)
            if out is None:
                out = [dv[a] * s for a in range(3)]
            else:
                for a in range(3):
                    out[a] += dv[a] * s
        if out is None:
            return [np.zeros_like(X), np.zeros_like(X), np.zeros_like(X)]
        return out


class _CoordWarp(Shape):
    def __init__(self, shape: Shape, fld: _SineField):
        self.s, self.f = shape, fld
        self.lo, self.hi = shape.lo - fld.amp, shape.hi + fld.amp

    def eval(self, canvas, sl, X, Y, Z, native):
        dx, dy, dz = self.f(X, Y, Z)
        return self.s.eval(canvas, sl, X + dx, Y + dy, Z + dz, False)


def _warp(shape: Shape, fld: _SineField) -> Shape:
    if isinstance(shape, Tube):  # move the centre line instead: keeps the cheap per-segment boxes
        d = np.stack(fld(shape.P[:, 0], shape.P[:, 1], shape.P[:, 2]), axis=1)
        return Tube(shape.P - d, shape.r)
    if isinstance(shape, Union):
        return Union([_warp(s, fld) for s in shape.shapes], k=shape.k)
    if isinstance(shape, (Subtract, Intersect)):
        return type(shape)(_warp(shape.a, fld), _warp(shape.b, fld), k=shape.k)
    if isinstance(shape, Offset):
        return Offset(_warp(shape.s, fld), shape.mm)
    return _CoordWarp(shape, fld)


def Warp(shape: Shape, rng, amp_mm: float, wavelength_mm: float, n_modes: int = 3) -> Shape:  # noqa: N802
    """``shape`` deformed by a smooth random displacement field (amplitude ``amp_mm``)."""
    return _warp(shape, _SineField(rng, amp_mm, wavelength_mm, n_modes))


def catmull_rom(points, step_mm: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Dense samples (N, 3) of a centripetal-free (uniform) Catmull-Rom spline through ``points``
    and the fraction t in [0, 1] of the control polygon at each sample."""
    P = np.asarray(points, float)
    if len(P) == 2:
        n = max(2, int(np.ceil(np.linalg.norm(P[1] - P[0]) / step_mm)) + 1)
        s = np.linspace(0, 1, n)
        return P[0] + s[:, None] * (P[1] - P[0]), s
    ext = np.vstack([2 * P[0] - P[1], P, 2 * P[-1] - P[-2]])
    out, frac = [], []
    nseg = len(P) - 1
    for i in range(nseg):
        p0, p1, p2, p3 = ext[i : i + 4]
        n = max(2, int(np.ceil(np.linalg.norm(p2 - p1) / step_mm)))
        s = np.linspace(0, 1, n, endpoint=(i == nseg - 1))[:, None]
        pts = 0.5 * ((2 * p1) + (-p0 + p2) * s + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s**2
                     + (-p0 + 3 * p1 - 3 * p2 + p3) * s**3)
        out.append(pts)
        frac.append((i + s[:, 0]) / nseg)
    return np.vstack(out), np.concatenate(frac)


class Tube(Shape):
    """A tube swept along a polyline of centre points with per-point radii (capsule chain)."""

    def __init__(self, centres, radii):
        self.P = np.asarray(centres, float)
        self.r = np.broadcast_to(np.asarray(radii, float), (len(self.P),)).copy()
        rmax = self.r.max()
        self.lo, self.hi = self.P.min(axis=0) - rmax, self.P.max(axis=0) + rmax

    @classmethod
    def along(cls, control_points, control_radii, step_mm: float | None = None):
        """Tube along a Catmull-Rom spline; radii interpolated between control points.

        ``step_mm`` (default: half the smallest radius, 1-6 mm) is the capsule length."""
        cr = np.broadcast_to(np.asarray(control_radii, float), (len(control_points),))
        if step_mm is None:
            step_mm = float(np.clip(0.5 * cr.min(), 1.0, 6.0))
        pts, frac = catmull_rom(control_points, step_mm)
        r = np.interp(frac, np.linspace(0, 1, len(cr)), cr)
        return cls(pts, r)

    def _segment(self, n, X, Y, Z):
        a, b = self.P[n], self.P[n + 1]
        ra, rb = self.r[n], self.r[n + 1]
        ab = b - a
        L2 = max(float(ab @ ab), 1e-12)
        px, py, pz = X - a[0], Y - a[1], Z - a[2]
        t = np.clip((px * ab[0] + py * ab[1] + pz * ab[2]) / L2, 0.0, 1.0)
        qx, qy, qz = px - t * ab[0], py - t * ab[1], pz - t * ab[2]
        return np.sqrt(qx * qx + qy * qy + qz * qz) - (ra + t * (rb - ra))

    def eval(self, canvas, sl, X, Y, Z, native):
        d = np.full(X.shape, _FAR)
        for n in range(len(self.P) - 1):
            if native:
                r = max(self.r[n], self.r[n + 1])
                lo = np.minimum(self.P[n], self.P[n + 1]) - r
                hi = np.maximum(self.P[n], self.P[n + 1]) + r
                ss = canvas.slices_for(lo, hi, margin_mm=canvas.tube_margin)
                if ss is None:
                    continue
                rel = []
                for s_outer, s_in in zip(sl, ss, strict=True):
                    a0, b0 = max(s_outer.start, s_in.start), min(s_outer.stop, s_in.stop)
                    if b0 <= a0:
                        break
                    rel.append(slice(a0 - s_outer.start, b0 - s_outer.start))
                if len(rel) < 3:
                    continue
                rel = tuple(rel)
                d[rel] = np.minimum(d[rel], self._segment(n, X[rel], Y[rel], Z[rel]))
            elif len(self.P) <= 7:  # few segments: brute force beats a KD-tree
                d = np.minimum(d, self._segment(n, X, Y, Z))
            else:
                return self._eval_points(X, Y, Z)
        return d

    def _eval_points(self, X, Y, Z):
        """Arbitrary points: nearest sample of the centre line resampled every 0.25 mm (KD-tree)."""
        from scipy.spatial import cKDTree

        shape = np.shape(X)
        if not hasattr(self, "_tree"):
            seg = np.linalg.norm(np.diff(self.P, axis=0), axis=1)
            n = np.maximum(1, np.ceil(seg / 0.25).astype(int))
            pts, rad = [], []
            for a in range(len(seg)):
                t = np.arange(n[a])[:, None] / n[a]
                pts.append(self.P[a] + t * (self.P[a + 1] - self.P[a]))
                rad.append(self.r[a] + t[:, 0] * (self.r[a + 1] - self.r[a]))
            pts.append(self.P[-1:])
            rad.append(self.r[-1:])
            self._dense = np.vstack(pts)
            self._rad = np.concatenate(rad)
            self._tree = cKDTree(self._dense)
        X, Y, Z = np.ravel(X), np.ravel(Y), np.ravel(Z)
        pad = 15.0
        sel = np.nonzero((X > self.lo[0] - pad) & (X < self.hi[0] + pad) & (Y > self.lo[1] - pad)
                         & (Y < self.hi[1] + pad) & (Z > self.lo[2] - pad) & (Z < self.hi[2] + pad))[0]
        out = np.full(X.shape, _FAR)
        if len(sel):
            q = np.stack([X[sel], Y[sel], Z[sel]], axis=1)
            dist, ix = self._tree.query(q, distance_upper_bound=float(self._rad.max()) + pad)
            far = ~np.isfinite(dist)
            ix[far] = 0
            v = dist - self._rad[ix]
            v[far] = _FAR
            out[sel] = v
        return out.reshape(shape)


def smooth_noise(shape, sigma_vox, rng, dtype=np.float32) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation.

    Wide kernels are applied on a subsampled grid and interpolated back (same statistics, faster).
    """
    from scipy.ndimage import gaussian_filter

    sig = np.broadcast_to(np.asarray(sigma_vox, float), (3,))
    f = np.maximum(1, np.floor(sig / 1.5)).astype(int)
    small = tuple(int(np.ceil(n / k)) + 1 for n, k in zip(shape, f, strict=True))
    n = rng.standard_normal(small, dtype=np.float32)
    n = gaussian_filter(n, sig / f, mode="wrap", truncate=3.0)
    if np.any(f > 1):
        n = upsample_linear(n, [np.arange(m) * k for m, k in zip(small, f, strict=True)], shape)
    n = np.ascontiguousarray(n[: shape[0], : shape[1], : shape[2]])
    sd = float(n.std())
    return (n / (sd if sd > 0 else 1.0)).astype(dtype, copy=False)
