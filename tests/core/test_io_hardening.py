"""NIfTI/NRRD hardening: truncated, NaN-holding, absurd or degenerate files are refused (or kept
exact) with a reason naming the file, never loaded silently wrong. Every reproducer is generated."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.io import check_output_path, load_volume, nifti_header

# NIfTI-1 header offsets (little endian, as SimpleITK writes it)
DIM, PIXDIM, QFORM_CODE, QUATERN, SROW, DESCRIP = 40, 76, 252, 256, 280, 148


def write_nifti(path, array, spacing=(1.0, 1.0, 1.0)):
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(array)
    img.SetSpacing(spacing)
    sitk.WriteImage(img, str(path), useCompression=str(path).endswith(".gz"))
    return path


def patched(tmp_path, name, edits, shape=(4, 5, 6)):
    """A small uncompressed NIfTI-1 with header bytes changed by ``edits(header_bytearray)``."""
    p = write_nifti(tmp_path / "base.nii", np.zeros(shape, np.int16), spacing=(1.0, 2.0, 3.0))
    data = bytearray(p.read_bytes())
    edits(data)
    out = tmp_path / name
    out.write_bytes(bytes(data))
    return out


def noisy(shape=(40, 50, 60), dtype=np.float32):
    return np.random.default_rng(0).normal(0, 300, shape).astype(dtype)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_truncated_nifti_is_refused(tmp_path, suffix):
    p = write_nifti(tmp_path / f"ct{suffix}", noisy())
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])  # cut in half: SimpleITK would load it zero-filled
    with pytest.raises(SurgtwinError, match="truncated") as ei:
        load_volume(p)
    assert str(p) in str(ei.value) and "60 x 50 x 40" in str(ei.value)


def test_nifti_cut_inside_the_header_or_corrupt_is_refused(tmp_path):
    p = write_nifti(tmp_path / "ct.nii.gz", noisy())
    data = p.read_bytes()
    short = tmp_path / "short.nii.gz"
    short.write_bytes(data[:60])
    with pytest.raises(SurgtwinError, match="truncated|NIfTI") as ei:
        load_volume(short)
    assert "short.nii.gz" in str(ei.value)
    bad = bytearray(data)
    for i in range(len(bad) // 3, len(bad) // 3 + 64):
        bad[i] ^= 0x5A
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(bytes(bad))
    with pytest.raises(SurgtwinError, match="corrupt|truncated") as ei:
        load_volume(corrupt)
    assert "corrupt.nii.gz" in str(ei.value)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nifti_keeps_nan_and_inf(tmp_path, suffix, dtype):
    a = noisy(dtype=dtype)
    a[3, 4, 5] = np.nan
    a[-1, 0, 7] = -np.inf
    a[20, 49, 59] = np.inf
    vol = load_volume(write_nifti(tmp_path / f"ct{suffix}", a))
    assert np.isnan(vol.array[3, 4, 5])
    assert vol.array[-1, 0, 7] == -np.inf and vol.array[20, 49, 59] == np.inf
    assert int((~np.isfinite(vol.array)).sum()) == 3
    np.testing.assert_array_equal(vol.array[np.isfinite(a)], a[np.isfinite(a)])


def test_nan_in_nifti_reaches_the_segmentation_warning(tmp_path):
    from surgtwin.core.segmentation import segment
    from tests.core.seg_helpers import ball_ct

    ct = ball_ct(shape=(30, 40, 36))
    a = ct.array.astype(np.float32)
    a[5, 6, 7] = np.nan
    vol = load_volume(write_nifti(tmp_path / "ct.nii.gz", a))
    from dataclasses import replace

    res = segment(replace(vol, modality="CT"), method="classical")
    assert any("not numbers" in w for w in res.warnings), res.warnings


def test_nibabel_nifti_with_nan_scaling_fields_still_loads(tmp_path):
    nib = pytest.importorskip("nibabel")
    a = np.arange(4 * 5 * 6, dtype=np.float32).reshape(6, 5, 4)  # nibabel: x, y, z
    a[1, 2, 3] = np.nan
    p = tmp_path / "nb.nii.gz"
    nib.save(nib.Nifti1Image(a, np.diag([-2.0, -3.0, 4.0, 1.0])), str(p))  # scl_slope = NaN means "none"
    vol = load_volume(p)
    assert np.isnan(vol.array[3, 2, 1]) and int(np.isnan(vol.array).sum()) == 1
    np.testing.assert_allclose(vol.spacing_mm, [4.0, 3.0, 2.0])


def test_absurd_nifti_dims_are_refused_before_allocation(tmp_path):
    p = patched(tmp_path, "huge.nii", lambda b: struct.pack_into("<4h", b, DIM, 3, 30000, 30000, 30000))
    with pytest.raises(SurgtwinError, match="30000 x 30000 x 30000 voxels") as ei:
        load_volume(p)
    assert "huge.nii" in str(ei.value)
    p = patched(tmp_path, "neg.nii", lambda b: struct.pack_into("<4h", b, DIM, 3, -5, 5, 6))
    with pytest.raises(SurgtwinError, match="dim"):
        load_volume(p)


def test_absurd_nifti2_dims_are_refused(tmp_path):
    """NIfTI-2 holds 64-bit dims: 100000^3 voxels is refused from the header alone."""
    h = bytearray(540)
    struct.pack_into("<i", h, 0, 540)
    h[4:12] = b"n+2\0\r\n\x1a\n"
    struct.pack_into("<hh", h, 12, 4, 16)
    struct.pack_into("<8q", h, 16, 3, 100000, 100000, 100000, 1, 1, 1, 1)
    struct.pack_into("<8d", h, 104, 1.0, 1.0, 1.0, 1.0, 0, 0, 0, 0)
    struct.pack_into("<q", h, 168, 544)
    p = tmp_path / "huge2.nii"
    p.write_bytes(bytes(h) + bytes(4) + bytes(64))
    with pytest.raises(SurgtwinError, match="100000 x 100000 x 100000 voxels"):
        load_volume(p)
    with pytest.raises(SurgtwinError, match="huge2.nii"):
        nifti_header(p)


@pytest.mark.parametrize(("name", "edit", "reason"), [
    ("pixdim_nan", lambda b: struct.pack_into("<f", b, PIXDIM + 4, float("nan")), "pixdim .* not finite"),
    ("pixdim_inf", lambda b: struct.pack_into("<f", b, PIXDIM + 8, float("inf")), "pixdim .* not finite"),
    ("pixdim_zero_no_xform", lambda b: (struct.pack_into("<hh", b, QFORM_CODE, 0, 0),
                                        struct.pack_into("<f", b, PIXDIM + 4, 0.0)), "pixdim .* must be positive"),
    ("sform_nan", lambda b: struct.pack_into("<12f", b, SROW, *[float("nan")] * 12), "sform .* not finite"),
    ("sform_singular", lambda b: (struct.pack_into("<hh", b, QFORM_CODE, 0, 1),
                                  struct.pack_into("<12f", b, SROW, *[0.0] * 12)), "sform .* singular"),
    ("sform_coplanar", lambda b: (struct.pack_into("<hh", b, QFORM_CODE, 0, 1),
                                  struct.pack_into("<12f", b, SROW, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0)),
     "sform .* singular"),
    ("qform_nan", lambda b: (struct.pack_into("<hh", b, QFORM_CODE, 1, 0),
                             struct.pack_into("<3f", b, QUATERN, *[float("nan")] * 3)), "qform .* not finite"),
    ("qform_huge_voxel", lambda b: (struct.pack_into("<hh", b, QFORM_CODE, 1, 0),
                                    struct.pack_into("<f", b, PIXDIM + 4, 1e30)), "voxel size"),
])
def test_nonfinite_or_singular_nifti_geometry_is_refused(tmp_path, name, edit, reason):
    p = patched(tmp_path, f"{name}.nii", edit)
    with pytest.raises(SurgtwinError, match=reason) as ei:
        load_volume(p)
    assert f"{name}.nii" in str(ei.value)


@pytest.mark.parametrize(("direction", "reason"), [
    ("0,0,0", "not finite|voxel size"), ("0,1,0", "singular"), ("1e30,0,0", "voxel size"),
])
def test_degenerate_nrrd_geometry_is_refused(tmp_path, direction, reason):
    hdr = ("NRRD0004\ntype: short\ndimension: 3\nsizes: 4 5 6\nspace: left-posterior-superior\n"
           f"space directions: ({direction}) (0,1,0) (0,0,1)\nspace origin: (0,0,0)\nencoding: raw\n"
           "endian: little\n\n")
    p = tmp_path / "bad.nrrd"
    p.write_bytes(hdr.encode() + np.zeros(120, "<i2").tobytes())
    with pytest.raises(SurgtwinError, match=reason) as ei:
        load_volume(p)
    assert "bad.nrrd" in str(ei.value)


def test_valid_nifti_still_loads_with_its_geometry(tmp_path):
    a = noisy((6, 7, 8), np.int16)
    vol = load_volume(write_nifti(tmp_path / "ok.nii.gz", a, spacing=(0.7, 0.8, 2.5)))
    np.testing.assert_array_equal(vol.array, a)
    np.testing.assert_allclose(vol.spacing_mm, [2.5, 0.8, 0.7], rtol=1e-6)


def test_check_output_path_refuses_before_any_work(tmp_path):
    with pytest.raises(SurgtwinError, match="unsupported output format '.png'"):
        check_output_path(tmp_path / "x.png")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SurgtwinError, match="not a folder"):
        check_output_path(tmp_path / "afile" / "sub" / "x.nii.gz")
    (tmp_path / "d.nii.gz").mkdir()
    with pytest.raises(SurgtwinError, match="is a folder"):
        check_output_path(tmp_path / "d.nii.gz")
    out = check_output_path(tmp_path / "new" / "x.nii.gz")
    assert not out.parent.exists()  # nothing is created by the check
