"""Model inference: model grid, HU window, sliding window with Gaussian blending, post-processing,
and the way back onto the source grid (exactly the input's shape and affine).

Steps (each a function, so tests and the benchmark can call them one by one):

1. ``model_grid``: an axis-aligned grid at the bundle's spacing, oriented as the bundle's ``axcodes``,
   covering the input's extent (any input orientation, oblique included).
2. ``preprocess``: linear resampling of HU onto that grid (air outside), clip to the HU window, scale.
3. ``predict_probabilities``: MONAI ``sliding_window_inference`` (overlap, Gaussian blending, batched
   windows, ``torch.inference_mode``), softmax. Progress and cancel are checked per batch of windows.
4. ``postprocess``: largest connected component for structures anatomy says are one piece, hole filling
   (holes that are background only; a tumour inside the liver stays a tumour).
5. ``to_source``: nearest-neighbour labels onto the source grid, then the voxels near a boundary get
   the argmax of trilinearly interpolated probabilities (smooth, sub-model-voxel boundaries). With a
   ``hu_weight`` (surgtwin bundles), each structure's HU histogram in this very scan (from the voxels
   the network gave it away from boundaries) adds ``hu_weight * log p(HU | structure)`` to the log
   probabilities there: the boundary moves to where the scan's intensities change, below the model's
   3 mm voxel, without a fixed HU rule per organ.
6. ``surgtwin.core.segmentation.vessels.refine_contrast_vessels``: contrast-vessel walls and thin
   vessels at the source resolution.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import CancelToken, ProgressFn, check, report
from surgtwin.core.types import Volume

AIR_HU = -1024.0


def model_grid(volume: Volume, spacing_mm, axcodes: str) -> Volume:
    """An empty (uint8) Volume on the model's grid covering ``volume``'s extent."""
    from surgtwin.core.segmentation.bundle import axcodes_directions

    d = axcodes_directions(axcodes)
    sp = np.asarray(spacing_mm, dtype=np.float64)
    shape = np.asarray(volume.shape)
    corners = np.array([[a, b, c] for a in (0, shape[0] - 1) for b in (0, shape[1] - 1) for c in (0, shape[2] - 1)],
                       dtype=np.float64)
    world = volume.index_to_world(corners)
    proj = world @ d  # coordinates along the model axes (mm)
    lo, hi = proj.min(axis=0), proj.max(axis=0)
    n = np.floor((hi - lo) / sp + 1e-6).astype(int) + 1
    # centre the grid on the input's extent
    lo = lo + ((hi - lo) - (n - 1) * sp) / 2.0
    affine = np.eye(4)
    affine[:3, :3] = d * sp
    affine[:3, 3] = d @ lo
    return Volume(np.zeros(tuple(int(x) for x in n), dtype=np.uint8), affine)


def preprocess(volume: Volume, grid: Volume, hu_window, value_range) -> np.ndarray:
    """HU volume -> float32 network input on ``grid`` (linear interpolation, air outside the scan)."""
    from surgtwin.core.geometry import resample_to

    src = volume
    if not np.issubdtype(volume.array.dtype, np.floating) and volume.array.dtype != np.int16:
        src = volume.with_array(volume.array.astype(np.float32))
    res = resample_to(src, grid, interpolation="linear", default_value=AIR_HU).array
    return normalise(res, hu_window, value_range)


def normalise(hu: np.ndarray, hu_window, value_range) -> np.ndarray:
    a0, a1 = hu_window
    b0, b1 = value_range
    out = np.clip(hu.astype(np.float32, copy=False), a0, a1)
    out -= a0
    out *= (b1 - b0) / (a1 - a0)
    out += b0
    return out


def count_windows(shape, roi, overlap: float) -> int:
    n = 1
    for s, r in zip(shape, roi, strict=True):
        step = max(int(r * (1 - overlap)), 1)
        n *= 1 if s <= r else math.ceil((s - r) / step) + 1
    return n


def predict_probabilities(
    net,
    image: np.ndarray,
    *,
    roi_size,
    pad_value: float,
    overlap: float = 0.25,
    sw_batch_size: int = 4,
    device: str = "cpu",
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
):
    """Softmax probabilities (torch float32 tensor, C x D x H x W) of ``image`` (D x H x W)."""
    import torch
    from monai.inferers import sliding_window_inference

    total = max(1, math.ceil(count_windows(image.shape, roi_size, overlap) / sw_batch_size))
    done = [0]
    # channels-last (NDHWC) lets oneDNN run the 3D (transposed) convolutions: ~3x faster on CPU
    fmt = torch.channels_last_3d if torch.device(device).type == "cpu" else torch.contiguous_format
    net = net.to(memory_format=fmt)

    def predictor(x):
        check(cancel)
        y = net(x.contiguous(memory_format=fmt))
        done[0] += 1
        report(progress, done[0] / total, f"network: window batch {done[0]}/{total}")
        return y

    x = torch.from_numpy(np.ascontiguousarray(image))[None, None].to(device)
    with torch.inference_mode():
        logits = sliding_window_inference(
            x,
            roi_size=tuple(int(r) for r in roi_size),
            sw_batch_size=sw_batch_size,
            predictor=predictor,
            overlap=overlap,
            mode="gaussian",
            padding_mode="constant",
            cval=float(pad_value),
        )
        probs = torch.softmax(logits[0].float(), dim=0).cpu()
    return probs


#: pieces of a tubular "single component" structure at least this fraction of its largest piece are
#: kept: a field of view can cut a vessel in two (a cardiac CT shows the ascending and descending aorta
#: as two pieces), while false-positive islands are small. Compact organs keep their largest piece only.
MAIN_COMPONENT_FRACTION = 0.2


def _main_components(mask: np.ndarray, fraction: float = MAIN_COMPONENT_FRACTION) -> np.ndarray:
    from scipy import ndimage

    lab, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return mask
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    keep = np.zeros(n + 1, bool)
    keep[sizes >= fraction * sizes.max()] = True
    keep[0] = False
    return keep[lab]


#: a structure with fewer model voxels than this in the whole scan is a speck, not a finding (8 voxels
#: at 3 mm = 0.2 ml): it is removed rather than reported as, say, "skull 0.0 ml" in an abdomen
MIN_STRUCTURE_VOXELS = 8


def postprocess(channels: np.ndarray, names, *, single_component=(), fill_holes=(), tubular=(),
                min_voxels: int = MIN_STRUCTURE_VOXELS) -> np.ndarray:
    """Specks removed, main component(s) / hole filling per named structure on a channel-index array.

    ``single_component`` structures keep their largest connected piece; ``tubular`` ones among them also
    keep any other piece at least ``MAIN_COMPONENT_FRACTION`` of its size (a vessel cut in two by the
    field of view stays whole).
    """
    from scipy import ndimage

    out = channels.copy()
    counts = np.bincount(out.ravel(), minlength=len(names))
    for c in np.nonzero((counts > 0) & (counts < min_voxels))[0]:
        if c:
            out[out == c] = 0
    for c, name in enumerate(names):
        if c == 0 or (name not in single_component and name not in fill_holes):
            continue
        mask = out == c
        if not mask.any():
            continue
        idx = np.argwhere(mask)
        lo = np.maximum(idx.min(axis=0) - 1, 0)
        hi = np.minimum(idx.max(axis=0) + 2, out.shape)
        sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        sub = out[sl]
        m = sub == c
        if name in single_component:
            keep = _main_components(m, MAIN_COMPONENT_FRACTION if name in tubular else 1.0)
            sub[m & ~keep] = 0
            m = keep
        if name in fill_holes:
            filled = ndimage.binary_fill_holes(m)
            sub[filled & (sub == 0)] = c
    return out


class AxisMap(NamedTuple):
    """Source axis ``perm[r]`` runs along model axis ``r`` (``inv`` the other way round);
    ``coords[r]``: the model coordinate (fractional index on axis r) of each index of that source axis."""

    perm: np.ndarray
    inv: np.ndarray
    coords: list


def axis_map(grid: Volume, source: Volume) -> AxisMap | None:
    """When every source axis runs along one model axis (the usual case: both grids axis-aligned),
    the per-axis mapping from source to model indices; else None (oblique: resample in 3D)."""
    m = np.linalg.inv(grid.affine) @ source.affine
    a = np.abs(m[:3, :3])
    perm = np.argmax(a, axis=1)
    if sorted(perm.tolist()) != [0, 1, 2]:
        return None
    off_axis = a.copy()
    off_axis[np.arange(3), perm] = 0.0
    if off_axis.max() > 1e-6 * max(1.0, a.max()):
        return None
    coords = [m[r, perm[r]] * np.arange(source.shape[perm[r]]) + m[r, 3] for r in range(3)]
    return AxisMap(perm, np.argsort(perm), coords)


def nearest_index(q: np.ndarray) -> np.ndarray:
    """Continuous indices rounded to the nearest voxel (halves up), as int64."""
    return np.floor(q + 0.5).astype(np.int64)


def _nearest_separable(arr: np.ndarray, amap: AxisMap) -> np.ndarray:
    """``arr`` (model grid) sampled at each source voxel's nearest model voxel, 0 outside; per-axis indices."""
    # the (small) model array with its axes in source order, plus a zero border for "outside"
    padded = np.ascontiguousarray(np.pad(arr, 1).transpose(amap.inv))
    idx = []
    for c in range(3):
        r = amap.inv[c]
        n = nearest_index(amap.coords[r])
        idx.append(np.where((n >= 0) & (n < arr.shape[r]), n + 1, 0))
    return padded[np.ix_(*idx)]


