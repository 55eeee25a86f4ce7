"""Header-only reading of DICOM files into ``SliceHeader`` records.

Two readers with the same output:

* a lean scanner for the common case (Part 10 file, little-endian explicit or implicit VR,
  single-frame image) that walks the element stream with ``struct`` (``elements.Walker``) and decodes
  only the ~30 tags the loader needs. It is ~5x faster than a full ``pydicom.dcmread`` and records
  where the pixel data starts, so uncompressed pixels can later be read straight into the output volume.
* ``pydicom`` for everything else (multi-frame/enhanced objects with functional groups, big-endian,
  deflated, files without a preamble or transfer syntax), after the walker has checked the structure.

The walker reads a bounded prefix (32 KiB, then more in steps up to ``MAX_HEADER_BYTES``) and stops
at Pixel Data, so junk with a DICM marker is refused in milliseconds whatever its size. Frame counts
are checked against the pixel data before one header per frame is made. Every failure leaves
``read_headers`` as a ``SurgtwinError`` naming the file and a reason that quotes no element values.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from surgtwin.core.dicom.elements import (
    UNDEFINED,
    CorruptHeader,
    NeedMoreBytes,
    NeedsFullParser,
    Walker,
    count_fragments,
    looks_explicit,
    parse_meta,
)
from surgtwin.core.dicom.guard import (
    MAX_FRAMES,
    MAX_HEADER_BYTES,
    MAX_VOXELS,
    describe_failure,
    is_control,
    tag_label,
)
from surgtwin.core.errors import SurgtwinError

_HEAD_BYTES = 32 * 1024
_READ_STEPS = (_HEAD_BYTES, 512 * 1024, 8 * 1024 * 1024, MAX_HEADER_BYTES)
IMPLICIT_VR = "1.2.840.10008.1.2"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"

UNCOMPRESSED_SYNTAXES = {
    "1.2.840.10008.1.2": ("<", True),  # implicit VR little endian
    "1.2.840.10008.1.2.1": ("<", False),  # explicit VR little endian
    "1.2.840.10008.1.2.2": (">", False),  # explicit VR big endian (retired)
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
    high_bit: int | None = None
    pixel_representation: int = 0
    rescale_intercept: float = 0.0
    rescale_slope: float = 1.0
    modality_lut: bool = False
    has_pixels: bool = False
    pixel_offset: int | None = None  # byte offset of native pixel data in the file, else None
    pixel_length: int | None = None
    frame_index: int | None = None  # frame of a multi-frame object, else None
    #: "malformed": labels of tags whose value did not parse (kept as None); "truncated"; "stack_id"...
    extra: dict = field(default_factory=dict)

    @property
    def malformed(self) -> list[str]:
        """Keywords of the loader's tags whose value was present but unusable (corrupt, not finite)."""
        return self.extra.get("malformed", [])


def read_headers(path: str) -> list[SliceHeader]:
    """Header(s) of one file: one per image frame. Raises SurgtwinError (naming the file and a
    value-free reason) for non-DICOM, corrupt or absurd files; never another exception."""
    import os

    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(_HEAD_BYTES)
            if size < 132 + 12:
                raise SurgtwinError(f"too small to be a DICOM file ({size} bytes)", path=path)
            return _read(path, fh, head, size)
    except SurgtwinError:
        raise
    except CorruptHeader as exc:
        raise SurgtwinError(f"corrupt DICOM header ({exc})", path=path) from None
    except OSError as exc:
        raise SurgtwinError(f"cannot read file ({exc.strerror or type(exc).__name__})", path=path) from None
    except BaseException as exc:  # noqa: BLE001 - the boundary: nothing but SurgtwinError leaves
        if is_control(exc):
            raise
        raise SurgtwinError(f"cannot read the DICOM header ({describe_failure(exc)})", path=path) from None


def _read(path: str, fh, head: bytes, size: int) -> list[SliceHeader]:
    preamble = head[128:132] == b"DICM"
    start = 132 if preamble else 0
    big_start = False
    if not preamble and struct.unpack_from("<H", head, 0)[0] not in (0x0002, 0x0008):
        big_start = struct.unpack_from(">H", head, 0)[0] == 0x0008  # big endian without meta or preamble
        if not big_start:
            raise SurgtwinError("not a DICOM file (no DICM marker and no DICOM data element at the start)",
                                path=path)
    ts, pos = ("", 0) if big_start else parse_meta(head, start)
    if ts == DEFLATED:
        return _read_deflated(path, fh, size, pos)
    endian = ">" if ts == BIG_ENDIAN or big_start else "<"
    # like pydicom, the first element decides explicit or implicit VR (some files contradict their syntax)
    implicit = not looks_explicit(head, pos)
    out, full = _walk_bounded(fh, head, size, pos, implicit, endian, path)
    h = _assemble(path, fh, out, ts, size, endian)
    if h.number_of_frames > 1:
        check_frames(h, out.get("_pixel_length"))
    if preamble and ts and ts != BIG_ENDIAN and not full and h.number_of_frames <= 1:
        return [h]
    # multi-frame, big endian, no preamble, no transfer syntax: the structure is sound, pydicom decodes it
    carry = {k: h.extra[k] for k in ("malformed", "truncated") if k in h.extra}
    return _from_pydicom(path, None if full else h.has_pixels, carry)


