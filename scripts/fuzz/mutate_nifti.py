"""NIfTI-1 mutators: header fields (dims, datatype, pixdim, vox_offset, scaling, qform/sform, magic),
endianness, extensions, truncation, data bytes, and gzip wrapping. Same ``sample``/``apply`` contract
as ``mutate_dicom``; the descrip/aux_file fields (planted identity) are never rewritten."""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np

#: field -> (offset, struct format of one element, count)
FIELDS = {
    "sizeof_hdr": (0, "i", 1), "dim_info": (39, "B", 1), "dim": (40, "h", 8), "intent_code": (68, "h", 1),
    "datatype": (70, "h", 1), "bitpix": (72, "h", 1), "pixdim": (76, "f", 8), "vox_offset": (108, "f", 1),
    "scl_slope": (112, "f", 1), "scl_inter": (116, "f", 1), "xyzt_units": (123, "B", 1), "cal_max": (124, "f", 1),
    "qform_code": (252, "h", 1), "sform_code": (254, "h", 1), "quatern": (256, "f", 3), "qoffset": (268, "f", 3),
    "srow_x": (280, "f", 4), "srow_y": (296, "f", 4), "srow_z": (312, "f", 4), "magic": (344, "4s", 1),
}
WEIGHTS = {"dim": 8, "datatype": 5, "bitpix": 3, "pixdim": 8, "vox_offset": 5, "scl_slope": 4, "scl_inter": 2,
           "qform_code": 3, "sform_code": 3, "quatern": 5, "qoffset": 4, "srow_x": 3, "srow_y": 2, "srow_z": 2,
           "magic": 2, "sizeof_hdr": 2, "dim_info": 1, "intent_code": 1, "xyzt_units": 1, "cal_max": 1}
INTS = (0, -1, 1, 2, 3, 4, 5, 7, 8, 255, 256, 1000, 4096, 30000, 32767, -32768)
DATATYPES = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2304, 9999, -1)
FLOATS = (math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-30, 1e30, -1.0, 3.4e38, 1e-45, 352.0, 351.0, 1e9, 2.5, -2.5,
          0.5, 1.5)
MAGICS = (b"n+1\x00", b"ni1\x00", b"n+2\x00", b"\x00\x00\x00\x00", b"xyz\x00", b"n+1x")


def _value(rng, field: str):
    fmt = FIELDS[field][1]
    if field == "datatype":
        return int(DATATYPES[int(rng.integers(len(DATATYPES)))])
    if field == "magic":
        return MAGICS[int(rng.integers(len(MAGICS)))].hex()
    if fmt == "f":
        return float(FLOATS[int(rng.integers(len(FLOATS)))]) if rng.random() < 0.8 else float(rng.normal(0, 1e3))
    if fmt == "B":
        return int(rng.integers(0, 256))
    if field == "sizeof_hdr":
        return int((348, 540, 0, -348, 1543569408, 349)[int(rng.integers(6))])
    return int(INTS[int(rng.integers(len(INTS)))])


def sample_field(rng, data):
    names = list(WEIGHTS)
    w = np.array([WEIGHTS[n] for n in names], dtype=float)
    field = names[int(rng.choice(len(names), p=w / w.sum()))]
    count = FIELDS[field][2]
    return {"field": field, "index": int(rng.integers(count)), "value": _value(rng, field)}


def apply_field(data, p):
    off, fmt, _ = FIELDS[p["field"]]
    value = p["value"]
    if fmt == "4s":
        raw = bytes.fromhex(value)
    else:
        size = struct.calcsize(fmt)
        off += p["index"] * size
        if fmt == "f":
            raw = struct.pack("<f", value) if math.isnan(value) or abs(value) < 3.5e38 else struct.pack(
                "<f", math.copysign(math.inf, value))
        elif fmt == "B":
            raw = struct.pack("<B", value & 0xFF)
        elif fmt == "h":
            raw = struct.pack("<h", max(-32768, min(32767, value)))
        else:
            raw = struct.pack("<i", max(-(2**31), min(2**31 - 1, value)))
    return data[:off] + raw + data[off + len(raw):]


