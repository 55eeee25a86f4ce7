"""The pixel module checked before decoding, and the decoding of one file's compressed pixel data.

``pixel_module_problem`` refuses what no decoder or dtype should ever see (BitsAllocated 1 or 12,
BitsStored 65535, a HighBit that shifts the stored bits, colour samples, PixelRepresentation 7, no
rows) with a reason naming the tag.

``decode_file`` is the boundary around the decoders: every failure, including the BaseException
subclasses compiled decoders raise (pyo3's ``PanicException``), becomes a ``SurgtwinError`` naming the
file, with our own wording (decoder messages may quote values); interrupts, exits and ``Cancelled``
pass through. RLE Lossless is assembled here from pylibjpeg-rle's *segment* decoder after checking the
RLE header and each segment's decoded length: its *frame* decoder panics (and dumps a Rust backtrace
on stderr) when corrupt data decodes to more bytes than the frame holds, and no panic is then left to
print. Without pylibjpeg-rle, pydicom's own RLE decoder is used.
"""

from __future__ import annotations

import struct

import numpy as np

from surgtwin.core.dicom.guard import MAX_RESCALED, describe_failure, is_control, tag_label
from surgtwin.core.dicom.header import SliceHeader
from surgtwin.core.errors import SurgtwinError

RLE_LOSSLESS = "1.2.840.10008.1.2.5"
_PLUGIN_HINT = "install the pydicom pixel-data plugins: pylibjpeg, pylibjpeg-openjpeg, pylibjpeg-libjpeg, pylibjpeg-rle"


def pixel_module_problem(h: SliceHeader) -> str | None:
    """Why this image's pixel module cannot be decoded into a CT/MR volume, or None."""
    ba = h.bits_allocated
    if ba is None:
        return f"{tag_label('BitsAllocated')} missing"
    if ba == 1:
        return f"{tag_label('BitsAllocated')} is 1 (a bit-packed image such as a binary mask): not a CT/MR volume"
    if ba not in (8, 16, 32):
        return f"{tag_label('BitsAllocated')} is {ba}: only 8, 16 or 32 are supported (unsupported BitsAllocated)"
    bs = ba if h.bits_stored is None else h.bits_stored
    if not 1 <= bs <= ba:
        return f"{tag_label('BitsStored')} is {bs}: it must be between 1 and BitsAllocated ({ba})"
    if h.high_bit is not None and h.high_bit != bs - 1:
        return f"{tag_label('HighBit')} is {h.high_bit}: only BitsStored - 1 ({bs - 1}) is supported"
    if h.samples_per_pixel != 1:
        return (f"{tag_label('SamplesPerPixel')} is {h.samples_per_pixel}: colour images (SamplesPerPixel != 1) "
                "cannot be a CT/MR volume")
    if h.pixel_representation not in (0, 1):
        return f"{tag_label('PixelRepresentation')} is {h.pixel_representation}: must be 0 (unsigned) or 1 (signed)"
    if not h.rows or not h.columns:
        return f"{tag_label('Rows')} / {tag_label('Columns')} missing or zero"
    if abs(h.rescale_slope) * 2.0**bs + abs(h.rescale_intercept) > MAX_RESCALED:
        return (f"{tag_label('RescaleSlope')} / {tag_label('RescaleIntercept')} give values beyond "
                f"{MAX_RESCALED:g}: not image values")
    return None


def decode_file(h: SliceHeader) -> np.ndarray:
    """Stored values of every frame of ``h.path``: (rows, cols), or (frames, rows, cols) for multi-frame."""
    try:
        return _decode(h)
    except SurgtwinError:
        raise
    except BaseException as exc:  # noqa: BLE001 - the boundary: decoders raise anything, even panics
        if is_control(exc):
            raise
        text = str(exc).lower()  # read to choose our wording, never quoted
        if isinstance(exc, NotImplementedError) or ("missing" in text and "dependenc" in text):
            raise SurgtwinError(f"cannot decode pixel data: no decoder installed for transfer syntax "
                                f"{h.transfer_syntax or '(unknown)'}", path=h.path, hint=_PLUGIN_HINT) from None
        raise SurgtwinError(f"cannot decode pixel data: truncated or corrupt compressed data "
                            f"({describe_failure(exc)})", path=h.path) from None


def _decode(h: SliceHeader) -> np.ndarray:
    import warnings

    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(h.path, force=True)
        if h.transfer_syntax == RLE_LOSSLESS and h.samples_per_pixel == 1 and h.bits_allocated in (8, 16, 32):
            decode_segment = _rle_segment_decoder()
            if decode_segment is not None:
                return _decode_rle(h, ds.PixelData, decode_segment)
            from pydicom.pixels import pixel_array

            return pixel_array(ds, decoding_plugin="pydicom")
        return ds.pixel_array


def _rle_segment_decoder():
    try:
        from rle.rle import decode_segment
    except ImportError:
        return None
    return decode_segment


class _CorruptRLE(Exception):
    pass


def _decode_rle(h: SliceHeader, pixel_data: bytes, decode_segment) -> np.ndarray:
    from pydicom.encaps import generate_frames

    n_frames = max(1, h.number_of_frames)
    rows, cols, nbytes = h.rows, h.columns, h.bits_allocated // 8
    out = np.empty((n_frames, rows * cols, nbytes), dtype=np.uint8)
    got = 0
    try:
        for k, frame in enumerate(generate_frames(pixel_data, number_of_frames=n_frames)):
            if k >= n_frames:
                break
            _rle_frame(bytes(frame), out[k], rows * cols, decode_segment)
            got = k + 1
    except _CorruptRLE as exc:
        raise SurgtwinError(f"cannot decode pixel data: corrupt RLE data ({exc})", path=h.path) from None
    if got < n_frames:
        raise SurgtwinError(f"cannot decode pixel data: RLE data holds {got} of {n_frames} frames "
                            "(truncated or corrupt)", path=h.path)
    dtype = np.dtype(f"<{'i' if h.pixel_representation == 1 else 'u'}{nbytes}")
    arr = out.reshape(n_frames, rows * cols * nbytes).view(dtype).reshape(n_frames, rows, cols)
    return arr if h.number_of_frames > 1 else arr[0]


def _rle_frame(frame: bytes, out: np.ndarray, n: int, decode_segment) -> None:
    """Decode one RLE frame (PS3.5 Annex G) into ``out`` (pixels x bytes, little-endian byte order)."""
    nbytes = out.shape[1]
    if len(frame) < 64:
        raise _CorruptRLE("a frame is shorter than the 64-byte RLE header")
    header = struct.unpack_from("<16I", frame, 0)
    if header[0] != nbytes:
        raise _CorruptRLE(f"the RLE header declares {header[0]} segments, the image needs {nbytes}")
    offsets = [*header[1 : 1 + nbytes], len(frame)]
    if offsets[0] != 64 or any(offsets[i + 1] <= offsets[i] for i in range(nbytes)):
        raise _CorruptRLE("RLE segment offsets are not increasing within the frame")
    for i in range(nbytes):
        try:
            data = decode_segment(frame[offsets[i] : offsets[i + 1]])
        except ValueError:
            raise _CorruptRLE(f"RLE segment {i + 1} ends before the image is complete") from None
        if len(data) != n:
            raise _CorruptRLE(f"RLE segment {i + 1} decodes to {len(data)} bytes, the image holds {n}")
        out[:, nbytes - 1 - i] = np.frombuffer(data, dtype=np.uint8)
