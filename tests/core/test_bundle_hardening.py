"""Bundle hardening: every field the loader uses is type- and range-checked and refused by name;
weights that are not a state dict and networks far larger than their weights are refused before
anything is built. Each reproducer edits a freshly made tiny bundle."""

from __future__ import annotations

import hashlib
import json

import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.segmentation import load_bundle
from tests.core.seg_helpers import make_tiny_bundle


def edit_json(root, name, fn):
    p = root / "configs" / name
    d = json.loads(p.read_text())
    fn(d)
    p.write_text(json.dumps(d))


def pred(m):
    return m["network_data_format"]["outputs"]["pred"]


def rehash(root):
    w = root / "models" / "model.pt"
    edit_json(root, "metadata.json", lambda m: m["surgtwin"].update(weights_sha256=hashlib.sha256(w.read_bytes()).hexdigest()))


META_CASES = [
    ("num_channels_word", lambda m: pred(m).update(num_channels="one"),
     "network_data_format.outputs.pred.num_channels must be a positive integer, got 'one'"),
    ("num_channels_bool", lambda m: pred(m).update(num_channels=True), "outputs.pred.num_channels"),
    ("num_channels_huge", lambda m: pred(m).update(num_channels=10**12), "outputs.pred.num_channels"),
    ("in_channels_word", lambda m: m["network_data_format"]["inputs"]["image"].update(num_channels="one"),
     "inputs.image.num_channels must be a positive integer"),
    ("pred_list", lambda m: m["network_data_format"]["outputs"].update(pred=["a", "b"]),
     "network_data_format.outputs.pred must be a JSON object"),
    ("image_string", lambda m: m["network_data_format"]["inputs"].update(image="CT"),
     "network_data_format.inputs.image must be a JSON object"),
    ("outputs_list", lambda m: m["network_data_format"].update(outputs=[]), "network_data_format.outputs"),
    ("ndf_string", lambda m: m.update(network_data_format="x"), "network_data_format must be a JSON object"),
    ("channel_def_value", lambda m: pred(m)["channel_def"].update({"1": 7}), "channel_def.1 must be a non-empty string"),
    ("channel_def_key", lambda m: pred(m).update(channel_def={"zero": "bg"}), "channel_def keys must be channel numbers"),
    ("modality_list", lambda m: m["network_data_format"]["inputs"]["image"].update(modality=["CT"]), "modality"),
    ("colour_word", lambda m: m["surgtwin"].update(labels=[{"channel": 1, "color": "red"}]),
     r"surgtwin.labels\[0\].color must be three integers 0-255"),
    ("colour_range", lambda m: m["surgtwin"].update(labels=[{"channel": 1, "color": [0, 300, 0]}]), "color"),
    ("label_value_word", lambda m: m["surgtwin"].update(labels=[{"channel": 1, "value": "x"}]),
     r"surgtwin.labels\[0\].value"),
    ("label_value_twice", lambda m: m["surgtwin"].update(labels=[{"channel": 1, "value": 5}, {"channel": 2, "value": 5}]),
     "used by two channels"),
    ("label_channel_out_of_range", lambda m: m["surgtwin"].update(labels=[{"channel": 9}]), r"labels\[0\].channel"),
    ("labels_object", lambda m: m["surgtwin"].update(labels={"a": 1}), "surgtwin.labels must be a list"),
    ("label_code", lambda m: m["surgtwin"].update(labels=[{"channel": 1, "code": 12}]), r"labels\[0\].code"),
    ("postprocess_list", lambda m: m["surgtwin"].update(postprocess=["a"]), "surgtwin.postprocess must be a JSON object"),
    ("single_component_string", lambda m: m["surgtwin"]["postprocess"].update(single_component="a"),
     "surgtwin.postprocess.single_component must be a list of structure names"),
    ("surgtwin_list", lambda m: m.update(surgtwin=[1]), "surgtwin must be a JSON object"),
    ("sha_number", lambda m: m["surgtwin"].update(weights_sha256=12), "weights_sha256 must be a sha256"),
    ("spacing_word", lambda m: m["surgtwin"].update(spacing_mm="abc"), r"spacing \(pixdim\) must be three numbers"),
    ("spacing_nan", lambda m: m["surgtwin"].update(spacing_mm=[1, "NaN", 1]), "spacing"),
    ("roi_absurd", lambda m: m["surgtwin"].update(roi_size=[100000] * 3), "roi_size must be three integers"),
    ("roi_fraction", lambda m: m["surgtwin"].update(roi_size=[32.5, 32, 32]), "roi_size"),
    ("window_word", lambda m: m["surgtwin"].update(hu_window=["low", 5]), "HU window"),
    ("window_short", lambda m: m["surgtwin"].update(hu_window=[5]), "HU window .* must be two numbers"),
    ("axcodes_list", lambda m: m["surgtwin"].update(axcodes=["R", "A", "S"]), "axcodes must be a string"),
    ("name_object", lambda m: m.update(name={"x": 1}), "name must be a non-empty string"),
]


INF_CASES = [
    ("out_channels_word", lambda d: d["network_def"].update(out_channels="x"), "network_def.out_channels must be"),
    ("channels_absurd", lambda d: d["network_def"].update(channels=[4, 8, 10**9]),
     r"network_def.channels\[2\] must be at most"),
    ("channels_nan", lambda d: d["network_def"].update(channels=[4, 8, float("nan")]), "finite"),
    ("target_number", lambda d: d["network_def"].update(_target_=5), "network 5 is not supported"),
]


