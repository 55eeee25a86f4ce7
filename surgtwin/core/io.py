"""Reading and writing volumes: DICOM folders/files, NIfTI, NRRD, MHA — all into the same LPS ``Volume``.

NIfTI files are checked here before SimpleITK reads them, because its NIfTI reader is silent where
surgtwin must not be: a truncated ``.nii.gz`` loads zero-filled, NaN voxels become 0, a NaN or zero
``pixdim`` becomes 1 mm and absurd ``dim`` values are allocated. :func:`nifti_header` reads and checks
the header (NIfTI-1 and NIfTI-2, either byte order) with the standard library; :func:`_load_itk` then
streams the voxel data once (bounded memory) to check that it is all there and to count non-finite
voxels, and after SimpleITK has read the image puts those non-finite values back, so that the
segmentation's "non-finite voxels" warning fires for NIfTI as it does for the other formats.
"""

from __future__ import annotations

import math
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from surgtwin.core.errors import SurgtwinError

#: suffixes read through SimpleITK (which converts NIfTI's RAS to LPS itself)
ITK_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
#: the largest image surgtwin reads, in voxels (e.g. 1024 x 1024 x 2048); a header asking for more is
#: refused before anything is allocated
MAX_VOXELS = 1 << 31
#: bytes per streamed chunk of voxel data (the checks hold at most about two of these in memory)
_CHUNK = 1 << 22

#: NIfTI datatype code -> (name, bytes per voxel, numpy float type for the non-finite scan or None)
NIFTI_DATATYPES = {
    2: ("uint8", 1, None), 4: ("int16", 2, None), 8: ("int32", 4, None), 16: ("float32", 4, "f4"),
    32: ("complex64", 8, None), 64: ("float64", 8, "f8"), 128: ("rgb24", 3, None), 256: ("int8", 1, None),
    512: ("uint16", 2, None), 768: ("uint32", 4, None), 1024: ("int64", 8, None), 1280: ("uint64", 8, None),
    1792: ("complex128", 16, None), 2304: ("rgba32", 4, None),
}


def is_itk_file(path: Path) -> bool:
    """Whether ``path`` has a suffix read through SimpleITK (NIfTI, NRRD, MetaImage)."""
    name = path.name.lower()
    return any(name.endswith(s) for s in ITK_SUFFIXES)


def is_nifti_file(path: Path) -> bool:
    name = Path(path).name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def check_output_path(path, suffixes=ITK_SUFFIXES, *, what: str = "output") -> Path:
    """Refuse an output path before any work is done: an unsupported suffix, a folder, a file or
    folder that cannot be written. Creates nothing (missing parent folders are made when writing)."""
    p = Path(path)
    name = p.name.lower()
    if not any(name.endswith(s) for s in suffixes):
        raise SurgtwinError(f"unsupported {what} format {(''.join(p.suffixes) or '(no suffix)')!r}", path=p,
                            hint=f"use {', '.join(suffixes)}")
    if p.is_dir():
        raise SurgtwinError(f"the {what} is a folder", path=p, hint="name a file")
    if p.exists():
        if not os.access(p, os.W_OK):
            raise SurgtwinError(f"the {what} file exists and is not writable", path=p)
    parent = p.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise SurgtwinError(f"cannot create the {what}: {parent} is not a folder", path=p)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SurgtwinError(f"cannot write the {what}: the folder {parent} is not writable", path=p)
    return p