def _walk_bounded(fh, buf: bytes, size: int, pos: int, implicit: bool, endian: str, path: str) -> tuple[dict, bool]:
    """Walk the header, reading more of the file in steps up to MAX_HEADER_BYTES; (values, needs pydicom)."""
    for step in _READ_STEPS:
        if len(buf) < min(step, size):
            fh.seek(0)
            buf = fh.read(min(step, size))
        out: dict = {}
        try:
            Walker(buf, size, implicit=implicit, endian=endian).walk(pos, out)
            return out, False
        except NeedMoreBytes:
            continue
        except NeedsFullParser:
            return out, True
    raise SurgtwinError(f"DICOM header longer than {MAX_HEADER_BYTES // 2**20} MB before the pixel data "
                        "(corrupt or not supported)", path=path)


def _assemble(path: str, fh, out: dict, ts: str, size: int, endian: str) -> SliceHeader:
    h = SliceHeader(path=path, transfer_syntax=ts)
    for key, value in out.items():
        if not key.startswith("_") and key != "malformed":
            setattr(h, key, value)
    if out.get("malformed"):
        h.extra["malformed"] = list(out["malformed"])
    if "_pixel_at" in out:
        h.has_pixels = True
        length = out["_pixel_length"]
        if ts in UNCOMPRESSED_SYNTAXES and length != UNDEFINED:
            h.pixel_offset = out["_pixel_value_at"]
            h.pixel_length = length
            if h.pixel_offset + length > size:
                h.extra["truncated"] = (
                    f"pixel data declares {length} bytes but the file ends after {size - h.pixel_offset}"
                )
        elif length == UNDEFINED:  # encapsulated: every fragment must be inside the file
            fragments, problem = count_fragments(fh, out["_pixel_value_at"], size, endian)
            h.extra["fragments"] = fragments
            if problem:
                h.extra["truncated"] = problem
    return h


def check_frames(h: SliceHeader, pixel_length: int | None) -> None:
    """Refuse a frame count the limits or the file's pixel data cannot hold, before one header per frame."""
    n = h.number_of_frames
    label = tag_label("NumberOfFrames")
    if n > MAX_FRAMES:
        raise SurgtwinError(f"{label} is {n}: more than the {MAX_FRAMES} frames supported (corrupt header?)",
                            path=h.path)
    if n * (h.rows or 0) * (h.columns or 0) > MAX_VOXELS:
        raise SurgtwinError(f"{label} is {n}: {n}x{h.rows}x{h.columns} is more than the {MAX_VOXELS} voxels "
                            "supported (corrupt header?)", path=h.path)
    if not h.has_pixels or pixel_length is None:
        return
    if pixel_length != UNDEFINED and h.transfer_syntax in UNCOMPRESSED_SYNTAXES:
        bits = n * (h.rows or 0) * (h.columns or 0) * max(1, h.samples_per_pixel) * (h.bits_allocated or 1)
        need = (bits + 7) // 8
        if need > pixel_length:
            raise SurgtwinError(f"{label} is {n}: the frames need {need} bytes of pixel data, the file holds "
                                f"{pixel_length}", path=h.path)
    elif "fragments" in h.extra and n > h.extra["fragments"]:  # encapsulated: one fragment per frame at least
        raise SurgtwinError(f"{label} is {n}: the compressed pixel data holds only {h.extra['fragments']} "
                            "fragment(s)", path=h.path)


def _read_deflated(path: str, fh, size: int, pos: int) -> list[SliceHeader]:
    """Deflated transfer syntax: inflate at most MAX_HEADER_BYTES (a zip bomb is refused), check the
    structure, then let pydicom read it."""
    import zlib

    if size > MAX_HEADER_BYTES:
        raise SurgtwinError(f"deflated DICOM file over {MAX_HEADER_BYTES // 2**20} MB: not supported", path=path)
    fh.seek(pos)
    packed = fh.read()
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        data = inflater.decompress(packed, MAX_HEADER_BYTES)
    except zlib.error:
        raise SurgtwinError("corrupt DICOM file (the deflated data set does not inflate)", path=path) from None
    if inflater.unconsumed_tail:
        raise SurgtwinError(f"deflated data set inflates to more than {MAX_HEADER_BYTES // 2**20} MB", path=path)
    out: dict = {}
    try:
        Walker(data, len(data), implicit=False).walk(0, out)
    except NeedsFullParser:
        pass
    return _from_pydicom(path, None, {"malformed": out["malformed"]} if out.get("malformed") else {})


def _from_pydicom(path: str, has_pixels: bool | None, carry: dict) -> list[SliceHeader]:
    """Full parse with pydicom (its errors and texts never leave: they may quote values); expands
    multi-frame objects into one header per frame. ``has_pixels`` None: pydicom looks for Pixel Data."""
    import warnings

    import pydicom

    from surgtwin.core.dicom.multiframe import headers_from_dataset

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about what we report as errors anyway
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=has_pixels is not None, defer_size=1024)
            if len(ds) == 0:
                raise SurgtwinError("truncated or corrupt DICOM file: no data element could be read", path=path)
            if "SOPClassUID" not in ds and "SeriesInstanceUID" not in ds:
                raise SurgtwinError("not a DICOM image (no SOP Class UID, no Series Instance UID)", path=path)
            headers = headers_from_dataset(ds, path, has_pixels=has_pixels)
    except SurgtwinError:
        raise
    except BaseException as exc:  # noqa: BLE001 - garbage raises all kinds of errors; texts quote values
        if is_control(exc):
            raise
        raise SurgtwinError(f"not a readable DICOM file ({describe_failure(exc)})", path=path) from None
    for h in headers:  # what the walker saw in the raw bytes holds whatever pydicom made of them
        if carry.get("malformed"):
            h.extra["malformed"] = list(dict.fromkeys([*h.extra.get("malformed", []), *carry["malformed"]]))
        if carry.get("truncated"):
            h.extra["truncated"] = carry["truncated"]
    return headers
