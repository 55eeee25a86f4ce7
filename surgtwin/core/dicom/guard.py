"""Limits, safe values and the exception boundary shared by the DICOM read paths.

A bad file must end as a one-line reason (a ``SurgtwinError`` or a scan skip/refusal), never as a
traceback, a hang, a memory blow-up or a silently wrong volume. Three rules keep it so:

* **Limits before allocation.** Header bytes read per file, frames per object, voxels per volume and
  image matrix size are capped here; every size taken from a header is checked against them (and
  against the bytes the file really holds) before anything is allocated from it.
* **No values in messages.** A corrupt length can make one element swallow the next ones (the
  patient's name, ID, birth date, address), and pydicom's own exception texts quote values. Reasons
  name tags, VRs, byte offsets, lengths, counts and numbers we parsed, never element text. UIDs and
  code strings are kept only when they match their syntax, so quoting a kept UID later is safe.
* **Decoder failures end at the boundary.** Compiled decoders may raise ``BaseException`` subclasses
  (pyo3's ``PanicException``); ``is_control`` tells those apart from what must propagate
  (KeyboardInterrupt, SystemExit, GeneratorExit, our ``Cancelled``).
"""

from __future__ import annotations

import math
import re

#: refuse volumes bigger than this before allocating anything (voxels)
MAX_VOXELS = 2048**3 // 4
#: refuse images wider or taller than this (pixels)
MAX_MATRIX = 8192
#: frames of one multi-frame object (one header each)
MAX_FRAMES = 65536
#: bytes of a file read to find its header (the walker stops at Pixel Data long before this)
MAX_HEADER_BYTES = 64 * 1024 * 1024
#: a position further than this from the patient-space origin is corrupt (1 km)
MAX_COORD_MM = 1.0e6
#: |rescaled value| beyond this is not an image value (and overflows float32 arithmetic soon after)
MAX_RESCALED = 1.0e30

#: UIDs are digits and dots; letters, '-' and '_' are tolerated (real files carry hex "UIDs"). Never
#: spaces, '^' or control bytes: a value that swallowed the next elements is refused, not quoted.
_UID = re.compile(r"[0-9A-Za-z_\-]+(?:\.[0-9A-Za-z_\-]+)*\Z")
_CODE = re.compile(r"[A-Z0-9_ ]*\Z")
#: C0 controls that never occur in DICOM text (ESC, TAB, LF, FF and CR may)
_BAD_TEXT = re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")

#: labels of the tags the loader reads, for reasons: tag -> "Keyword (gggg,eeee)"
TAG_NAMES = {
    0x00020010: "TransferSyntaxUID",
    0x00080008: "ImageType",
    0x00080016: "SOPClassUID",
    0x00080018: "SOPInstanceUID",
    0x00080060: "Modality",
    0x0008103E: "SeriesDescription",
    0x00180050: "SliceThickness",
    0x00181120: "GantryDetectorTilt",
    0x0020000D: "StudyInstanceUID",
    0x0020000E: "SeriesInstanceUID",
    0x00200011: "SeriesNumber",
    0x00200012: "AcquisitionNumber",
    0x00200013: "InstanceNumber",
    0x00200032: "ImagePositionPatient",
    0x00200037: "ImageOrientationPatient",
    0x00200052: "FrameOfReferenceUID",
    0x00280002: "SamplesPerPixel",
    0x00280004: "PhotometricInterpretation",
    0x00280008: "NumberOfFrames",
    0x00280010: "Rows",
    0x00280011: "Columns",
    0x00280030: "PixelSpacing",
    0x00280100: "BitsAllocated",
    0x00280101: "BitsStored",
    0x00280102: "HighBit",
    0x00280103: "PixelRepresentation",
    0x00281052: "RescaleIntercept",
    0x00281053: "RescaleSlope",
    0x00283000: "ModalityLUTSequence",
    0x7FE00010: "PixelData",
}
_TAG_BY_KEYWORD = {v: k for k, v in TAG_NAMES.items()}

#: a malformed value of one of these makes the file's image unusable (refused, never defaulted)
ESSENTIAL = frozenset({
    "SOPClassUID", "SeriesInstanceUID", "TransferSyntaxUID", "ImagePositionPatient", "ImageOrientationPatient",
    "PixelSpacing", "Rows", "Columns", "SamplesPerPixel", "NumberOfFrames", "BitsAllocated", "BitsStored",
    "HighBit", "PixelRepresentation", "RescaleIntercept", "RescaleSlope",
})


def tag_label(tag_or_keyword) -> str:
    """``"Rows (0028,0010)"`` for a tag number or keyword; ``"(gggg,eeee)"`` for a tag we do not name."""
    if isinstance(tag_or_keyword, str):
        keyword = tag_or_keyword
        tag = _TAG_BY_KEYWORD.get(keyword)
        return keyword if tag is None else f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})"
    tag = int(tag_or_keyword)
    name = TAG_NAMES.get(tag)
    number = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
    return f"{name} {number}" if name else number


def clean_uid(text: str) -> str | None:
    """A UID (at most 64 characters of the syntax above), ``""`` for an empty value, else ``None``."""
    text = text.strip("\x00 ")
    if not text:
        return ""
    return text if len(text) <= 64 and _UID.match(text) else None


def clean_code(text: str) -> str | None:
    """A code string (upper-case letters, digits, underscore, space; at most 16 characters) or ``None``."""
    text = text.strip("\x00 ")
    return text if len(text) <= 16 and _CODE.match(text) else None


def clean_text(text: str, max_len: int = 256) -> str | None:
    """Short free text without control characters (a value that swallowed element headers has them)."""
    text = text.strip("\x00 ")
    return None if len(text) > max_len or _BAD_TEXT.search(text) else text


def finite(value: float, limit: float = math.inf) -> bool:
    return math.isfinite(value) and abs(value) <= limit


def is_control(exc: BaseException) -> bool:
    """Exceptions that must propagate through any boundary: interrupts, exits, and cancellation."""
    from surgtwin.core.progress import Cancelled

    return isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit, Cancelled))


def describe_failure(exc: BaseException) -> str:
    """A value-free description of an unexpected exception: its class name only (texts quote values)."""
    name = type(exc).__name__
    if name == "PanicException":
        return "the decoder crashed (panic) on invalid data"
    if isinstance(exc, MemoryError):
        return "out of memory"
    return name
