"""Issue #12: every defect class the fuzzer found, as a small generated reproducer.

Each entry is a fuzz descriptor spelled out by hand (seed from the corpus + mutation + params;
``scripts/fuzz/inputs.py``), minimised from the campaign example that found it. The bytes are
generated at test time from the head sample / pydicom's test files / the bundled model's configs;
no patient-like data is stored. Every input must end as a success or a clean refusal (SurgtwinError
or a skipped file with its reason): no traceback, hang, memory error, silent wrong result, or
planted identity (fake PHI) in any output. Replay one by hand with
``python scripts/fuzz/fuzz.py --desc FILE`` (the descriptor as JSON).
"""

from __future__ import annotations

import pytest

from scripts.fuzz import campaign, seeds

ROWS, COLUMNS, BITS_STORED, NUMBER_OF_FRAMES = 0x00280010, 0x00280011, 0x00280101, 0x00280008
IMAGE_ORIENTATION, RESCALE_INTERCEPT, RESCALE_SLOPE = 0x00200037, 0x00281052, 0x00281053
TRANSFER_SYNTAX = 0x00020010


def value(tag: int, raw: bytes | str, pad: bool = False) -> dict:
    raw = raw.encode("latin-1") if isinstance(raw, str) else raw
    return {"m": "value", "p": {"tag": tag, "value": raw.hex(), "pad": pad}}


def dicom(seed: str, *mutations, context: str = "single", target: int = 0, entry: str = "folder", cli=False) -> dict:
    return {"kind": "dicom", "seed": seed, "context": context, "target": target, "mutations": list(mutations),
            "entry": entry, "cli": cli}


def series(seed: str, **op) -> dict:
    base = {"slice": 2, "variant": 0, "distance": 0.0, "angle_deg": 0.0, "count": 1, "uid": "2.25.1", "subseed": 1}
    return {"kind": "dicom", "seed": seed, "context": "series", "series_op": {**base, **op}, "entry": "folder",
            "cli": False}


def nifti(seed: str, *mutations, table=(), gz: str = "none") -> dict:
    return {"kind": "nifti", "seed": seed, "mutations": list(mutations), "table_mutations": list(table), "gz": gz}


def bundle(seed: str, *mutations) -> dict:
    return {"kind": "bundle", "seed": seed, "mutations": list(mutations)}


