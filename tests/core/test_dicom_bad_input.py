"""Every class of bad input gets a SurgtwinError (or a refusal) naming the file and the reason."""

from __future__ import annotations

import os

import numpy as np
import pydicom
import pytest

import surgtwin
from surgtwin.core.dicom.scan import scan
from tests.dicom_factory import write_series


def _edit(path, **changes):
    ds = pydicom.dcmread(path)
    for k, v in changes.items():
        if v is None:
            delattr(ds, k)
        else:
            setattr(ds, k, v)
    ds.save_as(path, enforce_file_format=True)


def test_truncated_file_is_refused_naming_it(tmp_path):
    t = write_series(tmp_path / "s", shape=(4, 32, 32))
    victim = t.files[2]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) - 700])  # cut into the pixel data
    cands = surgtwin.find_series(tmp_path / "s")
    assert not cands[0].loadable
    assert victim.name in cands[0].refusal and "pixel data" in cands[0].refusal
    with pytest.raises(surgtwin.SurgtwinError, match=victim.name):
        surgtwin.load_volume(tmp_path / "s")


def test_truncated_compressed_file_fails_at_decode_naming_it(tmp_path):
    from pydicom.uid import RLELossless

    t = write_series(tmp_path / "s", shape=(3, 32, 32), compress=RLELossless)
    victim = t.files[1]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) - 400])
    with pytest.raises(surgtwin.SurgtwinError, match=victim.name):
        surgtwin.load_volume(tmp_path / "s")


def test_garbage_bytes_are_skipped_with_reason(tmp_path):
    write_series(tmp_path / "s", shape=(3, 8, 8))
    rng = np.random.default_rng(0)
    (tmp_path / "s" / "garbage.dcm").write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (tmp_path / "s" / "fake_dicm.dcm").write_bytes(b"\0" * 128 + b"DICM" + rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    (tmp_path / "s" / "tiny").write_bytes(b"abc")
    result = scan(tmp_path / "s")
    reasons = dict(result.skipped)
    assert {os.path.basename(p) for p in reasons} >= {"garbage.dcm", "fake_dicm.dcm", "tiny"}
    assert all(r for r in reasons.values())
    assert surgtwin.load_volume(tmp_path / "s").shape == (3, 8, 8)


def test_only_garbage_gives_clear_error(tmp_path):
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "x.dcm").write_bytes(b"\x01" * 4000)
    with pytest.raises(surgtwin.SurgtwinError, match="no DICOM image series found"):
        surgtwin.load_volume(tmp_path / "g")


def test_absurd_dimensions_refused_before_allocating(tmp_path):
    t = write_series(tmp_path / "s", shape=(2, 8, 8))
    for f in t.files:
        _edit(f, Rows=60000, Columns=60000)
    cands = surgtwin.find_series(tmp_path / "s")
    assert not cands[0].loadable and "absurd image size" in cands[0].refusal
    with pytest.raises(surgtwin.SurgtwinError, match="absurd"):
        surgtwin.load_volume(tmp_path / "s")


@pytest.mark.parametrize(
    "tag,needle",
    [
        ("ImagePositionPatient", "ImagePositionPatient"),
        ("ImageOrientationPatient", "ImageOrientationPatient"),
        ("PixelSpacing", "PixelSpacing"),
    ],
)
def test_missing_required_tag_names_file_and_tag(tmp_path, tag, needle):
    t = write_series(tmp_path / "s", shape=(3, 8, 8))
    _edit(t.files[1], **{tag: None})
    with pytest.raises(surgtwin.SurgtwinError) as exc:
        surgtwin.load_volume(tmp_path / "s")
    assert needle in str(exc.value) and t.files[1].name in str(exc.value)


def test_zero_rescale_slope_refused(tmp_path):
    t = write_series(tmp_path / "s", shape=(3, 8, 8))
    _edit(t.files[0], RescaleSlope=0)
    with pytest.raises(surgtwin.SurgtwinError, match="RescaleSlope"):
        surgtwin.load_volume(tmp_path / "s")


def test_non_orthogonal_orientation_refused(tmp_path):
    t = write_series(tmp_path / "s", shape=(3, 8, 8))
    for f in t.files:
        _edit(f, ImageOrientationPatient=[1, 0, 0, 0.5, 0.5, 0])
    with pytest.raises(surgtwin.SurgtwinError, match="orthogonal"):
        surgtwin.load_volume(tmp_path / "s")


def test_positions_not_on_a_line_refused(tmp_path):
    t = write_series(tmp_path / "s", shape=(5, 8, 8), shuffle=False)
    ds = pydicom.dcmread(t.files[2])
    p = [float(v) for v in ds.ImagePositionPatient]
    _edit(t.files[2], ImagePositionPatient=[p[0] + 7.0, p[1], p[2]])
    with pytest.raises(surgtwin.SurgtwinError, match="do not lie on one line"):
        surgtwin.load_volume(tmp_path / "s")


def test_missing_path_and_unsupported_output(tmp_path):
    with pytest.raises(surgtwin.SurgtwinError, match="no such file"):
        surgtwin.load_volume(tmp_path / "nope")
    t = write_series(tmp_path / "s", shape=(2, 8, 8))
    vol = surgtwin.load_volume(t.folder)
    with pytest.raises(surgtwin.SurgtwinError, match="unsupported output format"):
        surgtwin.save_volume(vol, tmp_path / "out.png")


def test_corrupt_nifti_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"\x1f\x8b" + b"\x00" * 100)
    with pytest.raises(surgtwin.SurgtwinError, match=r"bad.nii.gz: not a readable NIfTI/NRRD/MHA image") as exc:
        surgtwin.load_volume(bad)
    assert "sitk" not in str(exc.value) and ".cxx" not in str(exc.value)


def test_fifo_in_folder_does_not_hang(tmp_path):
    write_series(tmp_path / "s", shape=(3, 8, 8))
    os.mkfifo(tmp_path / "s" / "pipe.dcm")
    result = scan(tmp_path / "s")
    assert any(p.endswith("pipe.dcm") and "FIFO" in r for p, r in result.skipped)
    assert surgtwin.load_volume(tmp_path / "s").shape == (3, 8, 8)
    with pytest.raises(surgtwin.SurgtwinError, match="not a regular file"):
        surgtwin.load_volume(tmp_path / "s" / "pipe.dcm")
