"""CLI hardening: a bad input file or bundle ends in exit 2 and one line on stderr naming the file and
the reason (never a traceback); outputs are checked before any work; no output ever holds PHI."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from surgtwin.cli.main import main
from tests.core.seg_helpers import ball_ct, make_tiny_bundle
from tests.core.test_bundle_hardening import edit_json, rehash

PHI = {"PatientName": "DOE^JANE", "PatientID": "PID-483920", "PatientBirthDate": "19610412",
       "PatientAddress": "12 Elm Street"}
#: every spelling a leak could take
PHI_SPELLINGS = ("DOE^JANE", "DOE JANE", "JANE DOE", "PID-483920", "19610412", "1961-04-12", "12 Elm Street")


def write_ct(path, array=None, *, descrip: bytes = b""):
    """A CT-like NIfTI; ``descrip`` goes into the header's description (and aux_file) fields."""
    import SimpleITK as sitk

    from surgtwin.core.geometry import volume_to_sitk

    vol = ball_ct(shape=(24, 40, 36)) if array is None else ball_ct(shape=array.shape).with_array(array)
    if not descrip:
        sitk.WriteImage(volume_to_sitk(vol), str(path), useCompression=str(path).endswith(".gz"))
        return path
    raw = path.with_name("raw.nii")
    sitk.WriteImage(volume_to_sitk(vol), str(raw))
    data = bytearray(raw.read_bytes())
    data[148:228] = descrip[:80].ljust(80, b"\0")  # descrip
    data[228:252] = descrip[:24].ljust(24, b"\0")  # aux_file
    raw.unlink()
    if str(path).endswith(".gz"):
        import gzip

        path.write_bytes(gzip.compress(bytes(data)))
    else:
        path.write_bytes(bytes(data))
    return path


def assert_one_error_line(capsys, *needles):
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err + cap.out
    errors = [ln for ln in cap.err.splitlines() if ln.startswith("surgtwin: error:")]
    assert len(errors) == 1, cap.err
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0], cap


def truncated_ct(tmp_path, name="ct.nii.gz"):
    p = write_ct(tmp_path / name, ball_ct(shape=(24, 40, 36)).array.astype(np.float32)
                 + np.random.default_rng(0).normal(0, 50, (24, 40, 36)).astype(np.float32))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


# -- bad images -----------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["info", "convert", "segment"])
def test_truncated_nifti_exits_2_with_one_line(tmp_path, capsys, command):
    p = truncated_ct(tmp_path)
    argv = {"info": ["info", str(p)], "convert": ["convert", str(p), str(tmp_path / "o.nrrd")],
            "segment": ["segment", str(p), "--out", str(tmp_path / "l.nii.gz"), "--method", "classical"]}[command]
    assert main(argv) == 2
    line, cap = assert_one_error_line(capsys, str(p), "truncated")
    assert cap.err.strip() == line  # nothing else on stderr: refused before any progress output
    assert not (tmp_path / "o.nrrd").exists() and not (tmp_path / "l.nii.gz").exists()


def test_absurd_header_dims_exit_2(tmp_path, capsys):
    p = write_ct(tmp_path / "ct.nii")
    data = bytearray(p.read_bytes())
    struct.pack_into("<4h", data, 40, 3, 30000, 30000, 30000)
    p.write_bytes(bytes(data))
    assert main(["info", str(p)]) == 2
    assert_one_error_line(capsys, str(p), "voxels")


