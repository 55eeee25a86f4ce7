"""DICOM mutators. Each is a pair: ``sample(rng, data) -> params`` (JSON-able) and
``apply(data, params) -> bytes`` (pure: the same params on the same seed give the same bytes).

Single-file mutators work on bytes through ``dicom_bytes.layout`` (values, lengths, VRs, pixel
bytes, truncation, duplicated/removed/inserted elements, the preamble). Multi-frame mutators and
series mutators (``SERIES``: a slice removed/duplicated, mixed series UIDs, one slice moved far away
or re-oriented, tilt, gaps) edit pydicom datasets and write them back.
"""

from __future__ import annotations

import copy
import io
import struct

import numpy as np

from . import dicom_bytes as db

# -- value pools -----------------------------------------------------------------------------------
NUMBERS = (
    "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e308", "-1e308", "1e309", "1e400", "-1e400", "0", "-0",
    "1e-320", "5e-324", "-1", "-1e9", "1e9", "9.99999999e15", "123456789012345678", "0.0001", "1e-9", "+1", "1.",
    ".", " ", "", "abc", "1,5", "0x1A", "1e", "--1", "1e+", "1_000", "2.5", "-2.5", "300", "-300",
)
INTEGERS = (
    "0", "-1", "1", "2", "2147483647", "2147483648", "-2147483649", "99999999999999999999", "1e3", "1.5", "nan", "inf",
    "", "abc", "+5", " 7 ", "0x10", "65536", "4294967296", "1e308", "-0",
)
US_VALUES = (0, 1, 2, 3, 7, 8, 9, 12, 15, 16, 17, 24, 31, 32, 33, 48, 64, 255, 256, 4096, 32767, 32768, 65535)
UIDS = (
    "", "\x00", "1.2.3", "1..2", "a" * 64, "9" * 200, "1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.7",
    "1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.481.3", "1.2.840.10008.1.3.10", "1.2.840.10008.5.1.4.1.1.4",
)
TRANSFER_SYNTAXES = (
    db.IMPLICIT_LE, db.EXPLICIT_LE, db.EXPLICIT_BE, db.DEFLATED, "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.70", "1.2.3.4", "", "\x00", "garbage",
)
CODES = (
    "", "CT", "MR", "SEG", "RTDOSE", "OT", "SC", "LOCALIZER", "ORIGINAL\\PRIMARY\\LOCALIZER", "MONOCHROME1", "RGB",
    "PALETTE COLOR", "YBR_FULL", "\\\\\\", "A" * 100, "DERIVED\\SECONDARY",
)
TEXTS = ("", "\x00" * 10, "\x1b[31mred\x1b[0m", "{0}%s%n{}", "line\r\nbreak", "\xff\xfe\xfd", "é" * 40, "A" * 10000)
ORIENTATIONS = (
    "1\\0\\0\\1\\0\\0", "0\\0\\0\\0\\0\\0", "2\\0\\0\\0\\2\\0", "1\\0\\0\\0\\1\\0\\0", "1\\0\\0\\0\\1", "1\\0\\0\\0.1\\1\\0",
    "0.7071\\0.7071\\0\\0\\0\\-1", "1e-30\\0\\0\\0\\1e-30\\0", "-1\\0\\0\\0\\-1\\0",
)

