"""Pixel loading of a ``SeriesCandidate`` into a ``Volume`` (HU for CT).

Uncompressed single-frame files are read straight from their pixel-data offset into the
pre-allocated output (one slice-sized scratch buffer per thread, so peak memory stays close to the
volume's size); everything else is decoded through ``pixels.decode_file`` (pydicom's pixel-data
plugins; RLE assembled from pylibjpeg-rle's segment decoder), the boundary that turns any decoder
failure into a ``SurgtwinError``. The pixel module and the voxel limit are checked again before the
output is allocated. Decoding runs on a thread pool: file reads and the C decoders release the GIL.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from surgtwin.core.dicom.guard import MAX_VOXELS, describe_failure, is_control
from surgtwin.core.dicom.header import UNCOMPRESSED_SYNTAXES, SliceHeader
from surgtwin.core.dicom.pixels import RLE_LOSSLESS, decode_file, pixel_module_problem
from surgtwin.core.dicom.series import SeriesCandidate
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import CancelToken, ProgressFn, check, report


def _stored_dtype(h: SliceHeader, endian: str = "<") -> np.dtype:
    bits = h.bits_allocated or 16
    kind = "i" if h.pixel_representation == 1 else "u"
    return np.dtype(f"{endian}{kind}{bits // 8}")


def _stored_range(h: SliceHeader) -> tuple[int, int]:
    bits = h.bits_stored or h.bits_allocated or 16
    if h.pixel_representation == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def output_dtype(headers: list[SliceHeader]) -> np.dtype:
    """int16/int32 when every slope is 1 and every intercept an integer and the range fits; else float32."""
    integral = all(h.rescale_slope == 1.0 and float(h.rescale_intercept).is_integer() for h in headers)
    if not integral:
        return np.dtype(np.float32)
    lo = min(_stored_range(h)[0] + h.rescale_intercept for h in headers)
    hi = max(_stored_range(h)[1] + h.rescale_intercept for h in headers)
    for dt in (np.int16, np.int32):
        info = np.iinfo(dt)
        if lo >= info.min and hi <= info.max:
            return np.dtype(dt)
    return np.dtype(np.float32)


def _mask_bits(raw: np.ndarray, h: SliceHeader) -> np.ndarray:
    """Honour BitsStored < BitsAllocated (high bits may hold overlays or garbage)."""
    bits = h.bits_stored or h.bits_allocated
    alloc = h.bits_allocated or 16
    if bits is None or bits >= alloc:
        return raw
    mask = (1 << bits) - 1
    u = raw.view(np.dtype(f"u{alloc // 8}")) & mask
    if h.pixel_representation == 1:  # sign-extend
        sign = 1 << (bits - 1)
        return (u.astype(np.int64) ^ sign) - sign
    return u


def _read_native(h: SliceHeader, rows: int, cols: int) -> np.ndarray:
    endian = UNCOMPRESSED_SYNTAXES[h.transfer_syntax][0]
    dt = _stored_dtype(h, endian)
    nbytes = rows * cols * dt.itemsize
    try:
        with open(h.path, "rb", buffering=0) as fh:
            fh.seek(h.pixel_offset)
            buf = bytearray(nbytes)
            got = fh.readinto(buf)
    except OSError as exc:
        raise SurgtwinError(f"cannot read pixel data ({exc.strerror})", path=h.path) from None
    if got != nbytes:
        raise SurgtwinError(f"pixel data truncated: read {got} of {nbytes} bytes", path=h.path)
    return np.frombuffer(buf, dtype=dt).reshape(rows, cols)


def _read_decoded(h: SliceHeader, rows: int, cols: int, cache: dict) -> np.ndarray:
    arr = cache.get(h.path)
    if arr is None:
        arr = decode_file(h)
        if h.frame_index is not None:
            cache.clear()
            cache[h.path] = arr
    if h.frame_index is not None:
        if arr.ndim < 3 or h.frame_index >= arr.shape[0]:
            raise SurgtwinError(f"frame {h.frame_index} missing from multi-frame pixel data", path=h.path)
        arr = arr[h.frame_index]
    if arr.shape != (rows, cols):
        raise SurgtwinError(f"pixel array has shape {arr.shape}, header says {rows}x{cols}", path=h.path)
    return arr


def _rescale_into(out_slice: np.ndarray, raw: np.ndarray, h: SliceHeader) -> None:
    if h.pixel_offset is not None or h.transfer_syntax == RLE_LOSSLESS:  # raw stored values: honour BitsStored
        raw = _mask_bits(raw, h)
    if np.issubdtype(out_slice.dtype, np.integer):
        np.add(raw, np.int32(h.rescale_intercept), out=out_slice, casting="unsafe")
    else:
        np.multiply(raw, h.rescale_slope, out=out_slice, casting="unsafe")
        out_slice += h.rescale_intercept


def read_pixels(
    c: SeriesCandidate,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Stack the candidate's slices (sorted) into a (slice, row, column) array of rescaled values."""
    hs = c.headers
    rows, cols = c.rows, c.columns
    dtype = output_dtype(hs)
    out = np.empty((len(hs), rows, cols), dtype=dtype)
    threads = threads or min(8, (os.cpu_count() or 2) * 2)
    done = [0]
    by_file: dict[str, list[int]] = {}
    for k, h in enumerate(hs):
        by_file.setdefault(h.path, []).append(k)

    def work(path: str) -> None:
        check(cancel)
        cache: dict = {}
        for k in by_file[path]:
            h = hs[k]
            if h.pixel_offset is not None and h.frame_index is None and h.transfer_syntax in UNCOMPRESSED_SYNTAXES:
                raw = _read_native(h, rows, cols)
            else:
                raw = _read_decoded(h, rows, cols, cache)
            _rescale_into(out[k], raw, h)
            done[0] += 1
        if len(hs) > 16 and done[0] % 16 == 0:
            report(progress, done[0] / len(hs), f"reading slices {done[0]}/{len(hs)}")

    paths = list(by_file)
    if len(paths) == 1 or threads == 1:
        for p in paths:
            work(p)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for f in [pool.submit(work, p) for p in paths]:
                f.result()
    report(progress, 1.0, "slices read")
    return out