def test_nan_voxels_are_reported_not_zeroed(tmp_path, capsys):
    a = ball_ct(shape=(24, 40, 36)).array.astype(np.float32)
    a[3, 4, 5] = np.nan
    p = write_ct(tmp_path / "ct.nii.gz", a)
    assert main(["info", str(p), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)  # valid JSON: no bare NaN
    assert info["non_finite_voxels"] == 1 and all(np.isfinite(info["range"]))
    out = tmp_path / "labels.nii.gz"
    assert main(["segment", str(p), "--out", str(out), "--method", "classical"]) == 0
    assert "not numbers" in capsys.readouterr().out
    assert "not numbers" in " ".join(json.loads((tmp_path / "labels.json").read_text())["warnings"])


# -- outputs checked before any work --------------------------------------------------------------
@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if an input is loaded (the output must be refused first)."""
    import surgtwin.core.io

    def boom(*a, **k):
        raise AssertionError("the input was loaded before the output was checked")

    monkeypatch.setattr(surgtwin.core.io, "load_volume", boom)


@pytest.mark.parametrize(("out", "reason"), [("x.png", "unsupported label map format '.png'"),
                                              ("afile/x.nii.gz", "not a folder")])
def test_segment_refuses_bad_out_before_any_work(tmp_path, capsys, no_loading, out, reason):
    (tmp_path / "afile").write_text("x")
    p = write_ct(tmp_path / "ct.nii.gz")
    bundle = make_tiny_bundle(tmp_path / "bundle")
    assert main(["segment", str(p), "--out", str(tmp_path / out), "--bundle", str(bundle)]) == 2
    line, cap = assert_one_error_line(capsys, reason)
    assert cap.err.strip() == line


@pytest.mark.parametrize(("out", "reason"), [("x.png", "unsupported output format '.png'"),
                                              ("afile/x.nii.gz", "not a folder")])
def test_convert_refuses_bad_output_before_loading(tmp_path, capsys, no_loading, out, reason):
    (tmp_path / "afile").write_text("x")
    p = write_ct(tmp_path / "ct.nii.gz")
    assert main(["convert", str(p), str(tmp_path / out)]) == 2
    assert_one_error_line(capsys, reason)


def test_missing_input_is_refused_before_the_bundle_is_built(tmp_path, capsys):
    assert main(["segment", str(tmp_path / "nope.nii.gz"), "--out", str(tmp_path / "l.nii.gz"),
                 "--method", "classical"]) == 2
    assert_one_error_line(capsys, "nope.nii.gz", "no such file")


# -- bad bundles ----------------------------------------------------------------------------------
def _text_weights(root):
    (root / "models" / "model.pt").write_text("not weights\n")
    rehash(root)


BUNDLE_CASES = [
    ("num_channels", lambda r: edit_json(r, "metadata.json", lambda m: m["network_data_format"]["outputs"]["pred"]
                                     .update(num_channels="one")),
     "metadata.json", "num_channels must be a positive integer, got 'one'"),
    ("colour", lambda r: edit_json(r, "metadata.json", lambda m: m["surgtwin"].update(labels=[{"channel": 1, "color": "red"}])),
     "metadata.json", "color must be three integers"),
    ("postprocess", lambda r: edit_json(r, "metadata.json", lambda m: m["surgtwin"].update(postprocess=["a"])),
     "metadata.json", "surgtwin.postprocess must be a JSON object"),
    ("pred", lambda r: edit_json(r, "metadata.json", lambda m: m["network_data_format"]["outputs"].update(pred=[1])),
     "metadata.json", "outputs.pred must be a JSON object"),
    ("text_weights", _text_weights, "model.pt", "not a PyTorch weights file"),
    ("channels_tb", lambda r: edit_json(r, "inference.json", lambda d: d["network_def"].update(channels=[4, 8, 10**9])),
     "inference.json", "network_def.channels[2]"),
    ("channels_big", lambda r: edit_json(r, "inference.json", lambda d: d["network_def"].update(channels=[4, 8, 99_999])),
     "inference.json", "far larger than its weights file"),
]


@pytest.mark.parametrize(("case", "breaks", "file", "reason"), BUNDLE_CASES, ids=[c[0] for c in BUNDLE_CASES])
def test_bad_bundle_exits_2_before_loading_the_image(tmp_path, capsys, no_loading, case, breaks, file, reason):
    root = make_tiny_bundle(tmp_path / "bundle")
    breaks(root)
    p = write_ct(tmp_path / "ct.nii.gz")
    assert main(["segment", str(p), "--out", str(tmp_path / "l.nii.gz"), "--bundle", str(root), "--device", "cpu"]) == 2
    line, cap = assert_one_error_line(capsys, file, reason)
    assert cap.err.strip() == line


def test_unexpected_errors_are_one_line_too(tmp_path, capsys, monkeypatch):
    import surgtwin.cli.commands.info as info

    def bug(args):
        raise ValueError("something broke\nsecond line")

    monkeypatch.setattr(info, "run", bug)
    assert main(["info", str(tmp_path)]) == 1
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err and cap.err.count("\n") == 1 and "internal error: ValueError" in cap.err


# -- PHI ------------------------------------------------------------------------------------------
def assert_no_phi(*texts):
    for t in texts:
        for s in PHI_SPELLINGS:
            assert s.lower() not in t.lower(), (s, t[:2000])


PHI_TEXT = b"DOE^JANE PID-483920 19610412 12 Elm Street"


def test_no_phi_from_a_nifti_description_in_any_output(tmp_path, capsys):
    p = write_ct(tmp_path / "ct.nii.gz", descrip=PHI_TEXT)
    texts = []
    for argv in (["info", str(p)], ["info", str(p), "--json"], ["convert", str(p), str(tmp_path / "c.nii.gz")],
                 ["segment", str(p), "--out", str(tmp_path / "l.nii.gz"), "--method", "classical"]):
        assert main(argv) == 0
        cap = capsys.readouterr()
        texts += [cap.out, cap.err]
    texts.append((tmp_path / "l.json").read_text())
    import gzip

    texts.append(gzip.decompress((tmp_path / "c.nii.gz").read_bytes()).decode("latin-1"))  # convert drops it
    bad = write_ct(tmp_path / "bad.nii.gz", descrip=PHI_TEXT)
    bad.write_bytes(bad.read_bytes()[:400])
    assert main(["info", str(bad)]) == 2
    cap = capsys.readouterr()
    texts += [cap.out, cap.err]
    assert_no_phi(*texts)


def test_no_phi_from_bundle_metadata_in_any_output(tmp_path, capsys):
    root = make_tiny_bundle(tmp_path / "bundle")
    edit_json(root, "metadata.json", lambda m: m.update(description=PHI_TEXT.decode(), authors=PHI_TEXT.decode(),
                                                    copyright=PHI_TEXT.decode()))
    p = write_ct(tmp_path / "ct.nii.gz", descrip=PHI_TEXT)
    assert main(["segment", str(p), "--out", str(tmp_path / "l.nii.gz"), "--bundle", str(root), "--device", "cpu"]) == 0
    cap = capsys.readouterr()
    texts = [cap.out, cap.err, (tmp_path / "l.json").read_text()]
    edit_json(root, "metadata.json", lambda m: m["surgtwin"].update(postprocess=["x"]))  # and when it is refused
    assert main(["segment", str(p), "--out", str(tmp_path / "m.nii.gz"), "--bundle", str(root)]) == 2
    cap = capsys.readouterr()
    assert_no_phi(*texts, cap.out, cap.err)


def _phi_series(folder):
    import pydicom

    from tests.dicom_factory import write_series

    truth = write_series(folder, shape=(6, 16, 14))
    for f in truth.files:
        ds = pydicom.dcmread(f)
        for k, v in PHI.items():
            setattr(ds, k, v)
        ds.SeriesDescription = "CT DOE^JANE"  # free text holding a name: info lists it
        ds.save_as(f)
    return truth


def test_no_phi_from_dicom_in_info_and_convert(tmp_path, capsys):
    truth = _phi_series(tmp_path / "dcm")
    texts = []
    for argv in (["info", str(truth.folder)], ["info", str(truth.folder), "--json"],
                 ["convert", str(truth.folder), str(tmp_path / "c.nii.gz")],
                 ["info", str(truth.files[0])]):
        assert main(argv) == 0
        cap = capsys.readouterr()
        texts += [cap.out, cap.err]
    assert "[redacted]" in texts[0]  # the series description was scrubbed, the rest kept
    assert_no_phi(*texts)


def test_error_naming_a_dicom_file_is_scrubbed_of_its_values(tmp_path, capsys, monkeypatch):
    """Whatever a core message quotes (raw bytes, a patient value), the CLI prints it scrubbed."""
    import surgtwin.cli.commands.info as info
    from surgtwin.core.errors import SurgtwinError

    truth = _phi_series(tmp_path / "dcm")
    victim = truth.files[0]

    def leaky(args):
        raise SurgtwinError("bad PatientName 'Jane Doe' (b'DOE^JANE\\x00'), born 1961-04-12, id PID-483920",
                            path=victim)

    monkeypatch.setattr(info, "run", leaky)
    assert main(["info", str(tmp_path / "dcm")]) == 2
    line, cap = assert_one_error_line(capsys, str(victim), "PatientName")
    assert_no_phi(cap.out, cap.err)


def test_phi_scrub_helpers():
    from surgtwin.core.phi import PHI_KEYWORDS, PhiGuard, redact_raw_bytes, scrub

    assert {"PatientName", "PatientID", "PatientBirthDate", "PatientAddress", "OtherPatientIDs",
            "ReferringPhysicianName", "InstitutionName", "AccessionNumber"} <= set(PHI_KEYWORDS)
    text = "DOE^JANE / Jane Doe / DOE, JANE / 12.04.1961 / PID-483920 / 12 elm street / liver"
    out = scrub(text, PHI.values())
    assert_no_phi(out)
    assert out.count("[redacted]") == 6 and out.endswith("/ liver")
    assert scrub("PID-4839201", PHI.values()) == "PID-4839201"  # a longer ID is another ID
    assert redact_raw_bytes("value b'ABC\\'D' and b\"x\" kept: bob'") == "value b'…' and b'…' kept: bob'"
    g = PhiGuard(["F", "DOE^JANE"])  # too short to scrub: "F"
    assert g.scrub("F: JANE") == "F: [redacted]"