#: tag -> (VR, value kind)
TAGS = {
    0x00200032: (b"DS", "ds3"),  # ImagePositionPatient
    0x00200037: (b"DS", "ds6"),  # ImageOrientationPatient
    0x00280030: (b"DS", "ds2"),  # PixelSpacing
    0x00180050: (b"DS", "ds1"),  # SliceThickness
    0x00181120: (b"DS", "ds1"),  # GantryDetectorTilt
    0x00281053: (b"DS", "ds1"),  # RescaleSlope
    0x00281052: (b"DS", "ds1"),  # RescaleIntercept
    0x00281050: (b"DS", "ds1"),  # WindowCenter
    0x00280010: (b"US", "us"),  # Rows
    0x00280011: (b"US", "us"),  # Columns
    0x00280100: (b"US", "us"),  # BitsAllocated
    0x00280101: (b"US", "us"),  # BitsStored
    0x00280102: (b"US", "us"),  # HighBit
    0x00280103: (b"US", "us"),  # PixelRepresentation
    0x00280002: (b"US", "us"),  # SamplesPerPixel
    0x00280008: (b"IS", "is"),  # NumberOfFrames
    0x00200013: (b"IS", "is"),  # InstanceNumber
    0x00200011: (b"IS", "is"),  # SeriesNumber
    0x00200012: (b"IS", "is"),  # AcquisitionNumber
    0x0020000E: (b"UI", "ui"),  # SeriesInstanceUID
    0x00080018: (b"UI", "ui"),  # SOPInstanceUID
    0x00080016: (b"UI", "ui"),  # SOPClassUID
    0x00200052: (b"UI", "ui"),  # FrameOfReferenceUID
    0x00080060: (b"CS", "cs"),  # Modality
    0x00080008: (b"CS", "cs"),  # ImageType
    0x00280004: (b"CS", "cs"),  # PhotometricInterpretation
    0x0008103E: (b"LO", "lo"),  # SeriesDescription
    0x00020010: (b"UI", "ts"),  # TransferSyntaxUID (file meta)
}
#: identity elements: their values are never moved or rewritten (so a leak is surgtwin's, not ours)
PHI_TAGS = {0x00100010, 0x00100020, 0x00100030, 0x00101040, 0x00101000}


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _ds_list(rng, n: int) -> str:
    k = n if rng.random() < 0.7 else int(rng.integers(0, 9))
    parts = [_pick(rng, NUMBERS) if rng.random() < 0.6 else f"{rng.normal(0, 100):.6g}" for _ in range(k)]
    return "\\".join(parts)


def sample_value(rng, kind: str) -> bytes:
    """A nasty value of the given kind (bytes as they would stand in the file)."""
    r = rng.random()
    if r < 0.08:
        return rng.integers(0, 256, int(rng.choice([1, 2, 3, 8, 17, 64, 300]))).astype(np.uint8).tobytes()
    if kind == "us":
        if rng.random() < 0.15:
            return _pick(rng, (b"", b"\x01", b"\x01\x00\x02", b"\x10\x00\x00\x00"))
        return struct.pack("<H", _pick(rng, US_VALUES))
    if kind.startswith("ds"):
        n = int(kind[2:])
        if n == 6 and rng.random() < 0.4:
            text = _pick(rng, ORIENTATIONS)
        else:
            text = _ds_list(rng, n)
    elif kind == "is":
        text = _pick(rng, INTEGERS)
    elif kind == "ui":
        text = _pick(rng, UIDS)
    elif kind == "ts":
        text = _pick(rng, TRANSFER_SYNTAXES)
    elif kind == "cs":
        text = _pick(rng, CODES)
    else:
        text = _pick(rng, TEXTS)
    return text.encode("latin-1", "replace") if all(ord(c) < 256 for c in text) else text.encode("utf-8")


# -- single-file byte mutators ----------------------------------------------------------------------
def _elements(data: bytes, *, phi_ok: bool = False) -> list[db.Elem]:
    lay = db.layout(data)
    return [e for e in lay.elements if phi_ok or e.tag not in PHI_TAGS]


def _elem_by_tag(data: bytes, tag: int) -> tuple[db.Layout, db.Elem | None]:
    lay = db.layout(data)
    return lay, lay.find(tag)


def _choose_elem(rng, data: bytes, prefer_wanted: float = 0.6) -> int | None:
    els = _elements(data)
    if not els:
        return None
    wanted = [e for e in els if e.tag in TAGS or e.tag == db.PIXEL_DATA]
    pool = wanted if wanted and rng.random() < prefer_wanted else els
    return _pick(rng, pool).tag


