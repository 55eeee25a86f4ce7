"""Writes small but real DICOM series with pydicom for tests: odd geometry, odd encodings, bad files.

Every series is built from a known truth (HU array + LPS geometry) so tests can check the loader
against it and against SimpleITK.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

_PREFIX = "1.2.826.0.1.3680043.8.498."


def uid(*parts) -> str:
    return generate_uid(prefix=_PREFIX, entropy_srcs=[str(p) for p in parts])


@dataclass
class SeriesTruth:
    folder: Path
    files: list[Path]
    hu: np.ndarray  # (slice, row, column) in the loader's sorted order (ascending along the normal)
    positions: np.ndarray  # (n, 3) LPS of each slice's first voxel, in that order
    orientation: tuple
    pixel_spacing: tuple  # (row spacing, column spacing)
    series_uid: str


def phantom_hu(n: int, rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """A smooth, asymmetric test pattern in HU (so flips and shifts show)."""
    k, j, i = np.meshgrid(np.arange(n), np.arange(rows), np.arange(cols), indexing="ij")
    rng = np.random.default_rng(seed)
    base = -1000 + 1040 * (((j - rows / 2) ** 2 + (i - cols / 2) ** 2) < (0.4 * min(rows, cols)) ** 2)
    base = base + 300 * np.exp(-(((i - 0.7 * cols) ** 2 + (j - 0.3 * rows) ** 2) / (0.02 * rows * cols)))
    base = base + 10 * k + rng.integers(-20, 20, size=(n, rows, cols))
    return base.astype(np.int16)


def _dataset(series_uid, study_uid, for_uid, sop_uid, ts, sop_class=CTImageStorage) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ts
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = for_uid
    ds.PatientName = "PHANTOM^TEST"
    ds.PatientID = "PHANTOM-TEST"
    ds.StudyDate = "20260101"
    ds.Modality = "CT"
    ds.SeriesNumber = 3
    ds.SeriesDescription = "test series"
    return ds


def write_series(
    folder: Path,
    *,
    shape=(12, 24, 20),
    pixel_spacing=(0.8, 0.7),
    slice_spacing=2.0,
    orientation=(1, 0, 0, 0, 1, 0),
    origin=(-10.0, -20.0, 30.0),
    tilt_deg: float = 0.0,
    positions_mm: list[float] | None = None,
    ts=ExplicitVRLittleEndian,
    compress: str | None = None,
    unsigned: bool = False,
    slope: float = 1.0,
    intercept: float = -1024.0,
    seed: int = 0,
    name: str = "s",
    image_type=("ORIGINAL", "PRIMARY", "AXIAL"),
    acquisition_numbers: list[int] | None = None,
    shuffle: bool = True,
    hu: np.ndarray | None = None,
) -> SeriesTruth:
    """Write a single-frame series. ``positions_mm``: custom offsets along the slice direction."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n, rows, cols = shape
    hu = phantom_hu(n, rows, cols, seed) if hu is None else hu
    o = np.asarray(orientation, dtype=float)
    row_cos, col_cos = o[:3], o[3:]
    normal = np.cross(row_cos, col_cos)
    # gantry tilt: slices shift along the column direction as they advance (a shear about the row axis)
    step_dir = normal + np.tan(np.radians(tilt_deg)) * col_cos
    offs = np.arange(n) * slice_spacing if positions_mm is None else np.asarray(positions_mm, float)
    positions = np.asarray(origin, float) + np.outer(offs, step_dir)
    series_uid = uid(name, seed, "series")
    study_uid, for_uid = uid(name, "study"), uid(name, "for")
    order = np.random.default_rng(seed + 1).permutation(n) if shuffle else np.arange(n)
    files = []
    for k in order:
        sop = uid(name, seed, "sop", int(k))
        ds = _dataset(series_uid, study_uid, for_uid, sop, ts)
        ds.ImageType = list(image_type)
        ds.InstanceNumber = int(k) + 1
        if acquisition_numbers is not None:
            ds.AcquisitionNumber = int(acquisition_numbers[k])
        ds.ImagePositionPatient = [round(float(v), 6) for v in positions[k]]
        ds.ImageOrientationPatient = [round(float(v), 8) for v in o]
        ds.PixelSpacing = [float(pixel_spacing[0]), float(pixel_spacing[1])]
        ds.SliceThickness = float(slice_spacing)
        if tilt_deg:
            ds.GantryDetectorTilt = float(tilt_deg)
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16 if not unsigned else 12
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 0 if unsigned else 1
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        stored = np.rint((hu[k].astype(np.float64) - intercept) / slope)
        stored = stored.astype(np.uint16 if unsigned else np.int16)
        if ts == ExplicitVRBigEndian:
            stored = stored.byteswap()
        ds.PixelData = stored.tobytes()
        if compress:
            ds.compress(compress, stored if ts != ExplicitVRBigEndian else stored.byteswap())
        path = folder / f"{name}_{int(k):04d}.dcm"
        ds.save_as(path, enforce_file_format=True, little_endian=ts != ExplicitVRBigEndian,
                   implicit_vr=ts == ImplicitVRLittleEndian)
        files.append(path)
    truth_hu = (np.rint((hu.astype(np.float64) - intercept) / slope) * slope + intercept)
    # the loader sorts ascending along the normal
    s = positions @ normal
    idx = np.argsort(s, kind="stable")
    return SeriesTruth(folder, files, truth_hu[idx], positions[idx], tuple(o), tuple(pixel_spacing), series_uid)