def atomic_write(path, write) -> Path:
    """``write(tmp)`` to a temporary sibling of ``path``, fsync it and rename it onto ``path``: a crash
    or an error leaves the old file (or none), never half of the new one; the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_volume(path, *, series_uid: str | None = None, allow_resample: bool = True, progress=None, cancel=None):
    """Load a ``Volume`` from a DICOM folder (series with the most slices, or ``series_uid``), a DICOM
    file, or a NIfTI/NRRD/MHA file. Geometry is LPS mm; CT values are HU."""
    p = Path(path)
    if not p.exists():
        raise SurgtwinError("no such file or folder", path=p)
    if p.is_file() and is_itk_file(p):
        return _load_itk(p)
    from surgtwin.core.dicom import load_series

    return load_series(p, series_uid=series_uid, allow_resample=allow_resample, progress=progress, cancel=cancel)


# -- NIfTI header and voxel-data checks ------------------------------------------------------------
@dataclass
class NiftiHeader:
    """The fields of a NIfTI-1/2 header that the checks need (array order: x, y, z, t, ...)."""

    version: int
    endian: str  # "<" or ">"
    dims: tuple[int, ...]
    datatype: int
    itemsize: int
    vox_offset: int
    pixdim: tuple[float, ...]
    scl_slope: float
    scl_inter: float
    qform_code: int
    sform_code: int
    quatern: tuple[float, ...]  # b, c, d, then qoffset x, y, z
    srow: tuple[float, ...]  # 12 numbers, rows x, y, z

    @property
    def n_voxels(self) -> int:
        return math.prod(self.dims)

    @property
    def data_end(self) -> int:
        """Bytes the file must hold (uncompressed): header, extensions and every voxel."""
        return self.vox_offset + self.n_voxels * self.itemsize


def _read_head(p: Path, n: int) -> bytes:
    try:
        return b"".join(_blocks(p, n))
    except zlib.error as exc:
        raise SurgtwinError(f"not a readable NIfTI/NRRD/MHA image (the compressed data is corrupt: {_short(exc)})",
                            path=p) from None
    except OSError as exc:
        raise SurgtwinError(f"cannot read the file ({exc.strerror or exc})", path=p) from None


def nifti_header(path) -> NiftiHeader:
    """Read and check a NIfTI-1/2 header; raise ``SurgtwinError`` naming the field at fault."""
    p = Path(path)
    head = _read_head(p, 540)
    if len(head) < 348:
        raise SurgtwinError(f"the file is truncated: {len(head)} bytes, shorter than a NIfTI header", path=p)
    for endian in ("<", ">"):
        size = struct.unpack_from(endian + "i", head, 0)[0]
        if size in (348, 540):
            break
    else:
        raise SurgtwinError("not a readable NIfTI/NRRD/MHA image (no NIfTI-1/2 header: its first four bytes "
                            "are not a NIfTI header size)", path=p)
    if size == 540 and len(head) < 540:
        raise SurgtwinError("the file is truncated: it ends inside the NIfTI-2 header", path=p)
    e = endian
    if size == 348:
        dim = struct.unpack_from(e + "8h", head, 40)
        datatype = struct.unpack_from(e + "h", head, 70)[0]
        pixdim = struct.unpack_from(e + "8f", head, 76)
        vox_offset_f, slope, inter = struct.unpack_from(e + "3f", head, 108)
        qcode, scode = struct.unpack_from(e + "2h", head, 252)
        quatern = struct.unpack_from(e + "6f", head, 256)
        srow = struct.unpack_from(e + "12f", head, 280)
        if not math.isfinite(vox_offset_f) or vox_offset_f != int(vox_offset_f):
            raise SurgtwinError(f"NIfTI header: vox_offset = {vox_offset_f!r} is not a whole number of bytes", path=p)
        vox_offset = int(vox_offset_f)
    else:
        datatype = struct.unpack_from(e + "h", head, 12)[0]
        dim = struct.unpack_from(e + "8q", head, 16)
        pixdim = struct.unpack_from(e + "8d", head, 104)
        vox_offset = struct.unpack_from(e + "q", head, 168)[0]
        slope, inter = struct.unpack_from(e + "2d", head, 176)
        qcode, scode = struct.unpack_from(e + "2i", head, 344)
        quatern = struct.unpack_from(e + "6d", head, 352)
        srow = struct.unpack_from(e + "12d", head, 400)
    ndim = dim[0]
    if not 1 <= ndim <= 7:
        raise SurgtwinError(f"NIfTI header: dim[0] = {ndim}, the number of dimensions must be 1 to 7", path=p)
    dims = tuple(int(d) for d in dim[1:ndim + 1])
    if any(d < 1 for d in dims):
        raise SurgtwinError(f"NIfTI header: dim = {list(dims)}, every size must be at least 1", path=p)
    if datatype not in NIFTI_DATATYPES:
        raise SurgtwinError(f"NIfTI header: datatype {datatype} is not a supported voxel type", path=p)
    hdr = NiftiHeader(1 if size == 348 else 2, e, dims, datatype, NIFTI_DATATYPES[datatype][1],
                      vox_offset, tuple(pixdim), slope, inter, qcode, scode, tuple(quatern), tuple(srow))
    check_voxel_count(hdr.dims, p, hdr.itemsize)
    if vox_offset < size:
        raise SurgtwinError(f"NIfTI header: vox_offset = {vox_offset} points into the header", path=p)
    _check_nifti_geometry(hdr, p)
    return hdr


def _check_nifti_geometry(h: NiftiHeader, p: Path) -> None:
    """Refuse a header whose voxel-to-world mapping is not finite or is degenerate (SimpleITK would
    replace a NaN/zero voxel size by 1 mm without a word)."""
    import numpy as np

    n_spatial = min(3, len(h.dims))
    spacing = h.pixdim[1:1 + n_spatial]
    if not all(math.isfinite(v) for v in spacing):
        raise SurgtwinError(f"NIfTI header: pixdim (voxel size) {list(spacing)} is not finite", path=p)
    if h.sform_code > 0:
        m = np.asarray(h.srow, dtype=np.float64).reshape(3, 4)
        if not np.all(np.isfinite(m)):
            raise SurgtwinError("NIfTI header: the sform (srow_x/y/z) holds values that are not finite", path=p)
        _check_matrix(m[:, :3], "NIfTI header: the sform (srow_x/y/z)", p)
    if h.qform_code > 0:
        if not all(math.isfinite(v) for v in h.quatern):
            raise SurgtwinError("NIfTI header: the qform (quatern_b/c/d, qoffset_x/y/z) is not finite", path=p)
    if h.sform_code <= 0 and any(v <= 0 for v in spacing):
        raise SurgtwinError(f"NIfTI header: pixdim (voxel size) {list(spacing)} must be positive", path=p,
                            hint="the voxel size is unknown; fix the header with the tool that wrote it")


def _check_matrix(m, what: str, p: Path) -> None:
    """Refuse a voxel-to-world 3x3 matrix with a zero or (nearly) coplanar column."""
    import numpy as np

    from surgtwin.core.geometry import MAX_SPACING_MM, MIN_SPACING_MM

    norms = np.linalg.norm(m, axis=0)
    if np.any(norms <= 0) or abs(np.linalg.det(m)) <= 1e-6 * float(np.prod(norms)):
        raise SurgtwinError(f"{what} is singular (a zero voxel size or axes that are not independent)", path=p)
    if np.any(norms > MAX_SPACING_MM) or np.any(norms < MIN_SPACING_MM):
        raise SurgtwinError(f"{what} gives voxel sizes {np.round(norms, 6).tolist()} mm, not a body scan", path=p)


def check_voxel_count(dims, p: Path, itemsize: int = 1) -> None:
    """Refuse image sizes that could not be a scan before anything is allocated."""
    n = math.prod(int(d) for d in dims)
    if n > MAX_VOXELS:
        raise SurgtwinError(f"the header describes {' x '.join(str(int(d)) for d in dims)} voxels ({n:.3g}), far "
                            f"more than surgtwin reads ({MAX_VOXELS:.3g})", path=p, hint="the header is damaged")
    need = n * itemsize
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        mem = 0
    if mem and need > mem:
        raise SurgtwinError(f"the image needs {need / 2**30:.1f} GiB of memory, more than this computer has "
                            f"({mem / 2**30:.1f} GiB)", path=p)


def nifti_scan(path, hdr: NiftiHeader, patch=None) -> int:
    """Stream the voxel data once: refuse a truncated or corrupt file, and return how many voxels are
    not finite (float types). With ``patch`` (the flat, C-ordered array SimpleITK read), write those
    voxels' values (scaled by scl_slope/scl_inter as SimpleITK does) into it."""
    import numpy as np

    p = Path(path)
    ftype = NIFTI_DATATYPES[hdr.datatype][2]
    if not is_gzip(p):
        size = p.stat().st_size
        if size < hdr.data_end:
            raise _truncated(p, hdr, size)
        if ftype is None:
            return 0
    dt = None if ftype is None else np.dtype(hdr.endian + ftype)
    slope, inter = hdr.scl_slope, hdr.scl_inter
    if not math.isfinite(slope) or slope == 0:
        slope, inter = 1.0, 0.0
    pos = 0  # bytes of the (uncompressed) file read so far
    index = 0  # voxels scanned so far
    carry = b""
    n_bad = 0
    try:
        for chunk in _blocks(p, hdr.data_end):
            start = max(0, hdr.vox_offset - pos)
            pos += len(chunk)
            if dt is None or start >= len(chunk):
                continue
            buf = carry + chunk[start:]
            n = len(buf) // dt.itemsize
            vals = np.frombuffer(buf, dt, n)
            bad = np.flatnonzero(~np.isfinite(vals))
            if bad.size:
                n_bad += int(bad.size)
                if patch is not None:
                    patch[index + bad] = vals[bad].astype(np.float64) * slope + inter
            index += n
            carry = buf[n * dt.itemsize:]
    except zlib.error as exc:
        raise SurgtwinError(f"the compressed data is corrupt ({_short(exc)})", path=p,
                            hint="the file was damaged in transfer; copy it again") from None
    except OSError as exc:
        raise SurgtwinError(f"cannot read the file ({exc.strerror or exc})", path=p) from None
    if pos < hdr.data_end:
        raise _truncated(p, hdr, pos)
    return n_bad