def sample_value_mut(rng, data):
    tag = _pick(rng, list(TAGS))
    _, kind = TAGS[tag]
    value = sample_value(rng, kind)
    return {"tag": tag, "value": value.hex(), "pad": bool(rng.random() < 0.7)}


def apply_value_mut(data, p):
    value = bytes.fromhex(p["value"])
    vr, kind = TAGS.get(p["tag"], (b"UN", "lo"))
    if p.get("pad") and len(value) % 2:
        value += b"\x00" if vr == b"UI" else b" "
    lay, e = _elem_by_tag(data, p["tag"])
    if e is not None:
        return db.replace_value(data, e, value)
    if p["tag"] >> 16 == 0x0002 or not lay.elements:
        return data
    el = db.encode_element(p["tag"], vr, value, implicit=lay.implicit, endian=lay.endian)
    return db.insert_sorted(data, lay, el, p["tag"])


def sample_length(rng, data):
    tag = _choose_elem(rng, data, 0.5)
    if tag is None:
        return {"tag": 0, "length": 0}
    _, e = _elem_by_tag(data, tag)
    orig = e.length if e.length != db.UNDEFINED else 0
    big = 0xFFFF if e.len_size == 2 else 0xFFFFFFFF
    choices = [0, 1, max(0, orig - 1), orig + 1, orig + 2, orig * 2 + 2, big, big - 1, 0x7FFFFFFF, len(data), orig + 4096,
               int(rng.integers(0, 1 << (8 * e.len_size)))]
    return {"tag": tag, "length": int(_pick(rng, choices)) & big}


def apply_length(data, p):
    _, e = _elem_by_tag(data, p["tag"])
    return data if e is None else db.set_length_field(data, e, p["length"])


UNKNOWN_VRS = (b"ZZ", b"\x00\x00", b"  ", b"ds", b"??", b"\xff\xff", b"OB", b"OW", b"SQ", b"UN", b"US", b"UL", b"FD", b"DS",
               b"UT", b"AT", b"OF", b"SV")


def sample_vr(rng, data):
    els = [e for e in _elements(data) if e.vr is not None]
    if not els:
        return {"tag": 0, "vr": ""}
    wanted = [e for e in els if e.tag in TAGS]
    e = _pick(rng, wanted if wanted and rng.random() < 0.6 else els)
    return {"tag": e.tag, "vr": _pick(rng, UNKNOWN_VRS).hex()}


def apply_vr(data, p):
    _, e = _elem_by_tag(data, p["tag"])
    if e is None or e.vr is None:
        return data
    return data[: e.at + 4] + bytes.fromhex(p["vr"]) + data[e.at + 6 :]