#: HU histogram bins of the per-structure intensity model (8 HU wide, -1024..3072)
HU_BIN_LO, HU_BIN_W, HU_BINS = -1024.0, 8.0, 512
#: density floor per bin: an HU never seen in a structure costs log(1e-5) * weight, not infinity
HU_DENSITY_FLOOR = 1e-5
ABSENT_LOG_DENSITY = -1e4
#: away from the 2x2x2 cells where labels change, a boundary voxel is reconsidered only when its HU's
#: density under its label is below 1/20 of that structure's peak density
ATYPICAL_LOG_RATIO = math.log(20.0)


def _hu_bin(hu: np.ndarray) -> np.ndarray:
    return np.clip(((hu.astype(np.float32) - HU_BIN_LO) / HU_BIN_W).astype(np.int64), 0, HU_BINS - 1)


def label_hu_histogram(labels: np.ndarray, hu: np.ndarray, n: int, *, step: int = 2,
                       where: np.ndarray | None = None) -> np.ndarray:
    """Per label value 0..n-1, the histogram of HU (``HU_BINS`` bins of 8 HU) over every ``step``-th
    voxel along each axis (``where``: only those voxels)."""
    sub = (slice(None, None, step),) * 3
    lab = labels[sub].astype(np.int64).ravel()
    b = _hu_bin(hu[sub]).ravel()
    if where is not None:
        keep = where[sub].astype(bool).ravel()
        lab, b = lab[keep], b[keep]
    return np.bincount(lab * HU_BINS + b, minlength=n * HU_BINS)[:n * HU_BINS].reshape(n, HU_BINS)