def _blocks(p: Path, limit: int):
    """The file's first ``limit`` bytes, decompressed when it is gzip, in blocks of at most ``_CHUNK``
    bytes (bounded memory). A stream that is cut short just ends; corrupt data raises ``zlib.error``."""
    with open(p, "rb") as fh:
        if fh.read(2) != b"\x1f\x8b":
            fh.seek(0)
            got = 0
            while got < limit:
                b = fh.read(min(_CHUNK, limit - got))
                if not b:
                    return
                got += len(b)
                yield b
            return
        fh.seek(0)
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        got = 0
        while got < limit:
            buf = fh.read(1 << 20)
            if not buf:
                return
            while buf and got < limit:
                out = d.decompress(buf, min(_CHUNK, limit - got))
                got += len(out)
                if out:
                    yield out
                if d.eof:  # end of one gzip member; a concatenated file goes on with the next
                    buf = d.unused_data
                    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                else:
                    buf = d.unconsumed_tail


def is_gzip(p: Path) -> bool:
    with open(p, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _truncated(p: Path, hdr: NiftiHeader, got: int) -> SurgtwinError:
    what = "uncompressed data" if is_gzip(p) else "file"
    return SurgtwinError(
        f"the file is truncated: its header describes {' x '.join(map(str, hdr.dims))} voxels of "
        f"{NIFTI_DATATYPES[hdr.datatype][0]} ({hdr.data_end} bytes) but the {what} ends after {got} bytes",
        path=p, hint="the file was cut short (an interrupted copy or download); copy it again")


# -- SimpleITK -------------------------------------------------------------------------------------
def _load_itk(p: Path):
    import SimpleITK as sitk

    from surgtwin.core.geometry import check_sitk_geometry, volume_from_sitk

    hdr = None
    n_nonfinite = 0
    if is_nifti_file(p):
        hdr = nifti_header(p)
        n_nonfinite = nifti_scan(p, hdr)
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(p))
        reader.ReadImageInformation()
        dim = reader.GetDimension()
        size = reader.GetSize()
        if dim == 4 and size[3] == 1:
            pass
        elif dim != 3:
            raise SurgtwinError(f"expected a 3D image, the file holds a {dim}D image of size {size}", path=p)
        check_voxel_count(size, p, max(1, reader.GetNumberOfComponents()))
        check_sitk_geometry(reader.GetSpacing()[:3], reader.GetDirection(), reader.GetOrigin(), dim)
        img = reader.Execute()
    except SurgtwinError as exc:
        raise SurgtwinError(exc.reason, path=p, hint=exc.hint) from None
    except RuntimeError as exc:
        if hdr is not None and hdr.version == 2:
            raise SurgtwinError("NIfTI-2 files cannot be read by the installed SimpleITK", path=p,
                                hint="save the image as NIfTI-1 (nibabel: nib.Nifti1Image), NRRD or MHA") from None
        raise SurgtwinError(_itk_reason(exc), path=p) from None
    if img.GetDimension() == 4:
        img = img[:, :, :, 0]
    try:
        vol = volume_from_sitk(img)
    except SurgtwinError as exc:
        raise SurgtwinError(exc.reason, path=p) from None
    if n_nonfinite and vol.array.dtype.kind == "f":
        # SimpleITK's NIfTI reader turns NaN/inf into 0: put them back where the file has them (its
        # buffer keeps the file's voxel order, x fastest, which is our C order)
        import numpy as np

        arr = np.ascontiguousarray(vol.array)
        if arr is not vol.array:
            from dataclasses import replace

            vol = replace(vol, array=arr)
        nifti_scan(p, hdr, patch=arr.reshape(-1))
    vol.metadata.update({"source": p.suffix.lower().lstrip("."), "path": str(p)})
    return vol