def _pixel_region(data: bytes) -> tuple[int, int]:
    lay = db.layout(data)
    e = lay.pixel
    if e is None:
        return (len(data) * 3 // 4, len(data))
    return (e.value_at, min(e.end, len(data)))


def sample_pixel_flip(rng, data):
    a, b = _pixel_region(data)
    focus = "header" if rng.random() < 0.35 else "any"  # RLE segment table / item headers / first bytes
    return {"n": int(_pick(rng, (1, 2, 4, 16, 64, 256))), "mode": _pick(rng, ("xor", "zero", "ff", "block")),
            "focus": focus, "subseed": int(rng.integers(1 << 31)), "span": [a, b]}


def apply_pixel_flip(data, p):
    a, b = p["span"]
    if p["focus"] == "header":
        b = min(b, a + 96)
    if b <= a:
        return data
    r = np.random.default_rng(p["subseed"])
    buf = bytearray(data)
    if p["mode"] == "block":
        at = int(r.integers(a, b))
        blk = r.integers(0, 256, p["n"]).astype(np.uint8).tobytes()
        buf[at : at + len(blk)] = blk[: len(buf) - at]
        return bytes(buf)
    for at in r.integers(a, b, p["n"]):
        if p["mode"] == "xor":
            buf[at] ^= int(r.integers(1, 256))
        else:
            buf[at] = 0 if p["mode"] == "zero" else 0xFF
    return bytes(buf)


def sample_truncate(rng, data):
    a, b = _pixel_region(data)
    where = _pick(rng, ("any", "header", "pixels", "tiny"))
    lo, hi = {"any": (0, len(data)), "header": (0, a + 12), "pixels": (a, b), "tiny": (0, 200)}[where]
    return {"at": int(rng.integers(lo, max(lo + 1, hi)))}


def apply_truncate(data, p):
    return data[: p["at"]]


def sample_duplicate(rng, data):
    tag = _choose_elem(rng, data, 0.7)
    variant = "diff" if tag in TAGS and rng.random() < 0.5 else "same"
    value = sample_value(rng, TAGS[tag][1]).hex() if variant == "diff" else ""
    return {"tag": tag or 0, "variant": variant, "value": value, "at_end": bool(rng.random() < 0.3)}


def apply_duplicate(data, p):
    lay, e = _elem_by_tag(data, p["tag"])
    if e is None:
        return data
    raw = data[e.at : e.end]
    if p["variant"] == "diff":
        raw = db.replace_value(raw, db.Elem(e.tag, e.vr, 0, e.len_at - e.at, e.len_size, e.value_at - e.at, e.length,
                                            e.end - e.at, e.endian, e.meta), bytes.fromhex(p["value"]))
    at = e.end if not p["at_end"] else len(data)
    return data[:at] + raw + data[at:]


def sample_remove(rng, data):
    return {"tag": _choose_elem(rng, data, 0.7) or 0}


def apply_remove(data, p):
    _, e = _elem_by_tag(data, p["tag"])
    return data if e is None else data[: e.at] + data[e.end :]


def sample_header_flip(rng, data):
    a, _ = _pixel_region(data)
    return {"n": int(_pick(rng, (1, 2, 4, 8, 32))), "subseed": int(rng.integers(1 << 31)), "end": int(a)}


def _phi_spans(data: bytes) -> list[tuple[int, int]]:
    return [(e.at, e.end) for e in db.layout(data).elements if e.tag in PHI_TAGS]


def apply_header_flip(data, p):
    r = np.random.default_rng(p["subseed"])
    buf = bytearray(data)
    spans = _phi_spans(data)
    end = min(p["end"], len(buf))
    if end <= 0:
        return data
    for at in r.integers(0, end, p["n"]):
        if any(s <= at < t for s, t in spans):  # identity elements stay as they are (see PHI_TAGS)
            continue
        buf[at] = int(r.integers(0, 256))
    return bytes(buf)


def sample_insert(rng, data):
    kind = _pick(rng, ("private", "deep_sq", "many_items", "unterminated_sq", "huge_un"))
    return {"kind": kind, "depth": int(_pick(rng, (50, 500, 3000, 20000))), "subseed": int(rng.integers(1 << 31))}


def _nested_sq(depth: int, terminated: bool, implicit: bool) -> bytes:
    tag = struct.pack("<HH", 0x0009, 0x1010)
    head = tag + (b"" if implicit else b"SQ\x00\x00") + struct.pack("<I", db.UNDEFINED)
    item = struct.pack("<HHI", 0xFFFE, 0xE000, db.UNDEFINED)
    item_end = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    seq_end = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    opening = (head + item) * depth
    closing = (item_end + seq_end) * depth if terminated else b""
    return opening + closing


def apply_insert(data, p):
    lay = db.layout(data)
    if not lay.elements or lay.endian != "<":
        return data
    r = np.random.default_rng(p["subseed"])
    if p["kind"] == "private":
        vr = _pick(r, (b"LO", b"OB", b"SQ", b"UN", b"DS", b"US"))
        el = db.encode_element(0x00091010, vr, r.integers(0, 256, int(r.integers(0, 200))).astype(np.uint8).tobytes(),
                               implicit=lay.implicit)
    elif p["kind"] in ("deep_sq", "unterminated_sq"):
        el = _nested_sq(p["depth"], p["kind"] == "deep_sq", lay.implicit)
    elif p["kind"] == "many_items":
        tag = struct.pack("<HH", 0x0009, 0x1010)
        items = struct.pack("<HHI", 0xFFFE, 0xE000, 0) * p["depth"] * 10
        el = tag + (b"" if lay.implicit else b"SQ\x00\x00") + struct.pack("<I", len(items)) + items
    else:  # UN of undefined length holding garbage
        tag = struct.pack("<HH", 0x0009, 0x1010)
        el = (tag + (b"" if lay.implicit else b"UN\x00\x00") + struct.pack("<I", db.UNDEFINED)
              + r.integers(0, 256, 64).astype(np.uint8).tobytes())
    return db.insert_sorted(data, lay, el, 0x00091010)


def sample_splice(rng, data):
    return {"at": int(rng.integers(0, max(1, len(data)))), "n": int(_pick(rng, (1, 2, 7, 64, 1000))),
            "overwrite": bool(rng.random() < 0.5), "subseed": int(rng.integers(1 << 31))}


def apply_splice(data, p):
    r = np.random.default_rng(p["subseed"])
    blob = r.integers(0, 256, p["n"]).astype(np.uint8).tobytes()
    at = p["at"]
    if any(s <= at < t or s < at + p["n"] <= t for s, t in _phi_spans(data)):
        return data  # identity elements stay intact
    end = at + p["n"] if p["overwrite"] else at
    return data[:at] + blob + data[end:]


def sample_preamble(rng, data):
    return {"mode": _pick(rng, ("strip", "magic", "strip_meta", "zero_preamble_only"))}


def apply_preamble(data, p):
    if data[128:132] != b"DICM":
        return data
    if p["mode"] == "strip":
        return data[128:]
    if p["mode"] == "magic":
        return data[:128] + b"DICX" + data[132:]
    if p["mode"] == "strip_meta":
        lay = db.layout(data)
        return data[lay.dataset_at :]
    return data[132:]


# -- multi-frame (pydicom) ----------------------------------------------------------------------------
def _read(data: bytes):
    import warnings

    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data), force=True)


