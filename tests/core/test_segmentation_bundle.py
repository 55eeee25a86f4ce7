"""Bundle loading: a valid bundle loads; mismatched or tampered ones are refused with a clear message."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.segmentation import load_bundle, segment
from surgtwin.core.segmentation.bundle import axcodes_directions
from tests.core.seg_helpers import ball_ct, make_tiny_bundle


def _edit_meta(root, fn):
    p = root / "configs" / "metadata.json"
    meta = json.loads(p.read_text())
    fn(meta)
    p.write_text(json.dumps(meta))


def test_valid_bundle_loads_and_builds(tmp_path):
    b = load_bundle(make_tiny_bundle(tmp_path / "b"))
    assert b.modality == "CT" and b.in_channels == 1 and b.out_channels == 3
    assert b.labels.names() == ["a", "b"]
    assert b.spacing_mm == (4.0, 4.0, 4.0) and b.axcodes == "RAS"
    net = b.build_network("cpu")
    assert sum(p.numel() for p in net.parameters()) > 0


def test_hu_refine_weight_is_read_and_checked(tmp_path):
    root = make_tiny_bundle(tmp_path / "b")
    assert load_bundle(root).hu_refine_weight == 0.0  # off unless the bundle asks for it
    _edit_meta(root, lambda m: m["surgtwin"]["postprocess"].update(hu_refine_weight=0.6))
    assert load_bundle(root).hu_refine_weight == 0.6
    for bad in ("0.6", -1, 50, True):
        _edit_meta(root, lambda m, bad=bad: m["surgtwin"]["postprocess"].update(hu_refine_weight=bad))
        with pytest.raises(SurgtwinError, match="hu_refine_weight") as ei:
            load_bundle(root)
        assert "metadata.json" in str(ei.value)


def test_refuses_wrong_modality(tmp_path):
    root = make_tiny_bundle(tmp_path / "b", modality="MR")
    with pytest.raises(SurgtwinError, match="modality is 'MR'") as ei:
        load_bundle(root)
    assert "metadata.json" in str(ei.value)


def test_refuses_wrong_input_channels(tmp_path):
    root = make_tiny_bundle(tmp_path / "b", in_channels=2)
    with pytest.raises(SurgtwinError, match="expects 2 input channels"):
        load_bundle(root)


def test_refuses_volume_of_other_modality(tmp_path):
    b = load_bundle(make_tiny_bundle(tmp_path / "b"))
    from dataclasses import replace

    mr = replace(ball_ct(), modality="MR")
    with pytest.raises(SurgtwinError, match="segments CT images but the volume's modality is MR"):
        segment(mr, bundle=b)


def test_refuses_tampered_weights(tmp_path):
    root = make_tiny_bundle(tmp_path / "b")
    w = root / "models" / "model.pt"
    data = bytearray(w.read_bytes())
    data[-10] ^= 0xFF  # one flipped byte
    w.write_bytes(bytes(data))
    b = load_bundle(root)  # metadata is fine ...
    with pytest.raises(SurgtwinError, match="checksum mismatch") as ei:
        b.build_network("cpu")  # ... but the weights are not what the bundle recorded
    assert "model.pt" in str(ei.value)


def test_refuses_bundle_without_hash(tmp_path):
    root = make_tiny_bundle(tmp_path / "b", write_hash=False)
    with pytest.raises(SurgtwinError, match="no sha256"):
        load_bundle(root)
    # a sidecar hash file written by whoever installed it makes it acceptable
    import hashlib

    w = root / "models" / "model.pt"
    (root / "models" / "model.pt.sha256").write_text(hashlib.sha256(w.read_bytes()).hexdigest() + "  model.pt\n")
    assert load_bundle(root).weights_sha256


def test_refuses_pickled_code(tmp_path):
    """A weights file that is a pickle of arbitrary objects is refused even when the hash matches."""
    import hashlib
    import pickle

    root = make_tiny_bundle(tmp_path / "b")
    w = root / "models" / "model.pt"

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    w.write_bytes(pickle.dumps({"x": Evil()}))
    _edit_meta(root, lambda m: m["surgtwin"].update(weights_sha256=hashlib.sha256(w.read_bytes()).hexdigest()))
    with pytest.raises(SurgtwinError, match="cannot read the weights safely"):
        load_bundle(root).build_network("cpu")


def test_refuses_channel_mismatch_and_expressions(tmp_path):
    root = make_tiny_bundle(tmp_path / "b")
    _edit_meta(root, lambda m: m["network_data_format"]["outputs"]["pred"].update(
        num_channels=4, channel_def={"0": "bg", "1": "a", "2": "b", "3": "c"}))
    with pytest.raises(SurgtwinError, match="out_channels = 3 but channel_def names 4"):
        load_bundle(root)
    root2 = make_tiny_bundle(tmp_path / "c")
    p = root2 / "configs" / "inference.json"
    d = json.loads(p.read_text())
    d["network_def"]["channels"] = "$[4, 8, 16]"
    p.write_text(json.dumps(d))
    with pytest.raises(SurgtwinError, match="config expression"):
        load_bundle(root2)


def test_spacing_and_window_from_monai_transforms(tmp_path):
    """A model-zoo style bundle (no surgtwin section) takes spacing/orientation/window from inference.json."""
    root = make_tiny_bundle(tmp_path / "b")
    _edit_meta(root, lambda m: (m.pop("surgtwin"), None))
    (root / "models" / "model.pt.sha256").write_text(
        __import__("hashlib").sha256((root / "models" / "model.pt").read_bytes()).hexdigest())
    p = root / "configs" / "inference.json"
    d = json.loads(p.read_text())
    d["preprocessing"] = {"_target_": "Compose", "transforms": [
        {"_target_": "Orientationd", "keys": "image", "axcodes": "LPS"},
        {"_target_": "Spacingd", "keys": "image", "pixdim": [1.5, 1.5, 2.0]},
        {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": -57, "a_max": 164, "b_min": 0.0,
         "b_max": 1.0, "clip": True}]}
    d["inferer"] = {"_target_": "SlidingWindowInferer", "roi_size": [96, 96, 64]}
    d["postprocessing"] = {"_target_": "Compose", "transforms": [
        {"_target_": "Activationsd", "keys": "pred", "softmax": True},
        {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "@image_key"},
        {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
        {"_target_": "SaveImaged", "keys": "pred", "output_dtype": "$numpy.float32"}]}
    # what model-zoo inference.json files also hold: expressions and references that surgtwin never
    # evaluates and does not need (imports, device, dataset, evaluator, keys by reference)
    d["imports"] = ["$import glob"]
    d["image_key"] = "image"
    d["device"] = "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')"
    d["network"] = "$@network_def.to(@device)"
    d["dataset"] = {"_target_": "Dataset", "data": "$[{'image': i} for i in @datalist]", "transform": "@preprocessing"}
    d["preprocessing"]["transforms"][2]["keys"] = "@image_key"
    p.write_text(json.dumps(d))
    b = load_bundle(root)
    assert b.spacing_mm == (1.5, 1.5, 2.0) and b.axcodes == "LPS"
    assert b.hu_window == (-57.0, 164.0) and b.value_range == (0.0, 1.0) and b.roi_size == (96, 96, 64)
    # an expression where surgtwin does need the value is still refused, naming the field
    d["preprocessing"]["transforms"][2]["a_max"] = "$@hu_max"
    p.write_text(json.dumps(d))
    with pytest.raises(SurgtwinError, match="ScaleIntensityRanged.a_max"):
        load_bundle(root)


def test_axcodes():
    np.testing.assert_array_equal(axcodes_directions("RAS"), np.diag([-1.0, -1.0, 1.0]))
    with pytest.raises(SurgtwinError):
        axcodes_directions("RRS")


def test_model_card_summary_names_the_model_and_its_limits():
    from surgtwin.core.segmentation import default_bundle_dir, model_card

    text = model_card()
    if not (default_bundle_dir() / "configs" / "metadata.json").is_file():
        assert text == "no segmentation model installed"
        return
    assert "surgtwin_ct_multiorgan" in text and "NOT FOR CLINICAL USE" in text
    assert "docs" in text and "README.md" in text