def write_enhanced_ct(path: Path, *, shape=(6, 16, 18), spacing=(2.5, 0.9, 0.8), seed=0) -> SeriesTruth:
    """One Enhanced CT multi-frame file with per-frame positions in functional groups (frames in reverse order)."""
    n, rows, cols = shape
    hu = phantom_hu(n, rows, cols, seed)
    ts = ExplicitVRLittleEndian
    sop = uid("enh", seed)
    ds = _dataset(uid("enh", "series"), uid("enh", "study"), uid("enh", "for"), sop, ts, EnhancedCTImageStorage)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.InstanceNumber = 1
    ds.NumberOfFrames = n
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    orient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = [spacing[1], spacing[2]]
    pm.SliceThickness = spacing[0]
    shared.PixelMeasuresSequence = Sequence([pm])
    po = Dataset()
    po.ImageOrientationPatient = orient
    shared.PlaneOrientationSequence = Sequence([po])
    pvt = Dataset()
    pvt.RescaleIntercept, pvt.RescaleSlope, pvt.RescaleType = -1024, 1, "HU"
    shared.PixelValueTransformationSequence = Sequence([pvt])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames, stack = [], []
    positions = []
    for f in range(n):
        k = n - 1 - f  # frames stored top-down: the loader must sort them
        item = Dataset()
        pp = Dataset()
        pos = [-5.0, -6.0, 40.0 + k * spacing[0]]
        pp.ImagePositionPatient = pos
        item.PlanePositionSequence = Sequence([pp])
        frames.append(item)
        stack.append((hu[k].astype(np.int32) + 1024).astype(np.int16))
        positions.append(pos)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.PixelData = np.stack(stack).tobytes()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    pos_sorted = np.array(sorted(positions, key=lambda p: p[2]))
    return SeriesTruth(path.parent, [path], hu.astype(np.float64), pos_sorted, tuple(orient),
                       (spacing[1], spacing[2]), str(ds.SeriesInstanceUID))


def reread(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(path)


# --- byte-level mutation of real files (hardening tests: corrupt headers that pydicom will not write) ---

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def head_slices(dst: Path, n: int | None = None, start: int = 0) -> list[Path]:
    """Copies of ``n`` consecutive slices of the bundled head sample (RLE-compressed CT) in ``dst``."""
    import shutil

    from surgtwin import resources

    src = sorted((resources.sample_root() / "head" / "dicom").glob("*.dcm"))
    src = src[start:] if n is None else src[start : start + n]
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(f, dst / f.name)) for f in src]


def find_element(data: bytes, tag: int) -> tuple[int, int, int] | None:
    """(element start, header length, value length) of a top-level element of an explicit VR little
    endian Part 10 file, or None. Walks the elements before Pixel Data; sequences must have defined
    length or end with a sequence delimiter."""
    import struct

    pos = 132
    while pos + 8 <= len(data):
        g, e = struct.unpack_from("<HH", data, pos)
        vr = data[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            length, hdr = struct.unpack_from("<I", data, pos + 8)[0], 12
        else:
            length, hdr = struct.unpack_from("<H", data, pos + 6)[0], 8
        t = (g << 16) | e
        if t == tag:
            return pos, hdr, length
        if t >= tag or t == 0x7FE00010:
            return None
        if length == 0xFFFFFFFF:
            end = data.index(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", pos + hdr)
            pos = end + 8
        else:
            pos += hdr + length
    return None


def set_raw_element(path: Path, tag: int, value: bytes, *, vr: bytes | None = None, length: int | None = None) -> None:
    """Write ``tag`` as raw bytes into an explicit VR little endian file (replacing or inserting it):
    any value, any VR, and a ``length`` field that may lie about the value's size."""
    import struct

    data = Path(path).read_bytes()
    found = find_element(data, tag)
    if found is not None:
        pos, hdr, old_len = found
        old_vr = data[pos + 4 : pos + 6]
        end = pos + hdr + old_len
    else:
        pos = 132
        while True:  # insertion point: first top-level element with a larger tag
            g, e = struct.unpack_from("<HH", data, pos)
            if ((g << 16) | e) > tag:
                break
            probe = find_element(data, (g << 16) | e)
            pos = probe[0] + probe[1] + probe[2]
        old_vr, end = None, pos
    vr = vr or old_vr
    if vr is None:
        raise ValueError("vr is needed to insert a new element")
    n = len(value) if length is None else length
    if vr in _LONG_VRS:
        header = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr + b"\0\0" + struct.pack("<I", n)
    else:
        header = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr + struct.pack("<H", n & 0xFFFF)
    Path(path).write_bytes(data[:pos] + header + value + data[end:])