def _write(ds) -> bytes:
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue()


def sample_multiframe(rng, data):
    return {"op": _pick(rng, ("frames", "drop_item", "frame_pos", "no_shared", "frame_orient", "frame_slope",
                              "extra_item")),
            "value": _pick(rng, INTEGERS), "pos": _ds_list(rng, 3), "frame": int(rng.integers(0, 8)),
            "orient": _pick(rng, ORIENTATIONS)}


def apply_multiframe(data, p):
    try:
        return _apply_multiframe(data, p)
    except Exception:  # noqa: BLE001 - an earlier mutation left nothing pydicom can edit: bytes unchanged
        return data


def _apply_multiframe(data, p):
    ds = _read(data)
    per = ds.get("PerFrameFunctionalGroupsSequence")
    if "NumberOfFrames" not in ds:
        return data
    op = p["op"]
    if op == "frames":
        return _raw_is(ds, 0x00280008, p["value"])
    if per is None or not len(per):
        return data
    k = p["frame"] % len(per)
    item = per[k]
    if op == "drop_item":
        del per[k]
    elif op == "extra_item":
        per.append(copy.deepcopy(per[k]))
    elif op == "no_shared" and "SharedFunctionalGroupsSequence" in ds:
        del ds.SharedFunctionalGroupsSequence
    elif op == "frame_pos" and "PlanePositionSequence" in item:
        return _raw_in_item(ds, item.PlanePositionSequence[0], 0x00200032, p["pos"])
    elif op == "frame_orient":
        from pydicom.dataset import Dataset
        from pydicom.sequence import Sequence

        po = Dataset()
        item.PlaneOrientationSequence = Sequence([po])
        return _raw_in_item(ds, po, 0x00200037, p["orient"])
    elif op == "frame_slope":
        from pydicom.dataset import Dataset
        from pydicom.sequence import Sequence

        pvt = Dataset()
        item.PixelValueTransformationSequence = Sequence([pvt])
        pvt.RescaleIntercept = "0"
        return _raw_in_item(ds, pvt, 0x00281053, p["value"])
    return _write(ds)


