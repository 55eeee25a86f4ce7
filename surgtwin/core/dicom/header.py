"""Header-only reading of DICOM files into ``SliceHeader`` records.

Two readers with the same output:

* a lean scanner for the common case (Part 10 file, little-endian explicit or implicit VR,
  single-frame image) that walks the element stream with ``struct`` and decodes only the ~30 tags the
  loader needs. It is ~5x faster than a full ``pydicom.dcmread`` and records where the pixel data
  starts, so uncompressed pixels can later be read straight into the output volume.
* ``pydicom`` for everything else (multi-frame/enhanced objects with functional groups, big-endian,
  deflated, files without a preamble). Whatever the lean scanner does not fully understand is handed
  to pydicom; it never guesses.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from surgtwin.core.errors import SurgtwinError

_HEAD_BYTES = 32 * 1024
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXEL_DATA = 0x7FE00010

UNCOMPRESSED_SYNTAXES = {
    "1.2.840.10008.1.2": ("<", True),  # implicit VR little endian
    "1.2.840.10008.1.2.1": ("<", False),  # explicit VR little endian
    "1.2.840.10008.1.2.2": (">", False),  # explicit VR big endian (retired)
}

# tag -> (attribute, kind); kinds: str, strs (backslash list), int (IS/US), float (DS), floats
_WANTED: dict[int, tuple[str, str]] = {
    0x00020010: ("transfer_syntax", "str"),
    0x00080008: ("image_type", "strs"),
    0x00080016: ("sop_class_uid", "str"),
    0x00080018: ("sop_instance_uid", "str"),
    0x00080060: ("modality", "str"),
    0x0008103E: ("series_description", "str"),
    0x00180050: ("slice_thickness", "float"),
    0x00181120: ("gantry_tilt", "float"),
    0x0020000D: ("study_uid", "str"),
    0x0020000E: ("series_uid", "str"),
    0x00200011: ("series_number", "int"),
    0x00200012: ("acquisition_number", "int"),
    0x00200013: ("instance_number", "int"),
    0x00200032: ("position", "floats"),
    0x00200037: ("orientation", "floats"),
    0x00200052: ("frame_of_reference_uid", "str"),
    0x00280002: ("samples_per_pixel", "us"),
    0x00280004: ("photometric", "str"),
    0x00280008: ("number_of_frames", "int"),
    0x00280010: ("rows", "us"),
    0x00280011: ("columns", "us"),
    0x00280030: ("pixel_spacing", "floats"),
    0x00280100: ("bits_allocated", "us"),
    0x00280101: ("bits_stored", "us"),
    0x00280103: ("pixel_representation", "us"),
    0x00281052: ("rescale_intercept", "float"),
    0x00281053: ("rescale_slope", "float"),
    0x00283000: ("modality_lut", "present"),
}


@dataclass(slots=True)
class SliceHeader:
    """What the loader needs of one image (one frame of a multi-frame object)."""

    path: str
    transfer_syntax: str = ""
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    modality: str = ""
    series_description: str = ""
    image_type: tuple = ()
    study_uid: str = ""
    series_uid: str = ""
    series_number: int | None = None
    acquisition_number: int | None = None
    instance_number: int | None = None
    frame_of_reference_uid: str = ""
    position: tuple | None = None
    orientation: tuple | None = None
    pixel_spacing: tuple | None = None
    slice_thickness: float | None = None
    gantry_tilt: float | None = None
    rows: int | None = None
    columns: int | None = None
    samples_per_pixel: int = 1
    photometric: str = ""
    number_of_frames: int = 1
    bits_allocated: int | None = None
    bits_stored: int | None = None
    pixel_representation: int = 0
    rescale_intercept: float = 0.0
    rescale_slope: float = 1.0
    modality_lut: bool = False
    has_pixels: bool = False
    pixel_offset: int | None = None  # byte offset of native pixel data in the file, else None
    pixel_length: int | None = None
    frame_index: int | None = None  # frame of a multi-frame object, else None
    extra: dict = field(default_factory=dict)


def _decode(raw: bytes, kind: str, endian: str = "<"):
    if kind == "us":
        return struct.unpack(endian + "H", raw[:2])[0] if len(raw) >= 2 else None
    if kind == "present":
        return True
    text = raw.decode("latin-1").strip("\x00 ")
    if kind == "str":
        return text
    if kind == "strs":
        return tuple(p.strip() for p in text.split("\\"))
    parts = [p.strip() for p in text.split("\\") if p.strip()]
    if not parts:
        return None
    if kind == "int":
        return int(float(parts[0]))
    if kind == "float":
        return float(parts[0])
    return tuple(float(p) for p in parts)  # floats


class _NeedsFullParser(Exception):
    """The lean scanner met something it leaves to pydicom."""


def _skip_undefined(buf: bytes, pos: int, implicit: bool) -> int:
    """Skip the items of a sequence of undefined length starting at ``pos``; return the end."""
    n = len(buf)
    while True:
        if pos + 8 > n:
            raise _NeedsFullParser("sequence runs past the header buffer")
        tag = (struct.unpack_from("<H", buf, pos)[0] << 16) | struct.unpack_from("<H", buf, pos + 2)[0]
        length = struct.unpack_from("<I", buf, pos + 4)[0]
        pos += 8
        if tag == _SEQ_END:
            return pos
        if tag != _ITEM:
            raise _NeedsFullParser(f"unexpected tag {tag:08X} in a sequence")
        if length == _UNDEFINED:
            pos = _walk(buf, pos, implicit, None, until_item_end=True)
        else:
            pos += length


def _walk(buf: bytes, pos: int, implicit: bool, out: dict | None, until_item_end: bool = False) -> int:
    """Walk elements from ``pos``. Top level: fill ``out`` and stop at pixel data. Returns position."""
    n = len(buf)
    unpack_from = struct.unpack_from
    while pos + 8 <= n:
        g, e = unpack_from("<HH", buf, pos)
        tag = (g << 16) | e
        if tag == _ITEM_END:
            return pos + 8
        if implicit or g == 0xFFFE:
            vr = None
            length = unpack_from("<I", buf, pos + 4)[0]
            hdr = 8
        else:
            vr = buf[pos + 4 : pos + 6]
            if vr in _LONG_VRS:
                length = unpack_from("<I", buf, pos + 8)[0]
                hdr = 12
            else:
                length = unpack_from("<H", buf, pos + 6)[0]
                hdr = 8
        value_at = pos + hdr
        if out is not None and tag == _PIXEL_DATA:
            out["_pixel_at"] = pos
            out["_pixel_value_at"] = value_at
            out["_pixel_length"] = length
            return pos
        if length == _UNDEFINED:
            if vr is None or vr == b"SQ":
                pos = _skip_undefined(buf, value_at, implicit)
            elif vr == b"UN":
                pos = _skip_undefined(buf, value_at, True)
            else:
                raise _NeedsFullParser(f"undefined length for VR {vr!r}")
            continue
        if out is not None and tag in _WANTED:
            if value_at + length > n:
                raise _NeedsFullParser("value runs past the header buffer")
            name, kind = _WANTED[tag]
            out[name] = _decode(buf[value_at : value_at + length], kind)
        pos = value_at + length
    if out is not None and not until_item_end:
        raise _NeedsFullParser("header longer than the buffer")
    return pos


def _fast_read(path: str, head: bytes, file_size: int) -> SliceHeader | None:
    if len(head) < 132 or head[128:132] != b"DICM":
        return None
    # file meta group: always explicit VR little endian
    meta: dict = {}
    pos = 132
    while pos + 8 <= len(head):
        g = struct.unpack_from("<H", head, pos)[0]
        if g != 0x0002:
            break
        e = struct.unpack_from("<H", head, pos + 2)[0]
        vr = head[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            length, hdr = struct.unpack_from("<I", head, pos + 8)[0], 12
        else:
            length, hdr = struct.unpack_from("<H", head, pos + 6)[0], 8
        if e == 0x0010:
            meta["transfer_syntax"] = _decode(head[pos + hdr : pos + hdr + length], "str")
        pos += hdr + length
    ts = meta.get("transfer_syntax", "")
    if ts in ("1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99") or not ts:
        return None  # big endian / deflated / missing: pydicom
    implicit = ts == "1.2.840.10008.1.2"
    out: dict = {"transfer_syntax": ts}
    try:
        _walk(head, pos, implicit, out)
    except _NeedsFullParser:
        if len(head) >= file_size:
            return None
        with open(path, "rb") as fh:  # header longer than the first chunk: read the whole file once
            whole = fh.read()
        try:
            _walk(whole, pos, implicit, out)
        except _NeedsFullParser:
            return None
    except (struct.error, ValueError, UnicodeDecodeError):
        return None
    if (out.get("number_of_frames") or 1) > 1:
        return None  # multi-frame: per-frame functional groups need the full parser
    h = SliceHeader(path=path)
    for key, value in out.items():
        if not key.startswith("_") and value is not None:
            setattr(h, key, value)
    if "_pixel_at" in out:
        h.has_pixels = True
        length = out["_pixel_length"]
        if ts in UNCOMPRESSED_SYNTAXES and length != _UNDEFINED:
            h.pixel_offset = out["_pixel_value_at"]
            h.pixel_length = length
            if h.pixel_offset + length > file_size:
                h.extra["truncated"] = (
                    f"pixel data declares {length} bytes but the file ends after {file_size - h.pixel_offset}"
                )
    return h


def _from_pydicom(path: str) -> list[SliceHeader]:
    """Full parse with pydicom; expands multi-frame objects into one header per frame."""
    import warnings

    import pydicom
    from pydicom.errors import InvalidDicomError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about what we report as errors anyway
        return _from_pydicom_quiet(path, pydicom, InvalidDicomError)


def _from_pydicom_quiet(path, pydicom, InvalidDicomError) -> list[SliceHeader]:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=False, defer_size=1024)
    except InvalidDicomError:
        try:
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=False, defer_size=1024)
        except Exception as exc:  # noqa: BLE001 - garbage bytes raise all kinds of errors
            raise SurgtwinError(f"not a readable DICOM file ({type(exc).__name__})", path=path) from None
        if "SOPClassUID" not in ds or "SeriesInstanceUID" not in ds:
            raise SurgtwinError("not a DICOM file (no DICM marker, no SOP Class UID)", path=path) from None
    except Exception as exc:  # noqa: BLE001
        raise SurgtwinError(f"not a readable DICOM file ({type(exc).__name__}: {exc})", path=path) from None
    if len(ds) == 0:
        raise SurgtwinError("truncated or corrupt DICOM file: no data element could be read", path=path)
    from surgtwin.core.dicom.multiframe import headers_from_dataset

    return headers_from_dataset(ds, path)


def read_headers(path: str) -> list[SliceHeader]:
    """Header(s) of one file: one per image frame. Raises SurgtwinError for non-DICOM/garbage files."""
    import os

    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except OSError as exc:
        raise SurgtwinError(f"cannot read file ({exc.strerror})", path=path) from None
    if size < 132 + 12:
        raise SurgtwinError(f"too small to be a DICOM file ({size} bytes)", path=path)
    h = _fast_read(path, head, size)
    if h is not None:
        return [h]
    return _from_pydicom(path)
