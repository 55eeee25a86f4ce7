"""The one geometry module: affines, LPS/RAS, SimpleITK interop and resampling.

See ``surgtwin.core.types`` for the axis-order and affine conventions. Every conversion between
array indices, SimpleITK's (x, y, z) index order, LPS and RAS goes through here.
"""

from __future__ import annotations

import numpy as np

from surgtwin.core.errors import SurgtwinError

#: LPS <-> RAS flips the first two world axes (the matrix is its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: voxel sizes outside this range (mm) come from a damaged header, not from a scanner
MIN_SPACING_MM = 1e-6
MAX_SPACING_MM = 1e4


def apply_affine(affine: np.ndarray, points) -> np.ndarray:
    """Apply a 4x4 affine to (3,) or (N, 3) points."""
    p = np.asarray(points, dtype=np.float64)
    out = p.reshape(-1, 3) @ affine[:3, :3].T + affine[:3, 3]
    return out.reshape(p.shape)


def affine_from_dicom(
    orientation: np.ndarray, first_position: np.ndarray, pixel_spacing_rc: np.ndarray, slice_step: np.ndarray
) -> np.ndarray:
    """Build the (k, j, i) -> LPS affine of a DICOM slice stack.

    ``orientation``: ImageOrientationPatient (row cosine, then column cosine);
    ``pixel_spacing_rc``: PixelSpacing as (row spacing, column spacing);
    ``slice_step``: LPS vector (mm) from one slice's position to the next one's.
    """
    row_cos = np.asarray(orientation[:3], dtype=np.float64)
    col_cos = np.asarray(orientation[3:6], dtype=np.float64)
    a = np.eye(4)
    a[:3, 0] = slice_step
    a[:3, 1] = col_cos * float(pixel_spacing_rc[0])
    a[:3, 2] = row_cos * float(pixel_spacing_rc[1])
    a[:3, 3] = first_position
    return a


def affine_from_spacing_direction_origin(spacing_xyz, direction_xyz, origin) -> np.ndarray:
    """SimpleITK-style geometry (x, y, z order; direction as 9 numbers, row-major) -> our affine."""
    d = np.asarray(direction_xyz, dtype=np.float64).reshape(3, 3)
    m = d @ np.diag(np.asarray(spacing_xyz, dtype=np.float64))  # columns: x, y, z steps
    a = np.eye(4)
    a[:3, :3] = m[:, ::-1]  # our index order is (k, j, i) = (z, y, x)
    a[:3, 3] = origin
    return a


def spacing_direction_origin(affine: np.ndarray):
    """Our affine -> (spacing_xyz, direction_xyz as 9 numbers row-major, origin) for SimpleITK."""
    m = affine[:3, :3][:, ::-1]
    spacing = np.linalg.norm(m, axis=0)
    direction = m / spacing
    return tuple(float(s) for s in spacing), tuple(float(v) for v in direction.ravel()), tuple(
        float(v) for v in affine[:3, 3]
    )


def volume_from_sitk(image, *, modality: str | None = None, frame_of_reference_uid: str | None = None):
    """A SimpleITK image (which is LPS by convention) -> ``Volume`` without copying geometry guesses."""
    import SimpleITK as sitk

    from surgtwin.core.types import Volume

    if image.GetDimension() != 3:
        raise SurgtwinError(f"expected a 3D image, got {image.GetDimension()}D")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise SurgtwinError(
            f"expected a single-channel image, got {image.GetNumberOfComponentsPerPixel()} components"
        )
    check_sitk_geometry(image.GetSpacing(), image.GetDirection(), image.GetOrigin())
    affine = affine_from_spacing_direction_origin(image.GetSpacing(), image.GetDirection(), image.GetOrigin())
    return Volume(
        sitk.GetArrayFromImage(image), affine, frame_of_reference_uid=frame_of_reference_uid, modality=modality
    )


