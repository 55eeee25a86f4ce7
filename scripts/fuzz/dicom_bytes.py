"""Byte-level view of a DICOM file: where each top-level element's tag, VR, length and value sit.

The mutators edit files through this layout (so a length lie, a VR swap or a removed element is
exactly that, whatever pydicom would have written). Independent of surgtwin's own reader on purpose.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"


@dataclass(frozen=True)
class Elem:
    tag: int
    vr: bytes | None  # None: implicit VR
    at: int  # offset of the tag
    len_at: int  # offset of the length field
    len_size: int  # 2 or 4 bytes
    value_at: int
    length: int  # as declared (UNDEFINED for undefined length)
    end: int  # offset just after the element (after the delimiter for undefined length)
    endian: str  # "<" or ">"
    meta: bool  # file meta group (always explicit VR little endian)


@dataclass
class Layout:
    elements: list[Elem]
    transfer_syntax: str
    implicit: bool
    endian: str
    dataset_at: int  # offset of the first dataset (non-meta) element
    complete: bool  # False when the walk stopped early (not understood)

    def find(self, tag: int) -> Elem | None:
        return next((e for e in self.elements if e.tag == tag), None)

    @property
    def pixel(self) -> Elem | None:
        return self.find(PIXEL_DATA)


def _tag(buf: bytes, pos: int, endian: str) -> int:
    g, e = struct.unpack_from(endian + "HH", buf, pos)
    return (g << 16) | e


def _skip_items(buf: bytes, pos: int, implicit: bool, endian: str, depth: int = 0) -> int:
    """End of a sequence/encapsulated value of undefined length starting at ``pos``."""
    if depth > 64:
        raise ValueError("too deep")
    while True:
        tag = _tag(buf, pos, endian)
        length = struct.unpack_from(endian + "I", buf, pos + 4)[0]
        pos += 8
        if tag == SEQ_END:
            return pos
        if tag != ITEM:
            raise ValueError(f"unexpected tag {tag:08X}")
        if length == UNDEFINED:
            pos = _walk(buf, pos, implicit, endian, False, [], depth + 1, until_item_end=True)
        else:
            pos += length


def _walk(buf, pos, implicit, endian, meta, out, depth=0, until_item_end=False) -> int:
    n = len(buf)
    while pos + 8 <= n:
        tag = _tag(buf, pos, endian)
        if until_item_end and tag == ITEM_END:
            return pos + 8
        if meta and tag >> 16 != 0x0002:
            return pos
        if implicit or tag >> 16 == 0xFFFE:
            vr, len_at, len_size = None, pos + 4, 4
        else:
            vr = bytes(buf[pos + 4 : pos + 6])
            if vr in LONG_VRS:
                len_at, len_size = pos + 8, 4
            else:
                len_at, len_size = pos + 6, 2
        if len_at + len_size > n:
            raise ValueError("truncated element header")
        length = struct.unpack_from(endian + ("I" if len_size == 4 else "H"), buf, len_at)[0]
        value_at = len_at + len_size
        if length == UNDEFINED:
            end = _skip_items(buf, value_at, implicit or vr == b"UN", endian, depth)
        else:
            end = value_at + length
            if end > n:
                if depth == 0:
                    out.append(Elem(tag, vr, pos, len_at, len_size, value_at, length, n, endian, meta))
                raise ValueError("value runs past the end")
        if depth == 0:
            out.append(Elem(tag, vr, pos, len_at, len_size, value_at, length, end, endian, meta))
        pos = end
    return pos


def layout(data: bytes) -> Layout:
    """Top-level elements of a Part-10 file (or of a bare dataset without preamble)."""
    elements: list[Elem] = []
    pos = 132 if len(data) >= 132 and data[128:132] == b"DICM" else 0
    ts = ""
    complete = True
    try:
        if pos == 132:
            pos = _walk(data, pos, False, "<", True, elements)
            e = next((e for e in elements if e.tag == 0x00020010), None)
            if e is not None:
                ts = data[e.value_at : e.value_at + e.length].decode("latin-1").strip("\x00 ")
    except (ValueError, struct.error):
        return Layout(elements, ts, False, "<", pos, False)
    if pos == 0:  # no preamble: guess explicit if bytes 4:6 look like a VR
        ts = EXPLICIT_LE if data[4:6].isalpha() and data[4:6].isupper() else IMPLICIT_LE
    implicit = ts == IMPLICIT_LE
    endian = ">" if ts == EXPLICIT_BE else "<"
    dataset_at = pos
    if ts == DEFLATED:
        return Layout(elements, ts, False, "<", dataset_at, False)
    try:
        _walk(data, pos, implicit, endian, False, elements)
    except (ValueError, struct.error):
        complete = False
    return Layout(elements, ts, implicit, endian, dataset_at, complete)


def encode_element(tag: int, vr: bytes, value: bytes, *, implicit: bool, endian: str = "<") -> bytes:
    """One element's bytes (value padded to even length)."""
    if len(value) % 2:
        value += b"\x00" if vr in (b"UI", b"OB", b"UN") else b" "
    head = struct.pack(endian + "HH", tag >> 16, tag & 0xFFFF)
    if implicit:
        return head + struct.pack(endian + "I", len(value)) + value
    if vr in LONG_VRS:
        return head + vr + b"\x00\x00" + struct.pack(endian + "I", len(value)) + value
    if len(value) > 0xFFFF:
        value = value[:0xFFFE]
    return head + vr + struct.pack(endian + "H", len(value)) + value


def set_length_field(data: bytes, e: Elem, length: int) -> bytes:
    fmt = e.endian if not e.meta else "<"
    if e.len_size == 2:
        raw = struct.pack(fmt + "H", length & 0xFFFF)
    else:
        raw = struct.pack(fmt + "I", length & 0xFFFFFFFF)
    return data[: e.len_at] + raw + data[e.len_at + e.len_size :]


def replace_value(data: bytes, e: Elem, value: bytes) -> bytes:
    """The element with a new value and a length field that tells the truth (capped for 2-byte lengths)."""
    if e.len_size == 2 and len(value) > 0xFFFE:
        value = value[:0xFFFE]
    fmt = "<" if e.meta else e.endian
    raw_len = struct.pack(fmt + ("H" if e.len_size == 2 else "I"), len(value))
    return data[: e.len_at] + raw_len + value + data[e.end :]


def insert_sorted(data: bytes, lay: Layout, element: bytes, tag: int) -> bytes:
    """Insert an encoded element before the first top-level dataset element with a larger tag."""
    at = next((e.at for e in lay.elements if not e.meta and e.tag > tag), None)
    if at is None:
        at = lay.elements[-1].end if lay.elements else len(data)
    return data[:at] + element + data[at:]
