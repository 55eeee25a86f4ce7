"""A strict, bounded walk over a DICOM element stream with ``struct``: the lean header reader's core.

It decodes only the tags the loader needs (``WANTED``), stops at Pixel Data, and checks the structure
as it goes: every value representation must be a real one, tags must increase within a dataset,
lengths must stay inside the file, sequences must nest properly and not too deep. A file that breaks
these rules is corrupt (``CorruptHeader``); junk with a DICM marker fails within a few elements, so a
2 GB junk file costs milliseconds. A value that does not parse (or is not finite, or out of range)
is recorded as malformed by its tag label and kept as ``None``: callers refuse or warn, never default.

Messages name tags we know, byte offsets and lengths, never bytes of the file: a misread tag number
may itself be four bytes of a patient's name.
"""

from __future__ import annotations

import struct

from surgtwin.core.dicom.guard import (
    MAX_COORD_MM,
    MAX_RESCALED,
    TAG_NAMES,
    clean_code,
    clean_text,
    clean_uid,
    tag_label,
)

UNDEFINED = 0xFFFFFFFF
PIXEL_DATA = 0x7FE00010
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
VALID_VRS = LONG_VRS | {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT",
                        b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
MAX_DEPTH = 32

# tag -> (attribute, kind). kinds: uid, code, text, texts (backslash list), int (IS), us (binary),
# float (DS), pos/ori/spacing (DS lists of 3/6/2), rescale (DS), present
WANTED: dict[int, tuple[str, str]] = {
    0x00080008: ("image_type", "texts"),
    0x00080016: ("sop_class_uid", "uid"),
    0x00080018: ("sop_instance_uid", "uid"),
    0x00080060: ("modality", "code"),
    0x0008103E: ("series_description", "text"),
    0x00180050: ("slice_thickness", "float"),
    0x00181120: ("gantry_tilt", "float"),
    0x0020000D: ("study_uid", "uid"),
    0x0020000E: ("series_uid", "uid"),
    0x00200011: ("series_number", "int"),
    0x00200012: ("acquisition_number", "int"),
    0x00200013: ("instance_number", "int"),
    0x00200032: ("position", "pos"),
    0x00200037: ("orientation", "ori"),
    0x00200052: ("frame_of_reference_uid", "uid"),
    0x00280002: ("samples_per_pixel", "us"),
    0x00280004: ("photometric", "code"),
    0x00280008: ("number_of_frames", "int"),
    0x00280010: ("rows", "us"),
    0x00280011: ("columns", "us"),
    0x00280030: ("pixel_spacing", "spacing"),
    0x00280100: ("bits_allocated", "us"),
    0x00280101: ("bits_stored", "us"),
    0x00280102: ("high_bit", "us"),
    0x00280103: ("pixel_representation", "us"),
    0x00281052: ("rescale_intercept", "rescale"),
    0x00281053: ("rescale_slope", "rescale"),
    0x00283000: ("modality_lut", "present"),
}
MALFORMED = object()


class CorruptHeader(Exception):
    """The element stream is broken (the message is value-free)."""


class NeedMoreBytes(Exception):
    """The header continues past the bytes read so far."""


class NeedsFullParser(Exception):
    """A legal structure the walker leaves to pydicom (undefined-length OB/OW outside Pixel Data)."""


def _numbers(text: str, count: int, limit: float):
    """``count`` backslash-separated numbers within +-limit (NaN and inf fail the comparison), or MALFORMED."""
    parts = text.split("\\")
    if len(parts) != count:
        return MALFORMED
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        return MALFORMED
    for v in values:
        if not -limit <= v <= limit:
            return MALFORMED
    return values


def _text_kind(clean):
    def decode(raw: bytes, endian: str):
        value = clean(raw.decode("latin-1"))
        return MALFORMED if value is None else value
    return decode


def _texts(raw: bytes, endian: str):
    text = raw.decode("latin-1").strip("\x00 ")
    parts = [clean_text(p) for p in text.split("\\")] if text else []
    return MALFORMED if None in parts else tuple(parts)


def _us(raw: bytes, endian: str):
    if len(raw) == 2:
        return struct.unpack(endian + "H", raw)[0]
    return None if not raw else MALFORMED


def _number_kind(count: int, limit: float, as_int: bool = False):
    def decode(raw: bytes, endian: str):
        text = raw.decode("latin-1").strip("\x00 ")
        if not text:
            return None
        values = _numbers(text, count, limit)
        if values is MALFORMED or count > 1:
            return values
        if as_int:
            return int(values[0]) if values[0] == int(values[0]) else MALFORMED
        return values[0]
    return decode


_DECODERS = {
    "present": lambda raw, endian: True,
    "us": _us,
    "uid": _text_kind(clean_uid),
    "code": _text_kind(clean_code),
    "text": _text_kind(clean_text),
    "texts": _texts,
    "int": _number_kind(1, 2.0**31, as_int=True),
    "float": _number_kind(1, MAX_COORD_MM),
    "rescale": _number_kind(1, MAX_RESCALED),
    "pos": _number_kind(3, MAX_COORD_MM),
    "ori": _number_kind(6, 1.5),
    "spacing": _number_kind(2, MAX_COORD_MM),
}


def decode_value(raw: bytes, kind: str, endian: str = "<"):
    """Decode one wanted value: the value, ``None`` when empty, or ``MALFORMED``."""
    return _DECODERS[kind](raw, endian)


def _where(pos: int, last_known: int | None) -> str:
    after = f"; last readable element {tag_label(last_known)}" if last_known is not None else ""
    return f"at byte {pos}{after}"


class Walker:
    """Walks one buffer (a prefix of a file of ``file_size`` bytes) in one encoding."""

    def __init__(self, buf: bytes, file_size: int, *, implicit: bool, endian: str = "<"):
        self.buf, self.n, self.file_size = buf, len(buf), file_size
        self.whole = len(buf) >= file_size
        self.implicit, self.endian = implicit, endian
        self.fmt_tag, self.fmt_u16, self.fmt_u32 = endian + "HH", endian + "H", endian + "I"
        self.last_known: int | None = None

    def _need(self, end: int, pos: int, what: str | int) -> None:
        """``end`` must be within the buffer; past the file is corrupt, past the buffer needs more.
        ``what``: a description, or the tag of a wanted element (labelled only on failure)."""
        if end <= self.n:
            return
        if end > self.file_size or self.whole:
            what = f"element {tag_label(what)}" if isinstance(what, int) else what
            raise CorruptHeader(f"{what} runs past the end of the file {_where(pos, self.last_known)}")
        raise NeedMoreBytes

    def _element(self, pos: int):
        """(tag, vr or None, value length, header length) of the element at ``pos``."""
        buf = self.buf
        self._need(pos + 8, pos, "a data element header")
        g, e = struct.unpack_from(self.fmt_tag, buf, pos)
        if self.implicit or g == 0xFFFE:
            return (g << 16) | e, None, struct.unpack_from(self.fmt_u32, buf, pos + 4)[0], 8
        vr = buf[pos + 4 : pos + 6]
        if vr not in VALID_VRS:
            tag = (g << 16) | e
            name = f" in element {tag_label(tag)}" if tag in TAG_NAMES else ""
            raise CorruptHeader(f"invalid value representation{name} {_where(pos, self.last_known)}")
        if vr in LONG_VRS:
            self._need(pos + 12, pos, "a data element header")
            return (g << 16) | e, vr, struct.unpack_from(self.fmt_u32, buf, pos + 8)[0], 12
        return (g << 16) | e, vr, struct.unpack_from(self.fmt_u16, buf, pos + 6)[0], 8

    def walk(self, pos: int, out: dict) -> int:
        """Walk the top-level dataset from ``pos``: fill ``out`` (attributes, ``malformed`` labels and
        the Pixel Data position) and return where Pixel Data starts (or the end of the file)."""
        prev = -1
        malformed = out.setdefault("malformed", [])
        buf, n, fmt_tag, fmt_u16, fmt_u32 = self.buf, self.n, self.fmt_tag, self.fmt_u16, self.fmt_u32
        unpack_from, implicit = struct.unpack_from, self.implicit
        while True:
            if pos + 12 <= n:  # the common case, inlined: an element header inside the buffer
                g, e = unpack_from(fmt_tag, buf, pos)
                tag = (g << 16) | e
                if implicit or g == 0xFFFE:
                    vr, length, hdr = None, unpack_from(fmt_u32, buf, pos + 4)[0], 8
                else:
                    vr = buf[pos + 4 : pos + 6]
                    if vr in LONG_VRS:
                        length, hdr = unpack_from(fmt_u32, buf, pos + 8)[0], 12
                    elif vr in VALID_VRS:
                        length, hdr = unpack_from(fmt_u16, buf, pos + 6)[0], 8
                    else:
                        tag, vr, length, hdr = self._element(pos)  # raises with the reason
            elif pos == n and self.whole:
                return pos  # a non-image object: no Pixel Data
            else:
                tag, vr, length, hdr = self._element(pos)
            if tag <= prev or (tag >> 16) == 0xFFFE:
                raise CorruptHeader(f"data elements out of order {_where(pos, self.last_known)}")
            prev = tag
            value_at = pos + hdr
            if tag == PIXEL_DATA:
                out["_pixel_at"], out["_pixel_value_at"], out["_pixel_length"] = pos, value_at, length
                return pos
            if length == UNDEFINED:
                pos = self._undefined(value_at, vr, tag, 0)
                continue
            end = value_at + length
            wanted = WANTED.get(tag)
            if wanted is not None:
                self._need(end, pos, tag)
                value = decode_value(buf[value_at:end], wanted[1], self.endian)
                if value is MALFORMED:
                    malformed.append(TAG_NAMES[tag])
                elif value is not None:
                    out[wanted[0]] = value
                self.last_known = tag
            elif end > self.file_size:
                self._need(end, pos, "a data element")
            pos = end

    def _undefined(self, value_at: int, vr, tag: int, depth: int) -> int:
        if vr is None or vr in (b"SQ", b"UN"):
            return self._skip_sequence(value_at, depth + 1, implicit_items=vr != b"SQ" and vr is not None)
        if vr in (b"OB", b"OW"):
            raise NeedsFullParser  # encapsulated data outside Pixel Data: legal, rare
        raise CorruptHeader(f"undefined length on a non-sequence element {_where(value_at, self.last_known)}")

    def _skip_sequence(self, pos: int, depth: int, implicit_items: bool = False) -> int:
        """Skip the items of an undefined-length sequence at ``pos``; return the position after it."""
        if depth > MAX_DEPTH:
            raise CorruptHeader(f"sequences nested deeper than {MAX_DEPTH} levels {_where(pos, self.last_known)}")
        while True:
            self._need(pos + 8, pos, "a sequence item")
            g, e = struct.unpack_from(self.fmt_tag, self.buf, pos)
            tag = (g << 16) | e
            length = struct.unpack_from(self.fmt_u32, self.buf, pos + 4)[0]
            pos += 8
            if tag == _SEQ_END:
                return pos
            if tag != _ITEM:
                raise CorruptHeader(f"a sequence holds something other than items {_where(pos - 8, self.last_known)}")
            if length == UNDEFINED:
                pos = self._skip_item(pos, depth, implicit_items)
            else:
                if pos + length > self.file_size:
                    raise CorruptHeader(f"a sequence item runs past the end of the file {_where(pos - 8, self.last_known)}")
                pos += length

    def _skip_item(self, pos: int, depth: int, implicit_items: bool) -> int:
        """Skip the elements of an undefined-length item up to its delimiter."""
        saved = self.implicit
        self.implicit = saved or implicit_items
        try:
            prev = -1
            while True:
                tag, vr, length, hdr = self._element(pos)
                if tag == _ITEM_END:
                    return pos + 8
                if tag <= prev or (tag >> 16) == 0xFFFE:
                    raise CorruptHeader(f"data elements out of order in a sequence item {_where(pos, self.last_known)}")
                prev = tag
                if length == UNDEFINED:
                    pos = self._undefined(pos + hdr, vr, tag, depth)
                    continue
                end = pos + hdr + length
                if end > self.file_size:
                    self._need(end, pos, "a data element in a sequence item")
                pos = end
        finally:
            self.implicit = saved


def parse_meta(buf: bytes, pos: int) -> tuple[str, int]:
    """The file meta group (group 0002, explicit VR little endian) at ``pos``: its transfer syntax UID
    (``""`` when absent) and the position after it."""
    ts = ""
    while pos + 8 <= len(buf):
        g, e = struct.unpack_from("<HH", buf, pos)
        if g != 0x0002:
            return ts, pos
        vr = buf[pos + 4 : pos + 6]
        if vr not in VALID_VRS:
            raise CorruptHeader(f"invalid value representation in the file meta group at byte {pos}")
        if vr in LONG_VRS:
            if pos + 12 > len(buf):
                break
            length, hdr = struct.unpack_from("<I", buf, pos + 8)[0], 12
        else:
            length, hdr = struct.unpack_from("<H", buf, pos + 6)[0], 8
        if pos + hdr + length > len(buf):
            raise CorruptHeader(f"the file meta group runs past {len(buf)} bytes at byte {pos}")
        if e == 0x0010:
            ts = clean_uid(buf[pos + hdr : pos + hdr + length].decode("latin-1"))
            if ts is None:
                raise CorruptHeader("TransferSyntaxUID (0002,0010) is malformed")
        pos += hdr + length
    raise CorruptHeader("the file ends inside the file meta group")


def looks_explicit(buf: bytes, pos: int) -> bool:
    """Whether the element at ``pos`` has an explicit VR (how pydicom guesses a missing transfer syntax)."""
    return buf[pos + 4 : pos + 6] in VALID_VRS


def count_fragments(fh, value_at: int, file_size: int, endian: str = "<", limit: int = 1 << 20) -> tuple[int, str | None]:
    """Walk the items of encapsulated (undefined-length) Pixel Data from ``value_at`` in the open file
    ``fh``: (number of fragments after the offset table, None if complete or why it is not). Reads 8
    bytes per item and stops after ``limit`` items."""
    pos, items = value_at, 0
    fmt = endian + "HHI"
    while items <= limit:
        fh.seek(pos)
        head = fh.read(8)
        if len(head) < 8:
            return max(0, items - 1), f"the compressed pixel data ends after {max(0, items - 1)} fragment(s)"
        g, e, length = struct.unpack(fmt, head)
        tag = (g << 16) | e
        if tag == _SEQ_END:
            return max(0, items - 1), None
        if tag != _ITEM:
            return max(0, items - 1), f"the compressed pixel data is corrupt after {max(0, items - 1)} fragment(s)"
        if length == UNDEFINED or pos + 8 + length > file_size:
            return max(0, items - 1), f"the compressed pixel data ends inside fragment {items}"
        pos += 8 + length
        items += 1
    return items - 1, None