def _fill_value(c: SeriesCandidate, arr: np.ndarray) -> float:
    return -1024.0 if c.modality == "CT" else float(arr.min()) if arr.size else 0.0


def regularise(c: SeriesCandidate, arr: np.ndarray) -> np.ndarray:
    """Undo gantry tilt (in-plane shear) and resample irregular/gapped slice positions to the target grid."""
    from scipy import ndimage

    hs = c.headers
    s = c.slice_positions_mm
    if c.tilt_deg > 0:
        o = np.asarray(hs[0].orientation, dtype=np.float64)
        row_cos, col_cos = o[:3], o[3:]
        n = np.cross(row_cos, col_cos)
        ps = np.asarray(hs[0].pixel_spacing, dtype=np.float64)  # (row spacing, column spacing)
        p0 = np.asarray(hs[0].position, dtype=np.float64)
        fill = _fill_value(c, arr)
        work = arr.astype(np.float32, copy=False)
        result = np.empty_like(work)
        for k, h in enumerate(hs):
            # in-plane offset of this slice's origin from the orthogonal grid's origin for slice k
            off = np.asarray(h.position) - (p0 + n * (s[k] - s[0]))
            # rounded to 1e-4 pixel: header precision, and keeps exact-pixel shifts from losing an edge row
            shift_rc = np.round(np.array([off @ col_cos / ps[0], off @ row_cos / ps[1]]), 4)
            # target voxel (j, i) shows source pixel (j, i) - shift; ndimage.shift does out[x] = in[x - shift]
            ndimage.shift(work[k], shift_rc, output=result[k], order=1, mode="constant", cval=fill)
        arr = result
    t = c.target_positions_mm
    if len(t) != len(s) or not np.allclose(t, s, atol=1e-3):
        idx = np.interp(t, s, np.arange(len(s)))
        lo = np.clip(np.floor(idx).astype(int), 0, len(s) - 1)
        hi = np.clip(lo + 1, 0, len(s) - 1)
        w = (idx - lo).astype(np.float32)[:, None, None]
        arr = arr[lo] * (1 - w) + arr[hi] * w
    return arr


def check_before_reading(c: SeriesCandidate) -> None:
    """The limits and the pixel module, checked again right before anything is allocated or decoded
    (a candidate may have been built or edited outside ``group_series``)."""
    for h in c.headers:
        problem = pixel_module_problem(h)
        if problem is not None:
            raise SurgtwinError(problem, path=h.path)
    n = len(c.target_positions_mm) if c.target_positions_mm is not None else len(c.headers)
    if n * c.rows * c.columns > MAX_VOXELS or not c.rows or not c.columns:
        raise SurgtwinError(f"series {c.series_uid or '(no UID)'}: {n}x{c.rows}x{c.columns} voxels is outside "
                            f"1..{MAX_VOXELS}; file headers are probably corrupt")


def load_candidate(
    c: SeriesCandidate,
    *,
    allow_resample: bool = True,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
):
    """Read a candidate into a ``Volume`` (LPS affine, HU for CT). Refused candidates raise."""
    from surgtwin.core.types import Volume

    if not c.loadable:
        raise SurgtwinError(f"series {c.series_uid or '(no UID)'} cannot be loaded: {c.refusal}")
    if c.needs_resample and not allow_resample:
        raise SurgtwinError(
            f"series {c.series_uid or '(no UID)'} needs resampling ({'; '.join(c.warnings)})",
            hint="pass allow_resample=True to load it onto a regular grid",
        )
    check_before_reading(c)
    try:
        arr = read_pixels(c, progress=progress, cancel=cancel)
        if c.needs_resample:
            dtype = arr.dtype
            arr = regularise(c, arr)
            if np.issubdtype(dtype, np.integer):
                arr = np.rint(arr).astype(dtype)
    except SurgtwinError:
        raise
    except BaseException as exc:  # noqa: BLE001 - the boundary: a bad file never ends in a traceback
        if is_control(exc):
            raise
        raise SurgtwinError(f"series {c.series_uid or '(no UID)'} could not be loaded ({describe_failure(exc)})") from None
    meta = {
        "warnings": list(c.warnings),
        "series_uid": c.series_uid,
        "study_uid": c.study_uid,
        "series_description": c.description,
        "source": "dicom",
        "n_files": c.n_files,
    }
    return Volume(arr, c.affine, frame_of_reference_uid=c.frame_of_reference_uid or None, modality=c.modality or None, metadata=meta)