CASES = [("metadata.json", *c) for c in META_CASES] + [("inference.json", *c) for c in INF_CASES]


@pytest.mark.parametrize(("file", "case", "edit", "reason"), CASES, ids=[c[1] for c in CASES])
def test_bad_config_fields_are_refused_by_name(tmp_path, file, case, edit, reason):
    root = make_tiny_bundle(tmp_path / case)
    edit_json(root, file, edit)
    with pytest.raises(SurgtwinError, match=reason) as ei:
        load_bundle(root)
    assert file in str(ei.value)
    assert "\n" not in str(ei.value)


def test_a_text_file_as_weights_is_refused(tmp_path):
    root = make_tiny_bundle(tmp_path / "b")
    (root / "models" / "model.pt").write_text("these are not weights\n")
    rehash(root)  # the hash matches: the file itself is the problem
    with pytest.raises(SurgtwinError, match="not a PyTorch weights file") as ei:
        load_bundle(root).build_network("cpu")
    assert "model.pt" in str(ei.value)


@pytest.mark.parametrize("payload", [b"PK\x03\x04 not really a zip", b"\x80\x04garbage", b""])
def test_damaged_weights_are_refused(tmp_path, payload):
    root = make_tiny_bundle(tmp_path / "b")
    (root / "models" / "model.pt").write_bytes(payload)
    rehash(root)
    with pytest.raises(SurgtwinError, match="weights") as ei:
        load_bundle(root).build_network("cpu")
    assert "model.pt" in str(ei.value)


def test_weights_holding_other_objects_are_refused(tmp_path):
    import torch

    root = make_tiny_bundle(tmp_path / "b")
    torch.save({"a": [1, 2, 3]}, root / "models" / "model.pt")
    rehash(root)
    with pytest.raises(SurgtwinError, match="does not hold a state dict"):
        load_bundle(root).build_network("cpu")


def test_network_far_larger_than_its_weights_is_refused_before_it_is_built(tmp_path, monkeypatch):
    """channels within the per-number limit, but a network far beyond what the weights file holds:
    refused while being constructed, before the big tensors are allocated."""
    root = make_tiny_bundle(tmp_path / "b")
    edit_json(root, "inference.json", lambda d: d["network_def"].update(channels=[4, 8, 99_999]))
    b = load_bundle(root)
    with pytest.raises(SurgtwinError, match="far larger than its weights file") as ei:
        b.build_network("cpu")
    assert "inference.json" in str(ei.value)


def test_network_of_thousands_of_layers_is_refused_quickly(tmp_path):
    """num_res_units=1000 adds thousands of small layers (seconds to build, then no weights fit)."""
    import time

    root = make_tiny_bundle(tmp_path / "b")
    edit_json(root, "inference.json", lambda d: d["network_def"].update(num_res_units=1000))
    t0 = time.perf_counter()
    with pytest.raises(SurgtwinError, match="far larger than its weights file.*tensors"):
        load_bundle(root).build_network("cpu")
    assert time.perf_counter() - t0 < 5.0


def test_allocation_guard_also_bounds_networks_that_meta_tensors_cannot_build(tmp_path):
    """SwinUNETR calls .item() while it is built: the guard counts real allocations instead."""
    from monai.networks.nets import SwinUNETR

    from surgtwin.core.segmentation.bundle_checks import NetworkTooLarge, build_network_guarded

    with pytest.raises(NetworkTooLarge):
        build_network_guarded(SwinUNETR, {"in_channels": 1, "out_channels": 3, "feature_size": 4800}, 10_000_000)
    net = build_network_guarded(SwinUNETR, {"in_channels": 1, "out_channels": 3, "feature_size": 12}, 50_000_000)
    assert sum(p.numel() for p in net.parameters()) > 0


def test_network_def_monai_rejects_is_a_clear_refusal(tmp_path):
    root = make_tiny_bundle(tmp_path / "b")
    edit_json(root, "inference.json", lambda d: d["network_def"].update(strides=[2]))
    with pytest.raises(SurgtwinError, match="does not describe a UNet that MONAI can build") as ei:
        load_bundle(root).build_network("cpu")
    assert "inference.json" in str(ei.value) and "\n" not in str(ei.value)


def test_sha256_sidecar_must_be_a_digest(tmp_path):
    root = make_tiny_bundle(tmp_path / "b", write_hash=False)
    (root / "models" / "model.pt.sha256").write_text("not-a-digest model.pt\n")
    with pytest.raises(SurgtwinError, match="sha256") as ei:
        load_bundle(root)
    assert "model.pt.sha256" in str(ei.value)


def test_valid_bundle_with_full_label_entries_loads(tmp_path):
    root = make_tiny_bundle(tmp_path / "b")
    edit_json(root, "metadata.json", lambda m: m["surgtwin"].update(labels=[
        {"channel": 1, "value": 10, "name": "liver", "color": [200, 100, 50], "code": "SCT:10200004"},
        {"channel": 2, "value": 20}]))
    b = load_bundle(root)
    assert [lab.value for lab in b.labels] == [10, 20] and b.labels.names() == ["liver", "b"]
    assert list(b.channel_values) == [0, 10, 20]
    assert b.build_network("cpu") is not None