def sample_dims(rng, data):
    """Whole dim[] rewrites: huge volumes, 4D/5D, zeros, more voxels than the file holds."""
    choices = ([3, 30000, 30000, 30000], [3, 2000, 2000, 200], [4, 36, 40, 12, 3], [5, 36, 40, 12, 1, 2], [3, 0, 40, 12],
               [3, 36, 40, 13], [7, 36, 40, 12, 1, 1, 1, 1], [2, 36, 40], [1, 1000], [3, 1, 1, 1], [8, 1, 1, 1, 1, 1, 1, 1],
               [3, -36, 40, 12], [3, 32767, 32767, 32767])
    dims = choices[int(rng.integers(len(choices)))]
    return {"dim": [int(x) for x in dims]}


def apply_dims(data, p):
    d = (p["dim"] + [1] * 8)[:8]
    return data[:40] + struct.pack("<8h", *d) + data[56:]


def sample_endian(rng, data):
    return {"mode": ("swap_sizeof", "swap_all_ints")[int(rng.integers(2))]}


def apply_endian(data, p):
    out = bytearray(data)
    out[0:4] = struct.pack(">i", 348)
    if p["mode"] == "swap_all_ints":
        dims = struct.unpack_from("<8h", data, 40)
        out[40:56] = struct.pack(">8h", *dims)
    return bytes(out)


def sample_extension(rng, data):
    return {"esize": int((0, 8, 7, 16, 2**31 - 1, -16, 1 << 20, 352)[int(rng.integers(8))]),
            "ecode": int((0, 2, 4, 6, 32, 40, -1)[int(rng.integers(7))]), "fix_offset": bool(rng.random() < 0.5)}


def apply_extension(data, p):
    ext = struct.pack("<ii", p["esize"], p["ecode"]) + b"\x00" * 8
    out = data[:348] + b"\x01\x00\x00\x00" + ext + data[352:]
    if p["fix_offset"]:
        out = out[:108] + struct.pack("<f", 352.0 + len(ext)) + out[112:]
    return out


def sample_truncate(rng, data):
    return {"at": int(rng.integers(0, len(data))) if rng.random() < 0.7 else int(rng.integers(0, 360))}


def apply_truncate(data, p):
    return data[: p["at"]]


def sample_data_flip(rng, data):
    return {"n": int((1, 16, 256)[int(rng.integers(3))]), "subseed": int(rng.integers(1 << 31)),
            "value": ("random", "nan", "ff")[int(rng.integers(3))]}


def apply_data_flip(data, p):
    r = np.random.default_rng(p["subseed"])
    buf = bytearray(data)
    if len(buf) <= 356:
        return data
    for at in r.integers(352, len(buf) - 4, p["n"]):
        if p["value"] == "nan":
            buf[at : at + 4] = struct.pack("<f", math.nan)
        else:
            buf[at] = 0xFF if p["value"] == "ff" else int(r.integers(0, 256))
    return bytes(buf)


#: name -> (weight, sample(rng, data), apply(data, params))
MUTATORS = {
    "field": (40, sample_field, apply_field),
    "dims": (8, sample_dims, apply_dims),
    "endian": (3, sample_endian, apply_endian),
    "extension": (4, sample_extension, apply_extension),
    "truncate": (6, sample_truncate, apply_truncate),
    "data_flip": (5, sample_data_flip, apply_data_flip),
}


def apply(data: bytes, mutations: list[dict]) -> bytes:
    for m in mutations:
        try:
            data = MUTATORS[m["m"]][2](data, m["p"])
        except (struct.error, IndexError, ValueError):
            continue  # an earlier truncation left too few bytes for this one: unchanged
    return data


def wrap(data: bytes, gz: str) -> tuple[bytes, str]:
    """(bytes, suffix): plain ``.nii``, gzip ``.nii.gz``, a truncated gzip, or non-gzip bytes named ``.nii.gz``."""
    if gz == "none":
        return data, ".nii"
    if gz == "gzip":
        return gzip.compress(data, mtime=0), ".nii.gz"
    if gz == "gzip_truncated":
        z = gzip.compress(data, mtime=0)
        return z[: len(z) * 2 // 3], ".nii.gz"
    return data, ".nii.gz"  # "plain_named_gz"