def _raw_is(ds, tag: int, text: str) -> bytes:
    return _raw_in_item(ds, ds, tag, text)


def _raw_in_item(ds, item, tag: int, text: str) -> bytes:
    """Store ``text`` verbatim (no validation) as the value of ``tag`` in ``item`` and write ``ds``."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    value = text.encode("latin-1", "replace")
    if len(value) % 2:
        value += b" "
    vr = TAGS.get(tag, (b"LO", ""))[0].decode()
    item[Tag(tag)] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)  # type: ignore[index]
    try:
        return _write(ds)
    except Exception:  # noqa: BLE001 - pydicom may refuse to write it; then the value goes in unparsed
        item[Tag(tag)] = RawDataElement(Tag(tag), "UN", len(value), value, 0, False, True)  # type: ignore[index]
        return _write(ds)


# -- series mutators (pydicom, whole series) ------------------------------------------------------------
def _uid(rng) -> str:
    return "2.25." + str(int(rng.integers(1, 1 << 62)))


def sample_series(rng, n_files: int):
    op = _pick(rng, ("remove", "duplicate", "mixed_uid", "move", "orient", "mixed", "same_position", "tilt", "gap",
                     "jitter", "reverse", "squash"))
    return {
        "op": op, "slice": int(rng.integers(0, n_files)),
        "variant": int(rng.integers(0, 6)),
        "distance": float(_pick(rng, (1e3, -1e3, 1e6, 1e12, 1e300, 0.004, 0.5, -7.3, 30.0))),
        "angle_deg": float(_pick(rng, (0.01, 0.5, 5.0, 45.0, 89.9, 90.0, 180.0))),
        "count": int(rng.integers(1, 5)),
        "uid": _uid(rng),
        "subseed": int(rng.integers(1 << 31)),
    }


def _rotate(o, angle_deg: float):
    a = np.radians(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rot = rot @ np.array([[1, 0, 0], [0, np.cos(a / 3), -np.sin(a / 3)], [0, np.sin(a / 3), np.cos(a / 3)]])
    o = np.asarray(o, dtype=float)
    return [round(float(v), 8) for v in np.concatenate([rot @ o[:3], rot @ o[3:]])]


def _normal(ds) -> np.ndarray:
    o = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    return np.cross(o[:3], o[3:])


def apply_series(files: list[bytes], p) -> list[int | bytes]:
    """The series after the mutation: per output file, the index of an unchanged input file or new bytes."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's value checks on the edits
        return _apply_series(files, p)