def hu_log_likelihood(hu: np.ndarray, labels: np.ndarray, edge: np.ndarray, n_ch: int, *,
                      step: int = 2, min_interior: int = 200) -> np.ndarray:
    """Per structure, the log density of HU in this scan (HU_BINS x n_ch), from the source voxels the
    network labelled with it away from any boundary (all its voxels for a structure too thin to have
    an interior). Histogram, smoothed over +-16 HU, with a floor so that no HU is impossible for a
    structure that is there; one with no voxels at all gets a prohibitive score."""
    from scipy import ndimage

    h_in = label_hu_histogram(labels, hu, n_ch, step=step, where=edge == 0)
    h_all = label_hu_histogram(labels, hu, n_ch, step=step)
    h = np.where((h_in.sum(1) >= min_interior)[:, None], h_in, h_all).astype(np.float64)
    h = ndimage.gaussian_filter1d(h, 2.0, axis=1, mode="constant")
    tot = h.sum(1, keepdims=True)
    logd = np.log(h / np.maximum(tot, 1e-12) + HU_DENSITY_FLOOR)
    logd[tot[:, 0] == 0] = ABSENT_LOG_DENSITY  # a structure the network did not find is never chosen here
    return logd.T.astype(np.float32).copy()


def to_source(
    channels: np.ndarray,
    probs,
    grid: Volume,
    source: Volume,
    *,
    refine: bool = True,
    slab: int = 16,
    hu_weight: float = 0.0,
    keep_lone=(),
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Channel labels on the model grid -> channel labels on exactly ``source``'s grid.

    Every source voxel first takes its nearest model voxel's label. Where the 2x2x2 model cell around
    a source voxel mixes labels, the label is the argmax of the trilinearly interpolated
    probabilities instead (smooth boundaries below the model's voxel size); with ``hu_weight`` > 0 the
    argmax is of ``log p + hu_weight * log p(HU | structure)`` (see ``hu_log_likelihood``), and a voxel
    that this leaves as a one-voxel speck or hole takes its neighbours' label (except the channels in
    ``keep_lone``). Works in slabs of source
    slices so that memory stays bounded on large scans. Axis-aligned grids (the usual case) take a
    separable path (per-axis index arrays); oblique ones go through SimpleITK's resampler.
    """
    from scipy import ndimage

    from surgtwin.core.geometry import resample_to

    lab_dtype = np.uint8 if channels.max() < 256 else np.uint16
    amap = axis_map(grid, source)
    empty = source.with_array(np.zeros(source.shape, np.uint8))

    def nearest_of(arr):
        if amap is not None:
            return _nearest_separable(arr, amap)
        return resample_to(grid.with_array(arr), empty, interpolation="nearest", default_value=0).array

    if not refine or probs is None or min(grid.shape) < 2:
        return nearest_of(channels.astype(lab_dtype))
    import torch

    edge = ndimage.maximum_filter(channels, size=3) != ndimage.minimum_filter(channels, size=3)
    if not edge.any():
        return nearest_of(channels.astype(lab_dtype))
    if lab_dtype == np.uint8 and channels.max() < 128:  # label and edge flag in one pass over the source
        packed = nearest_of(channels.astype(np.uint8) | (edge.astype(np.uint8) << 7))
        edge_src = packed >> 7
        nearest = np.bitwise_and(packed, 0x7F, out=packed)
    else:
        nearest = nearest_of(channels.astype(lab_dtype))
        edge_src = nearest_of(edge.astype(np.uint8))
    # mixed[c] : the 8 corners of model cell c (corner = lowest index) do not all agree
    c = channels
    d, h, w = c.shape
    corners = [c[a:d - 1 + a, b:h - 1 + b, e:w - 1 + e] for a in (0, 1) for b in (0, 1) for e in (0, 1)]
    mixed = np.maximum.reduce(corners) != np.minimum.reduce(corners)
    del corners
    n_ch = probs.shape[0]
    with torch.inference_mode():
        table = probs.permute(1, 2, 3, 0).reshape(-1, n_ch).contiguous()  # channels last: one row per voxel
    loglik = None
    changed = []
    hu_src = source.array  # unsmoothed: smoothing (box 3, Gaussian 0.7 voxel) lowered Dice of nearly all
    if hu_weight > 0 and hu_src.dtype.kind in "if":  # structures on the tuning phantoms
        step = 2 if hu_src.size < 20_000_000 else 3  # >= ~3 M samples either way
        loglik_np = hu_log_likelihood(hu_src, nearest, edge_src, n_ch, step=step)
        atypical = loglik_np.max(axis=0) - ATYPICAL_LOG_RATIO  # 1/20 of the structure's peak density
        loglik = torch.from_numpy(loglik_np * hu_weight)
    m = np.linalg.inv(grid.affine) @ source.affine
    hi = np.asarray(grid.shape) - 2
    strides = np.array([h * w, w, 1], dtype=np.int64)
    offsets = [(a, b, e) for a in (0, 1) for b in (0, 1) for e in (0, 1)]
    if amap is not None:  # per-axis cell corner and fraction, looked up per point
        base1d, frac1d = [], []
        for r in range(3):
            q = amap.coords[r]
            bse = np.clip(np.floor(q).astype(np.int64), 0, hi[r])
            base1d.append(bse)
            frac1d.append(np.clip(q - bse, 0.0, 1.0).astype(np.float32))
    for k0 in range(0, source.shape[0], slab):
        check(cancel)
        pts = np.argwhere(edge_src[k0:k0 + slab])
        if len(pts) == 0:
            continue
        pts[:, 0] += k0
        if amap is not None:
            base = np.stack([base1d[r][pts[:, amap.perm[r]]] for r in range(3)], axis=1)
            frac = np.stack([frac1d[r][pts[:, amap.perm[r]]] for r in range(3)], axis=1)
        else:
            q = pts @ m[:3, :3].T + m[:3, 3]
            base = np.clip(np.floor(q).astype(np.int64), 0, hi)
            frac = np.clip(q - base, 0.0, 1.0).astype(np.float32)
        sel = mixed[base[:, 0], base[:, 1], base[:, 2]]
        bins = None
        if loglik is not None:  # also a voxel next to a boundary whose HU is atypical for its label
            bins = _hu_bin(hu_src[pts[:, 0], pts[:, 1], pts[:, 2]])
            cur = nearest[pts[:, 0], pts[:, 1], pts[:, 2]].astype(np.int64)
            sel |= loglik_np[bins, cur] < atypical[cur]
            bins = bins[sel]
        if not sel.any():
            continue
        pts, base, frac = pts[sel], base[sel], frac[sel]
        flat = base @ strides
        acc = None
        with torch.inference_mode():
            for a, b, e in offsets:
                wgt = (frac[:, 0] if a else 1 - frac[:, 0]) * (frac[:, 1] if b else 1 - frac[:, 1]) * (
                    frac[:, 2] if e else 1 - frac[:, 2])
                rows = table.index_select(0, torch.from_numpy(flat + a * strides[0] + b * strides[1] + e))
                term = rows.mul_(torch.from_numpy(wgt)[:, None])
                acc = term if acc is None else acc.add_(term)
            if loglik is not None:
                acc = acc.clamp_(min=1e-4).log_()
                acc.add_(loglik.index_select(0, torch.from_numpy(bins)))
            lab = acc.argmax(dim=1).numpy().astype(nearest.dtype)
        if loglik is not None:
            moved = nearest[pts[:, 0], pts[:, 1], pts[:, 2]] != lab
            changed.append(pts[moved].astype(np.int32))
        nearest[pts[:, 0], pts[:, 1], pts[:, 2]] = lab
    if changed:
        _fill_isolated(nearest, np.concatenate(changed), keep=keep_lone)
    return nearest


def _fill_isolated(labels: np.ndarray, pts: np.ndarray, keep=()) -> None:
    """A voxel among ``pts`` whose label none of its 6 face neighbours shares (a one-voxel speck or
    hole, as per-voxel HU evidence can leave in noise) takes its neighbours' most common label.
    Labels in ``keep`` (thin vessels, whose lone voxels seed their growth along the lumen) stay."""
    if len(pts) == 0:
        return
    hi = np.asarray(labels.shape) - 1
    neigh = []
    for ax in range(3):
        for step in (-1, 1):
            q = pts.copy()
            q[:, ax] += step
            outside = (q[:, ax] < 0) | (q[:, ax] > hi[ax])
            q[:, ax] = np.clip(q[:, ax], 0, hi[ax])
            neigh.append(np.where(outside, -1, labels[q[:, 0], q[:, 1], q[:, 2]].astype(np.int32)))
    neigh = np.stack(neigh, axis=1)  # N x 6, -1 beyond the volume's edge
    own = labels[pts[:, 0], pts[:, 1], pts[:, 2]].astype(np.int32)
    lone = ~(neigh == own[:, None]).any(axis=1)
    if len(keep):
        lone &= ~np.isin(own, list(keep))
    if not lone.any():
        return
    nb = neigh[lone]
    votes = (nb[:, :, None] == nb[:, None, :]).sum(axis=2) * (nb >= 0)  # each neighbour label's count
    p = pts[lone]
    labels[p[:, 0], p[:, 1], p[:, 2]] = nb[np.arange(len(nb)), votes.argmax(axis=1)]


@dataclass
class ModelOutput:
    channels_source: np.ndarray  # channel index per source voxel
    channels_grid: np.ndarray
    probs_grid: object  # torch tensor C x D x H x W
    grid: Volume
    timings_s: dict


def run_model(
    volume: Volume,
    bundle,
    *,
    net=None,
    device: str | None = None,
    overlap: float = 0.25,
    sw_batch_size: int = 4,
    postprocessing: bool = True,
    refine: bool = True,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> ModelOutput:
    """The whole model path on one volume; returns channel indices on the source grid and more.

    A model-zoo bundle (``bundle.pipeline``) runs its own inference.json pipeline instead
    (``bundle_zoo.run_pipeline``): ``overlap``, ``sw_batch_size``, ``postprocessing`` and ``refine``
    are then the bundle's, not these arguments."""
    import torch

    from surgtwin.core.progress import scaled

    t = {}
    t0 = time.perf_counter()
    bundle.check_input(volume)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    report(progress, 0.0, "loading model")
    if net is None:
        net = bundle.build_network(device)
    check(cancel)
    t["load_model"] = time.perf_counter() - t0
    if getattr(bundle, "pipeline", None) is not None:  # a model-zoo bundle: its own pipeline, exactly
        from surgtwin.core.segmentation.bundle_zoo import run_pipeline

        out = run_pipeline(volume, bundle, net, device=device, progress=progress, cancel=cancel)
        out.timings_s = {"load_model": t["load_model"], **out.timings_s, "total": time.perf_counter() - t0}
        return out
    t1 = time.perf_counter()
    report(progress, 0.03, "resampling to the model grid")
    grid = model_grid(volume, bundle.spacing_mm, bundle.axcodes)
    if np.prod(grid.shape) > 600**3:
        raise SurgtwinError(f"the volume covers {grid.shape} model voxels, far more than a body scan",
                            hint="check the file's voxel spacing")
    image = preprocess(volume, grid, bundle.hu_window, bundle.value_range)
    pad = float(normalise(np.array([AIR_HU]), bundle.hu_window, bundle.value_range)[0])
    t["preprocess"] = time.perf_counter() - t1
    check(cancel)
    t2 = time.perf_counter()
    probs = predict_probabilities(
        net, image, roi_size=bundle.roi_size, pad_value=pad, overlap=overlap, sw_batch_size=sw_batch_size,
        device=device, progress=scaled(progress, 0.05, 0.85), cancel=cancel,
    )
    del image
    t["network"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    report(progress, 0.86, "post-processing")
    raw = probs.argmax(dim=0).numpy().astype(np.uint8 if bundle.out_channels < 256 else np.int16)
    if postprocessing:
        post = postprocess(raw, bundle.channel_names, single_component=bundle.single_component,
                           fill_holes=bundle.fill_holes, tubular=bundle.tubular)
        changed = post != raw
        if changed.any():  # removed islands / filled holes: make the probabilities agree
            idx = np.nonzero(changed)
            onehot = torch.zeros((probs.shape[0], len(idx[0])), dtype=probs.dtype)
            onehot[torch.from_numpy(post[idx].astype(np.int64)), torch.arange(len(idx[0]))] = 1.0
            with torch.inference_mode():
                probs[:, idx[0], idx[1], idx[2]] = onehot
    else:
        post = raw
    t["postprocess"] = time.perf_counter() - t3
    check(cancel)
    t4 = time.perf_counter()
    report(progress, 0.92, "back to the source grid")
    names = bundle.channel_names
    vessels = [names.index(n) for n in bundle.contrast_vessels if n in names]
    src = to_source(post, probs, grid, volume, refine=refine, cancel=cancel,
                    hu_weight=bundle.hu_refine_weight if postprocessing else 0.0, keep_lone=vessels)
    if postprocessing and bundle.contrast_vessels:
        from surgtwin.core.segmentation.vessels import refine_contrast_vessels

        thin = [names.index(n) for n in bundle.thin_vessels if n in names]
        src = refine_contrast_vessels(src, volume, grid, post, vessels, grow_channels=thin,
                                      grow_mm=bundle.thin_vessel_grow_mm)
    t["to_source"] = time.perf_counter() - t4
    t["total"] = time.perf_counter() - t0
    return ModelOutput(src, post, probs, grid, t)
