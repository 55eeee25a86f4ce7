"""Clearance maps: per structure a signed distance map in mm, sampled at any LPS point.

One ``ClearanceMap`` per structure: a Euclidean distance transform of the label map with the real,
anisotropic voxel spacing (``scipy.ndimage.distance_transform_edt(sampling=spacing)``), float32,
on the structure's bounding box plus ``pad_mm`` (a crop: small structures cost little memory).

Sign and surface (the same convention as ``surgtwin.core.plan.checks``): the structure's surface
lies half a voxel (half the mean voxel size, ``h``) beyond its outermost voxel centres, so

* outside the structure: ``d = max(EDT to the nearest structure voxel centre - h, 0)`` (mm, >= 0);
* inside it: ``d = -max(EDT to the nearest non-structure voxel centre - h, 0)`` (mm, <= 0: the
  depth below the surface).

Accurate to about half a voxel. Sampling (``distance(points)``) is trilinear between voxel centres,
vectorised over any ``(..., 3)`` array of LPS points. Beyond the crop (farther than ``pad_mm`` from
the structure's box) the value is the map's value at the nearest crop point plus the distance to
it: an estimate that is at least ``pad_mm``, so a verdict against a margin smaller than ``pad_mm``
is exact there.

``ClearanceMaps`` is the set of one label map: maps are made on first use and kept (thread-safe),
plus the "solid" maps of surfaces (the body's outer surface, or a structure filled) whose gradient
gives the outward surface normal (``normal(surface, points)``), and a nearest-voxel label lookup
(``label_at``). ``ClearanceMaps.for_labels(labels, labels_hash=...)`` reuses the maps of the same
label content (a small cache keyed by the label map's content hash): a case computes them once.

Public API: ``ClearanceMap``, ``ClearanceMaps`` (``for_labels``, ``map``, ``distance``,
``distances``, ``normal``, ``label_at``, ``structure_names``, ``centroid``, ``deepest_point``),
``BODY`` (the name of the body's outer surface), ``clear_cache()``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from surgtwin.core.errors import SurgtwinError

#: the name of the body's outer surface (all labelled voxels, holes filled) among the surfaces
BODY = "body"
#: default crop pad around a structure's box (mm): distances up to this are exact
DEFAULT_PAD_MM = 30.0
#: label contents whose maps are kept (content hashes)
CACHE_SIZE = 2


@dataclass(frozen=True, eq=False)
class ClearanceMap:
    """The signed distance (mm) to one structure's surface on a crop of the label grid.

    ``values``: float32 (crop shape), ``lo``: the crop's first voxel index in the full grid,
    ``inv_linear``/``inv_offset``: LPS -> full-grid index (k, j, i), ``spacing_mm``: per axis."""

    name: str
    values: np.ndarray
    lo: np.ndarray
    inv_linear: np.ndarray
    inv_offset: np.ndarray
    spacing_mm: np.ndarray
    build_s: float = 0.0

    def index_of(self, points_lps) -> np.ndarray:
        """Continuous crop indices (..., 3) of LPS points (float32)."""
        p = np.asarray(points_lps, dtype=np.float32)
        m = self.inv_linear.astype(np.float32)
        b = (self.inv_offset - self.lo).astype(np.float32)
        return p @ m.T + b

    def distance(self, points_lps) -> np.ndarray:
        """Signed distance (mm) at LPS points ``(..., 3)``, trilinear; shape ``(...)``."""
        return self.sample_index(self.index_of(points_lps))

    def sample_index(self, idx: np.ndarray) -> np.ndarray:
        """Signed distance (mm) at continuous crop indices ``idx (..., 3)`` (see ``index_of``)."""
        return trilinear(self.values, idx, self.spacing_mm)

    def nbytes(self) -> int:
        return int(self.values.nbytes)


def trilinear(values: np.ndarray, idx: np.ndarray, spacing_mm=None) -> np.ndarray:
    """Trilinear interpolation of ``values`` (3D) at continuous indices ``idx (..., 3)``. Points
    beyond the grid take the value at the nearest grid point plus their distance to it (mm, with
    ``spacing_mm``; plain index units without)."""
    shape = idx.shape[:-1]
    q = np.asarray(idx, np.float32).reshape(-1, 3)
    n = np.array(values.shape)
    c = np.clip(q, 0.0, (n - 1).astype(np.float32))
    beyond = None
    e = q - c
    if e.any():
        if spacing_mm is not None:
            e *= np.asarray(spacing_mm, np.float32)
        beyond = np.sqrt(np.einsum("ij,ij->i", e, e))
    itype = np.int32 if values.size < 2**31 - 1 else np.int64
    i0 = np.minimum(c.astype(itype), np.maximum(n - 2, 0).astype(itype))  # c >= 0: truncation is floor
    c -= i0
    s1, s2 = values.shape[1] * values.shape[2], values.shape[2]
    base = i0[:, 0] * itype(s1)
    base += i0[:, 1] * itype(s2)
    base += i0[:, 2]
    flat = values.reshape(-1)
    d0 = s1 if n[0] > 1 else 0
    d1 = s2 if n[1] > 1 else 0
    d2 = 1 if n[2] > 1 else 0
    fx, fy, fz = c[:, 0], c[:, 1], c[:, 2]

    def lerp_z(off):
        a = flat[base + off]
        return a + (flat[base + (off + d2)] - a) * fz

    c00, c01 = lerp_z(0), lerp_z(d1)
    c0 = c00 + (c01 - c00) * fy
    c10, c11 = lerp_z(d0), lerp_z(d0 + d1)
    c1 = c10 + (c11 - c10) * fy
    out = c0 + (c1 - c0) * fx
    if beyond is not None:
        out += beyond
    return out.reshape(shape)


def signed_distance(mask: np.ndarray, spacing_mm) -> np.ndarray:
    """The signed distance (mm, float32) to the surface of ``mask`` (see the module text)."""
    from scipy import ndimage as ndi

    sp = np.asarray(spacing_mm, float)
    h = 0.5 * float(np.mean(sp))
    out = np.zeros(mask.shape, np.float32)
    if mask.all():
        out[...] = -ndi.distance_transform_edt(np.pad(mask, 1, constant_values=False), sampling=sp)[1:-1, 1:-1, 1:-1]
        return out
    d_out = ndi.distance_transform_edt(~mask, sampling=sp)
    np.maximum(d_out - h, 0.0, out=d_out)
    out[~mask] = d_out[~mask]
    del d_out
    d_in = ndi.distance_transform_edt(mask, sampling=sp)
    out[mask] = -np.maximum(d_in[mask] - h, 0.0)
    return out


class ClearanceMaps:
    """The clearance maps of one label map (see the module text). Maps are made on first use."""

    _cache: dict = {}
    _cache_lock = threading.Lock()

    def __init__(self, labels, *, pad_mm: float = DEFAULT_PAD_MM, labels_hash: str | None = None):
        self.labels = labels
        self.pad_mm = float(pad_mm)
        self.labels_hash = labels_hash
        self.affine = np.asarray(labels.affine, float)
        inv = np.linalg.inv(self.affine)
        self.inv_linear = inv[:3, :3]
        self.inv_offset = inv[:3, 3]
        self.spacing_mm = np.asarray(labels.spacing_mm, float)
        self.shape = tuple(labels.shape)
        self._maps: dict[str, ClearanceMap] = {}
        self._lock = threading.Lock()
        self._values = {lab.name: lab.value for lab in labels.labels}

    # -- construction and cache ------------------------------------------------------------------
    @classmethod
    def for_labels(cls, labels, *, labels_hash: str | None = None, pad_mm: float = DEFAULT_PAD_MM) -> ClearanceMaps:
        """The maps of ``labels``, shared with earlier calls for the same content (``labels_hash``,
        computed when not given) and pad."""
        if labels_hash is None:
            from surgtwin.core.case.model import labels_content_hash

            labels_hash = labels_content_hash(labels)
        key = (labels_hash, float(pad_mm))
        with cls._cache_lock:
            maps = cls._cache.get(key)
            if maps is None:
                maps = cls(labels, pad_mm=pad_mm, labels_hash=labels_hash)
                cls._cache[key] = maps
                while len(cls._cache) > CACHE_SIZE:
                    cls._cache.pop(next(iter(cls._cache)))
            return maps

    def structure_names(self) -> list[str]:
        return list(self._values)

    def has(self, name: str) -> bool:
        return name == BODY or name in self._values

    def value_of(self, name: str) -> int:
        if name not in self._values:
            raise SurgtwinError(f"the label map has no structure {name!r}",
                                hint="known: " + ", ".join(self._values))
        return self._values[name]

    def _mask(self, name: str) -> np.ndarray:
        return self.labels.array == self.value_of(name)

    def _crop(self, mask: np.ndarray, pad_mm: float | None):
        idx = np.argwhere(mask) if mask.any() else None
        if idx is None:
            return None
        if pad_mm is None:
            return tuple(slice(0, s) for s in self.shape)
        pad = np.ceil(pad_mm / self.spacing_mm).astype(int) + 1
        lo = np.maximum(idx.min(axis=0) - pad, 0)
        hi = np.minimum(idx.max(axis=0) + pad + 1, np.array(self.shape))
        return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))

    def _build(self, key: str, mask: np.ndarray, pad_mm: float | None) -> ClearanceMap:
        t0 = time.perf_counter()
        region = self._crop(mask, pad_mm)
        if region is None:
            raise SurgtwinError(f"structure {key!r} has no voxels", hint="check the segmentation")
        values = signed_distance(mask[region], self.spacing_mm)
        lo = np.array([s.start for s in region], float)
        return ClearanceMap(key, values, lo, self.inv_linear, self.inv_offset, self.spacing_mm,
                            time.perf_counter() - t0)

    def map(self, name: str) -> ClearanceMap:
        """The clearance map of structure ``name`` (made now if new)."""
        m = self._maps.get(name)
        if m is not None:
            return m
        with self._lock:
            if name not in self._maps:
                self._maps[name] = self._build(name, self._mask(name), self.pad_mm)
            return self._maps[name]

    def solid_map(self, surface: str) -> ClearanceMap:
        """The signed distance to a surface's *solid*: ``BODY`` (every labelled voxel, holes filled)
        or a structure with its enclosed holes filled (a skull shell -> the skull and all inside it;
        a shell open at the image border is filled slice by slice; a structure that is no shell is
        its own solid)."""
        key = f"solid:{surface}"
        m = self._maps.get(key)
        if m is not None:
            return m
        from scipy import ndimage as ndi

        with self._lock:
            if key not in self._maps:
                if surface == BODY:
                    solid = ndi.binary_fill_holes(self.labels.array != 0)
                else:
                    mask = self._mask(surface)
                    solid = ndi.binary_fill_holes(mask)
                    if solid.sum() < 1.5 * mask.sum():  # an open shell (a skull's foramina): slice by slice
                        in_plane = np.zeros((3, 3, 3), bool)
                        in_plane[1] = ndi.generate_binary_structure(2, 1)
                        solid = ndi.binary_fill_holes(mask, structure=in_plane)
                    if solid.sum() < 1.5 * mask.sum():  # not a shell: its own outer surface
                        solid = mask
                self._maps[key] = self._build(key, solid, None if surface == BODY else self.pad_mm)
            return self._maps[key]

    def built(self) -> dict[str, float]:
        """The maps made so far and their build times (s)."""
        return {k: m.build_s for k, m in self._maps.items()}

    def nbytes(self) -> int:
        return sum(m.nbytes() for m in self._maps.values())

    # -- look-ups --------------------------------------------------------------------------------
    def distance(self, name: str, points_lps) -> np.ndarray:
        """Signed distance (mm) from LPS points ``(..., 3)`` to structure ``name``'s surface."""
        return self.map(name).distance(points_lps)

    def distances(self, names, points_lps) -> np.ndarray:
        """Signed distances ``(..., len(names))`` of LPS points to several structures."""
        p = np.asarray(points_lps, np.float32)
        return np.stack([self.map(n).distance(p) for n in names], axis=-1)

    def normal(self, surface: str, points_lps, *, step_mm: float = 0.5) -> np.ndarray:
        """Outward unit normals ``(..., 3)`` (LPS) of ``surface``'s solid (``BODY`` or a structure)
        at LPS points: the normalised gradient of its signed distance (central differences)."""
        m = self.solid_map(surface)
        p = np.asarray(points_lps, np.float32)
        g = np.empty(p.shape, np.float32)
        for a in range(3):
            e = np.zeros(3, np.float32)
            e[a] = step_mm
            g[..., a] = (m.distance(p + e) - m.distance(p - e)) / (2 * step_mm)
        n = np.linalg.norm(g, axis=-1, keepdims=True)
        return g / np.maximum(n, 1e-9)

    def index_of(self, points_lps) -> np.ndarray:
        """Continuous full-grid indices (k, j, i) of LPS points."""
        return np.asarray(points_lps, float) @ self.inv_linear.T + self.inv_offset

    def label_at(self, points_lps) -> np.ndarray:
        """The label value at the nearest voxel of each LPS point (0 outside the image)."""
        ijk = np.rint(self.index_of(points_lps)).astype(np.int64)
        ok = np.all((ijk >= 0) & (ijk < np.array(self.shape)), axis=-1)
        out = np.zeros(ijk.shape[:-1], self.labels.array.dtype)
        out[ok] = self.labels.array[tuple(ijk[ok].T)]
        return out

    def name_of(self, value: int) -> str:
        for n, v in self._values.items():
            if v == value:
                return n
        return str(value)

    def world(self, index_kji) -> np.ndarray:
        return np.asarray(index_kji, float) @ self.affine[:3, :3].T + self.affine[:3, 3]

    def centroid(self, name: str) -> np.ndarray:
        """The LPS centroid (mm) of a structure's voxels."""
        idx = np.argwhere(self._mask(name))
        if len(idx) == 0:
            raise SurgtwinError(f"structure {name!r} has no voxels")
        return self.world(idx.mean(axis=0))

    def deepest_point(self, name: str) -> np.ndarray:
        """The LPS point of a structure farthest below its surface (its most interior voxel)."""
        m = self.map(name)
        k = np.unravel_index(int(np.argmin(m.values)), m.values.shape)
        return self.world(np.array(k, float) + m.lo)


def clear_cache() -> None:
    """Forget the shared maps (tests; memory)."""
    with ClearanceMaps._cache_lock:
        ClearanceMaps._cache.clear()