def check_sitk_geometry(spacing_xyz, direction, origin, dim: int = 3) -> None:
    """Refuse SimpleITK-style geometry that is not finite or is degenerate (zero or negative voxel
    size, directions that are not independent). ``direction``: dim x dim numbers, row-major; only
    the spatial 3 x 3 part is checked."""
    sp = np.asarray(spacing_xyz, dtype=np.float64)[:3]
    d = np.asarray(direction, dtype=np.float64).reshape(dim, dim)[:3, :3]
    o = np.asarray(origin, dtype=np.float64)[:3]
    if not (np.all(np.isfinite(sp)) and np.all(np.isfinite(d)) and np.all(np.isfinite(o))):
        raise SurgtwinError(f"the image geometry is not finite (voxel size {sp.tolist()}, origin {o.tolist()}, "
                            "or its directions hold NaN/inf)", hint="the header is damaged")
    if np.any(sp <= 0) or np.any(sp < MIN_SPACING_MM) or np.any(sp > MAX_SPACING_MM):
        raise SurgtwinError(f"the voxel size {sp.tolist()} mm is not from {MIN_SPACING_MM:g} to {MAX_SPACING_MM:g} mm",
                            hint="the header is damaged")
    norms = np.linalg.norm(d, axis=0)
    if np.any(norms < 1e-6) or abs(np.linalg.det(d)) < 1e-3 * float(np.prod(norms)):
        raise SurgtwinError("the image directions are singular (axes that are not independent)",
                            hint="the header is damaged")


def volume_to_sitk(volume):
    """``Volume`` -> SimpleITK image with the same LPS geometry."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(volume.array))
    spacing, direction, origin = spacing_direction_origin(volume.affine)
    img.SetSpacing(spacing)
    img.SetDirection(direction)
    img.SetOrigin(origin)
    return img


def lps_to_ras(points) -> np.ndarray:
    return apply_affine(LPS_TO_RAS, points)


def ras_to_lps(points) -> np.ndarray:
    return apply_affine(LPS_TO_RAS, points)


def resample_to(volume, reference, *, interpolation: str = "linear", default_value: float = 0.0):
    """Resample ``volume`` onto ``reference``'s grid (both ``Volume``s, same LPS world).

    ``interpolation``: "linear", "nearest" (use for label maps) or "bspline".
    Returns a new ``Volume`` (a ``LabelMap`` stays a ``LabelMap``).
    """
    import SimpleITK as sitk

    from surgtwin.core.types import LabelMap

    modes = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor, "bspline": sitk.sitkBSpline}
    if interpolation not in modes:
        raise SurgtwinError(f"unknown interpolation {interpolation!r}", hint=f"use one of {sorted(modes)}")
    if isinstance(volume, LabelMap) and interpolation != "nearest":
        interpolation = "nearest"
    moving = volume_to_sitk(volume)
    ref = volume_to_sitk(reference.with_array(np.zeros(reference.shape, dtype=np.uint8)))
    out = sitk.Resample(moving, ref, sitk.Transform(), modes[interpolation], default_value, moving.GetPixelID())
    from dataclasses import replace

    return replace(volume, array=sitk.GetArrayFromImage(out), affine=reference.affine.copy())


def resample_to_spacing(volume, spacing_mm, *, interpolation: str = "linear"):
    """Resample onto a grid with the same extent and directions but new (slice, row, column) spacing."""
    from surgtwin.core.types import Volume

    spacing_mm = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,))
    if np.any(spacing_mm <= 0):
        raise SurgtwinError(f"spacing must be positive, got {spacing_mm.tolist()}")
    old_sp = volume.spacing_mm
    extent = (np.asarray(volume.shape) - 1) * old_sp
    shape = tuple(int(n) for n in np.floor(extent / spacing_mm + 1e-6).astype(int) + 1)
    affine = volume.affine.copy()
    affine[:3, :3] = volume.direction * spacing_mm
    ref = Volume(np.zeros(shape, dtype=np.uint8), affine)
    return resample_to(volume, ref, interpolation=interpolation)


def orientation_code(affine: np.ndarray) -> str:
    """Three-letter LPS code of the (column, row, slice) axes, e.g. ``"LPS"`` for a plain axial CT."""
    letters = (("L", "R"), ("P", "A"), ("S", "I"))
    code = ""
    for col in (2, 1, 0):
        v = affine[:3, col]
        ax = int(np.argmax(np.abs(v)))
        code += letters[ax][0] if v[ax] > 0 else letters[ax][1]
    return code


def plane_name(orientation) -> str:
    """'axial', 'coronal', 'sagittal' or 'oblique' from ImageOrientationPatient."""
    n = np.cross(np.asarray(orientation[:3], float), np.asarray(orientation[3:6], float))
    ax = int(np.argmax(np.abs(n)))
    if abs(n[ax]) < 0.9:
        return "oblique"
    return ("sagittal", "coronal", "axial")[ax]
