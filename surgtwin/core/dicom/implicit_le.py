"""Implicit VR Little Endian bytes for bulk sequence content that pydicom is slow to build and write.

An RT structure set of a noisy label map holds tens of thousands of contour items; as pydicom
Datasets they cost about 0.5 ms each to build and write. Here an item is a few ``bytes`` joins, and
the finished sequence goes into a pydicom Dataset as one ``RawDataElement`` (pydicom writes it as
it is and parses it when read). Only what structure sets need: text (CS, IS, DS, LO), UIDs, items and
sequences of defined length. Elements of an item must be passed in ascending tag order.
"""

from __future__ import annotations

import struct

ITEM_TAG = (0xFFFE, 0xE000)


def element(tag: int, value: bytes) -> bytes:
    """One element: tag, 32-bit length, value (already of even length)."""
    if len(value) % 2:
        raise ValueError(f"({tag >> 16:04X},{tag & 0xFFFF:04X}): odd value length {len(value)}")
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value


def text(tag: int, value: str) -> bytes:
    """A text element (CS, IS, DS, LO, SH...): ASCII, padded with a space to even length."""
    b = value.encode("ascii")
    return element(tag, b + b" " if len(b) % 2 else b)


def uid(tag: int, value: str) -> bytes:
    """A UI element: padded with NUL to even length."""
    b = str(value).encode("ascii")
    return element(tag, b + b"\0" if len(b) % 2 else b)


def item(*elements: bytes) -> bytes:
    body = b"".join(elements)
    return struct.pack("<HHI", *ITEM_TAG, len(body)) + body


def sequence(tag: int, items: list[bytes]) -> bytes:
    return element(tag, b"".join(items))


def sequence_value(items: list[bytes]) -> bytes:
    """The value of a sequence element (its items), for ``raw_sequence``."""
    return b"".join(items)


def raw_sequence(tag: int, value: bytes):
    """A pydicom ``RawDataElement`` holding a sequence value encoded here (Implicit VR Little Endian)."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    return RawDataElement(Tag(tag), None, len(value), value, 0, True, True)