#: name -> descriptor (what it once did, and where, is in the comment above each)
REPRODUCERS = {
    # PanicException (pylibjpeg-rle's Rust panic, a BaseException) escaped load.py _read_decoded
    "rle_rows_too_small": dicom("head_rle", value(ROWS, b"\x02\x00")),
    # OverflowError in load.py output_dtype: 2**BitsStored with BitsStored = 8193
    "bits_stored_huge": dicom("head_evr", value(BITS_STORED, b"\x01\x20"), context="series", target=4),
    # an all-NaN volume accepted when RescaleIntercept is "nan"
    "rescale_intercept_nan": dicom("head_ivr", value(RESCALE_INTERCEPT, "nan "), context="series", target=4),
    "rescale_slope_inf": dicom("head_evr", value(RESCALE_SLOPE, "inf "), context="series", target=1),
    # RecursionError in header.py _walk/_skip_undefined (lean reader) on deeply nested sequences
    "deep_nested_sequence": dicom("head_evr", {"m": "insert", "p": {"kind": "deep_sq", "depth": 3000, "subseed": 1}}),
    # ValueError 'Maximum allowed size exceeded' in series.py _examine (np.arange over a 1e300 mm span)
    "slice_moved_1e300": series("head_ivr", op="move", distance=1e300, variant=4),
    # ValueError from float() in header.py _decode when the whole-file re-walk meets a lying length
    "orientation_length_65535": dicom("head_rle", {"m": "length", "p": {"tag": IMAGE_ORIENTATION, "length": 65535}},
                                      context="series", target=4),
    # pydicom's BytesLengthException escaped multiframe.py _base_header (a 1-byte US value, big endian)
    "bits_stored_one_byte_big_endian": dicom("pd_MR_small_bigendian", {"m": "length", "p": {"tag": BITS_STORED,
                                                                                             "length": 1}}),
    # hang in multiframe.py headers_from_dataset: one header per frame for NumberOfFrames = 2**31-1
    "number_of_frames_huge": dicom("head_enh", value(NUMBER_OF_FRAMES, "2147483647 ")),
    # PHI leak: pydicom's "Invalid value for VR UI: '<raw bytes>'" warning (stderr) and log record hold
    # PatientName/PatientID when TransferSyntaxUID's length lies; raised by the CLI's PHI guard reading
    # the file (core/phi.py values_from_file) with warnings and logging left on
    "transfer_syntax_length_lie_logs_phi": dicom("head_evr", {"m": "length", "p": {"tag": TRANSFER_SYNTAX, "length": 4116}},
                                                 cli=True),
    # OverflowError 'cannot convert float infinity to integer' in types.py LabelTable.from_json (a colour of
    # Infinity in the labels.json beside a label image)
    "label_table_color_infinity": nifti("labels_u8", table=[{"m": "value", "p": {
        "file": "labels.json", "path": ["labels", 0, "color", 0], "op": "set", "value": "Infinity"}}]),
    "label_table_value_infinity": nifti("labels_u8", table=[{"m": "value", "p": {
        "file": "labels.json", "path": ["labels", 0, "value"], "op": "set", "value": "Infinity"}}]),
    # RecursionError from json.loads in types.py LabelTable.load
    "label_table_deeply_nested": nifti("labels_u8", table=[{"m": "raw", "p": {
        "file": "labels.json", "edit": "deep_nesting", "frac": 0.5, "depth": 5000}}]),
    # hang (5.0 s in the long campaign; 3-4 s idle, 0.15 s undamaged) in `surgtwin info --json`: PatientComments'
    # VR damaged in two files, so pydicom reads the rest of each file as its value and the CLI's PHI guard
    # (core/phi.py scrub) compiles a regex alternation of ~1 MB of "identity values" for its outputs
    "cli_phi_guard_huge_values": {**series("head_evr", op="none"), "cli": True, "post": {
        "indices": [0, 1], "mutations": [{"m": "vr", "p": {"tag": 0x00104000, "vr": b"ds".hex()}}]}},
    # RecursionError from json.loads in bundle.py _read_json
    "bundle_deeply_nested_json": bundle("tiny", {"m": "raw", "p": {"file": "configs/inference.json",
                                                                   "edit": "deep_nesting", "frac": 0.5, "depth": 5000}}),
    # IndexError from torch's weights-only unpickler escaped bundle.py load_weights (build_network)
    "bundle_garbage_weights": bundle("tiny", {"m": "files", "p": {"edit": "garbage_weights", "subseed": 36}}),
    # hang: network_def.num_res_units = 1000 builds a huge UNet (no bound on network_def values)
    "bundle_num_res_units_1000": bundle("tiny", {"m": "network", "p": {"key": "num_res_units", "value": "1000"}}),
}


#: reproducers of slowness: the most seconds each may take (the same input undamaged takes ~0.15 s)
TIME_BUDGET_S = {"cli_phi_guard_huge_values": 2.0}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    work = tmp_path_factory.mktemp("fuzz-regressions")
    corpus = seeds.build_corpus(work / "corpus", bundles=True)
    jobs = [{"desc": {"id": name, **desc}} for name, desc in REPRODUCERS.items()]
    out = campaign.run_jobs(jobs, corpus=corpus.root, workdir=work / "workers", workers=2, timeout_s=5.0,
                            preload="torch,monai.networks.nets,surgtwin.services.pipeline")
    return {r["id"]: r for r in out}


@pytest.mark.parametrize("name", list(REPRODUCERS))
def test_fuzz_reproducer_is_handled(results, name):
    r = results[name]
    detail = {k: r.get(k) for k in ("cls", "exc_type", "message", "surgtwin_where", "where", "leaks") if r.get(k)}
    assert r["cls"] in ("success", "refusal"), detail
    assert not r.get("leaks"), detail
    if name in TIME_BUDGET_S:
        assert r["elapsed_s"] < TIME_BUDGET_S[name], detail | {"elapsed_s": r["elapsed_s"]}
