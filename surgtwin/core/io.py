"""Reading and writing volumes: DICOM folders/files, NIfTI, NRRD, MHA — all into the same LPS ``Volume``."""

from __future__ import annotations

import os
from pathlib import Path

from surgtwin.core.errors import SurgtwinError

#: suffixes read through SimpleITK (which converts NIfTI's RAS to LPS itself)
ITK_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


def is_itk_file(path: Path) -> bool:
    """Whether ``path`` has a suffix read through SimpleITK (NIfTI, NRRD, MetaImage)."""
    name = path.name.lower()
    return any(name.endswith(s) for s in ITK_SUFFIXES)


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


def _load_itk(p: Path):
    import SimpleITK as sitk

    from surgtwin.core.geometry import volume_from_sitk

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
        img = reader.Execute()
    except SurgtwinError:
        raise
    except RuntimeError as exc:
        raise SurgtwinError(_itk_reason(exc), path=p) from None
    if img.GetDimension() == 4:
        img = img[:, :, :, 0]
    try:
        vol = volume_from_sitk(img)
    except SurgtwinError as exc:
        raise SurgtwinError(exc.reason, path=p) from None
    vol.metadata.update({"source": p.suffix.lower().lstrip("."), "path": str(p)})
    return vol


def _itk_reason(exc: Exception) -> str:
    """A one-line reason from a SimpleITK exception (whose first line is only a source location)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    msg = next((ln.split("ERROR:", 1)[1].strip() for ln in lines if "ERROR:" in ln), lines[-1] if lines else "")
    if "Unable to determine ImageIO reader" in msg:
        return "not a readable NIfTI/NRRD/MHA image (unknown format or corrupt header)"
    return f"cannot read image ({msg[:200]})"


def save_volume(volume, path) -> Path:
    """Write a Volume as NIfTI (.nii/.nii.gz), NRRD or MHA, atomically (temp file + rename)."""
    import SimpleITK as sitk

    from surgtwin.core.geometry import volume_to_sitk

    p = Path(path)
    if not is_itk_file(p):
        raise SurgtwinError("unsupported output format", path=p, hint="use .nii.gz, .nrrd or .mha")
    p.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(p.suffixes[-2:]) if p.name.lower().endswith(".nii.gz") else p.suffix
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}{suffix}")
    try:
        sitk.WriteImage(volume_to_sitk(volume), str(tmp), useCompression=True)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except RuntimeError as exc:
        raise SurgtwinError(f"cannot write image ({str(exc).strip().splitlines()[-1][:200]})", path=p) from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return p