def _short(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _itk_reason(exc: Exception) -> str:
    """A one-line reason from a SimpleITK exception (whose first line is only a source location)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    msg = next((ln.split("ERROR:", 1)[1].strip() for ln in lines if "ERROR:" in ln), lines[-1] if lines else "")
    msg = re.sub(r"\b\w+\(0x[0-9a-fA-F]+\):\s*", "", msg)  # "NrrdImageIO(0x55...): " says nothing to a user
    if "Unable to determine ImageIO reader" in msg:
        return "not a readable NIfTI/NRRD/MHA image (unknown format or corrupt header)"
    return f"cannot read image ({msg[:200]})"


def save_volume(volume, path) -> Path:
    """Write a Volume as NIfTI (.nii/.nii.gz), NRRD or MHA, atomically (temp file + rename)."""
    import SimpleITK as sitk

    from surgtwin.core.geometry import volume_to_sitk

    p = check_output_path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SurgtwinError(f"cannot create the output folder ({exc.strerror or exc})", path=p.parent) from None
    suffix = "".join(p.suffixes[-2:]) if p.name.lower().endswith(".nii.gz") else p.suffix
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}{suffix}")
    try:
        sitk.WriteImage(volume_to_sitk(volume), str(tmp), useCompression=True)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except RuntimeError as exc:
        raise SurgtwinError(f"cannot write image ({str(exc).strip().splitlines()[-1][:200]})", path=p) from None
    except OSError as exc:
        raise SurgtwinError(f"cannot write image ({exc.strerror or exc})", path=p) from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return p