def _apply_series(files: list[bytes], p) -> list[int | bytes]:
    dss = [_read(b) for b in files]
    out: list[int | bytes] = list(range(len(files)))
    k = p["slice"] % len(files)
    op = p["op"]
    r = np.random.default_rng(p["subseed"])

    def put(i, ds):
        out[i] = _write(ds)

    if op == "none":  # the series as it is (a "post" mutation then damages chosen files)
        return out
    if op == "remove":
        return out[:k] + out[k + 1 :]
    if op == "duplicate":
        ds = copy.deepcopy(dss[k])
        if p["variant"] % 3 >= 1:
            ds.SOPInstanceUID = p["uid"]
        if p["variant"] % 3 == 2:
            ds.ImagePositionPatient = [float(v) + float(n) * 0.004 for v, n in zip(ds.ImagePositionPatient, _normal(ds),
                                                                               strict=True)]
        return [*out, _write(ds)]
    if op == "mixed_uid":
        ds = dss[k]
        ds.SeriesInstanceUID = _pick(r, (p["uid"], "", ds.SeriesInstanceUID + ".1", "1.2"))
        put(k, ds)
    elif op == "move":
        ds = dss[k]
        n = _normal(ds) if p["variant"] % 2 == 0 else np.array([1.0, 0.3, 0.0])
        ds.ImagePositionPatient = [float(v) + float(c) * p["distance"] for v, c in zip(ds.ImagePositionPatient, n,
                                                                                      strict=True)]
        put(k, ds)
    elif op == "orient":
        ds = dss[k]
        o = [float(v) for v in ds.ImageOrientationPatient]
        v = p["variant"]
        if v <= 2:
            ds.ImageOrientationPatient = _rotate(o, p["angle_deg"])
        elif v == 3:
            ds.ImageOrientationPatient = [x * 2.0 for x in o]
        elif v == 4:
            ds.ImageOrientationPatient = [-x for x in o]
        else:
            ds.ImageOrientationPatient = o[:3] + o[:3]
        put(k, ds)
    elif op == "mixed":
        ds = dss[k]
        field = ("Rows", "PixelSpacing", "RescaleSlope", "BitsAllocated", "PixelRepresentation", "AcquisitionNumber")[
            p["variant"]]
        if field == "Rows":
            ds.Rows = int(ds.Rows) - 1
        elif field == "PixelSpacing":
            ds.PixelSpacing = [float(x) * 2 for x in ds.PixelSpacing]
        elif field == "RescaleSlope":
            ds.RescaleSlope = 0.5
        elif field == "BitsAllocated":
            ds.BitsAllocated = 8
        elif field == "PixelRepresentation":
            ds.PixelRepresentation = 1 - int(ds.get("PixelRepresentation", 0))
        else:
            ds.AcquisitionNumber = 7
        put(k, ds)
    elif op == "same_position":
        for i, ds in enumerate(dss):
            ds.ImagePositionPatient = list(dss[0].ImagePositionPatient)
            if p["variant"] % 2:
                ds.AcquisitionNumber = i + 1
            put(i, ds)
    elif op in ("tilt", "jitter", "squash", "reverse"):
        for i, ds in enumerate(dss):
            pos = np.array([float(v) for v in ds.ImagePositionPatient])
            o = np.array([float(v) for v in ds.ImageOrientationPatient])
            if op == "tilt":
                pos = pos + np.tan(np.radians(p["angle_deg"])) * (pos @ _normal(ds)) * o[3:]
            elif op == "jitter":
                pos = pos + _normal(ds) * r.normal(0, 0.3)
            elif op == "squash":
                pos = pos - _normal(ds) * (pos @ _normal(ds)) * (1 - 1e-3)
            else:
                ds.ImageOrientationPatient = [float(x) for x in -o]
            ds.ImagePositionPatient = [round(float(v), 6) for v in pos]
            put(i, ds)
    elif op == "gap":
        lo = 1 + min(k, len(files) - 3)
        return [b for i, b in enumerate(out) if not lo <= i < lo + p["count"]]
    return out


# -- registry -----------------------------------------------------------------------------------------
#: name -> (weight, sample(rng, data), apply(data, params))
SINGLE = {
    "value": (30, sample_value_mut, apply_value_mut),
    "length": (12, sample_length, apply_length),
    "vr": (8, sample_vr, apply_vr),
    "pixel_flip": (10, sample_pixel_flip, apply_pixel_flip),
    "truncate": (8, sample_truncate, apply_truncate),
    "duplicate": (6, sample_duplicate, apply_duplicate),
    "remove": (8, sample_remove, apply_remove),
    "header_flip": (6, sample_header_flip, apply_header_flip),
    "insert": (4, sample_insert, apply_insert),
    "splice": (5, sample_splice, apply_splice),
    "preamble": (3, sample_preamble, apply_preamble),
}
MULTIFRAME = {"multiframe": (1, sample_multiframe, apply_multiframe)}


def choose(rng, table: dict) -> str:
    names = list(table)
    w = np.array([table[n][0] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def apply_single(data: bytes, mutations: list[dict]) -> bytes:
    for m in mutations:
        table = MULTIFRAME if m["m"] in MULTIFRAME else SINGLE
        data = table[m["m"]][2](data, m["p"])
    return data
