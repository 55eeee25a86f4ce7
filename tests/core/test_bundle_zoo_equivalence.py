"""Model-zoo bundles run exactly: surgtwin's labels match MONAI's own run of the same inference.json.

The configs are the model zoo's own (``tests/fixtures/zoo_configs``, see its README), with small random
weights. Where a network is too big for CI its size arguments are reduced (UNet ``channels``,
SegResNet ``init_filters``, SwinUNETR ``feature_size``) and the inferer's ``roi_size`` made smaller:
both are parameters the config exposes; the pre/post-processing is untouched.

The reference: MONAI's ``ConfigParser`` parses the same file and instantiates its ``dataloader``
(``LoadImaged`` from the NIfTI file), ``inferer``, ``network_def`` and ``postprocessing`` (``Invertd`` ..
``SaveImaged`` writing the labels); the loop is ``SupervisedEvaluator``'s iteration (pytorch-ignite,
which the evaluator needs, is not installed here): batch -> ``inferer(inputs, network)`` under
``no_grad`` -> decollate -> postprocessing per item.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.segmentation import load_bundle, segment
from surgtwin.core.types import Volume

ZOO = Path(__file__).resolve().parents[1] / "fixtures" / "zoo_configs"
FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])


def zoo_config(name: str) -> tuple[dict, dict]:
    return (json.loads((ZOO / name / "inference.json").read_text()),
            json.loads((ZOO / name / "metadata.json").read_text()))


def make_bundle(root: Path, inf: dict, meta: dict, image: Path, seed: int = 0) -> Path:
    """A bundle folder: the config, its metadata, random weights of its network_def and their sha256.

    The last layer's bias is centred on ``image`` (preprocessed by the config) so that random weights
    give several labels rather than one everywhere."""
    import torch
    from monai.bundle import ConfigParser

    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "configs" / "inference.json").write_text(json.dumps(inf, indent=1))
    (root / "configs" / "metadata.json").write_text(json.dumps(meta, indent=1))
    parser = ConfigParser(copy.deepcopy(inf))
    parser.update({"preprocessing#transforms#0#reader": "NibabelReader"}
                  if "reader" in inf["preprocessing"]["transforms"][0] else {})
    torch.manual_seed(seed)
    net = parser.get_parsed_content("network_def").eval()
    x = parser.get_parsed_content("preprocessing")({"image": str(image)})["image"]
    roi = inf["inferer"]["roi_size"]
    x = x[None, :, :roi[0], :roi[1], :roi[2]]
    x = torch.nn.functional.pad(x, _pads(x.shape[2:], roi))
    n_out = meta["network_data_format"]["outputs"]["pred"]["num_channels"]
    with torch.no_grad():
        y = net(x.as_tensor() if hasattr(x, "as_tensor") else x)
        bias = [b for name, b in net.named_parameters() if name.endswith("bias") and b.shape == (n_out,)][-1]
        flat = y[0].reshape(n_out, -1)
        bias -= flat.mean(dim=1) + 0.5 * flat.std(dim=1) * torch.randn(n_out)
    torch.save(net.state_dict(), root / "models" / "model.pt")
    digest = hashlib.sha256((root / "models" / "model.pt").read_bytes()).hexdigest()
    (root / "models" / "model.pt.sha256").write_text(digest + "  model.pt\n")
    return root


def _pads(shape, roi):
    pads = []
    for s, r in reversed(list(zip(shape, roi, strict=True))):
        pads += [0, max(0, r - s)]
    return pads


def synthetic_ct(path: Path, shape=(56, 48, 36), seed: int = 1) -> Path:
    """A small CT NIfTI in an LPS-ish, non-RAS orientation: a body of soft tissue with a bright and a dark
    organ, air around, noise."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    idx = np.indices(shape).astype(np.float32)
    c = [(s - 1) / 2 for s in shape]
    r = sum(((idx[i] - c[i]) / (0.45 * shape[i])) ** 2 for i in range(3))
    hu = np.where(r < 1.0, 40.0, -1000.0)
    hu[sum(((idx[i] - c[i] - 6 * (i == 0)) / 8.0) ** 2 for i in range(3)) < 1.0] = 250.0
    hu[sum(((idx[i] - c[i] + 7 * (i == 1)) / 6.0) ** 2 for i in range(3)) < 1.0] = -80.0
    hu = (hu + rng.normal(0, 20, shape)).astype(np.float32)
    affine = np.diag([-1.1, -1.3, 2.5, 1.0])  # x towards L, y towards P: Orientationd must flip
    affine[:3, 3] = (30.0, 25.0, -40.0)
    nib.save(nib.Nifti1Image(hu, affine), str(path))
    return path


def monai_reference(bundle: Path, image: Path, out_dir: Path, overrides: dict | None = None) -> tuple:
    """MONAI's own parse and run of the bundle's inference.json; (labels, RAS affine) of the saved file."""
    import nibabel as nib
    import torch
    from monai.bundle import ConfigParser
    from monai.data import decollate_batch

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    parser.update({"bundle_root": str(bundle), "datalist": [str(image)], "output_dir": str(out_dir),
                   "dataloader#num_workers": 0, "device": "$torch.device('cpu')", **(overrides or {})})
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True))
    net.eval()
    inferer = parser.get_parsed_content("inferer")
    post = parser.get_parsed_content("postprocessing")
    for batch in parser.get_parsed_content("dataloader"):
        with torch.no_grad():
            inputs = batch["image"]
            pred = inferer(inputs, net)
        for b, o in zip(decollate_batch(batch), decollate_batch({"image": inputs, "pred": pred}), strict=True):
            post({**b, **o})
    (saved,) = list(out_dir.rglob("*.nii.gz"))
    img = nib.load(str(saved))
    return np.asarray(img.dataobj), img.affine


def surgtwin_labels(bundle: Path, image: Path):
    import nibabel as nib

    img = nib.load(str(image))
    vol = Volume(np.asarray(img.dataobj, dtype=np.float32), FLIP @ img.affine, modality="CT")
    res = segment(vol, bundle=bundle, device="cpu")
    return res.labels.array, FLIP @ res.labels.affine


def check_equivalent(tmp_path, inf, meta, overrides=None, min_classes=2):
    image = synthetic_ct(tmp_path / "ct.nii.gz")
    bundle = make_bundle(tmp_path / "bundle", inf, meta, image)
    ref, ref_aff = monai_reference(bundle, image, tmp_path / "eval", overrides)
    ref = np.squeeze(ref)
    ours, our_aff = surgtwin_labels(bundle, image)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(our_aff, ref_aff, atol=1e-4)
    agree = float(np.mean(ours == np.rint(ref).astype(ours.dtype)))
    counts = np.bincount(np.rint(ref).astype(np.int64).ravel())
    assert (counts >= 0.005 * ref.size).sum() >= min_classes, f"reference is nearly constant: {counts}"
    print(f"voxel agreement {agree:.5%}, {len(np.nonzero(counts)[0])} labels")
    assert agree >= 0.999
    return agree


def test_spleen_ct_segmentation_matches_monai(tmp_path):
    inf, meta = zoo_config("spleen_ct_segmentation")
    inf["network_def"]["channels"] = [4, 8, 16, 32, 64]  # was 16..256: the same UNet, fewer features
    inf["inferer"]["roi_size"] = [48, 48, 32]  # was 96^3: several overlapping windows on this small CT
    check_equivalent(tmp_path, inf, meta)
    b = load_bundle(tmp_path / "bundle")
    assert b.spacing_mm == (1.5, 1.5, 2.0) and b.hu_window == (-57.0, 164.0) and b.roi_size == (48, 48, 32)
    assert [t.name for t in b.pipeline.pre] == ["Orientationd", "Spacingd", "ScaleIntensityRanged", "EnsureTyped"]
    assert [t.name for t in b.pipeline.post] == ["Activationsd", "Invertd", "AsDiscreted"]


@pytest.mark.slow
def test_wholebody_ct_segmentation_matches_monai(tmp_path):
    """SegResNet, NormalizeIntensityd(nonzero) + ScaleIntensityd, argmax before a nearest Invertd, the
    pixdim chosen by a restricted `$` expression, replicate padding and Gaussian blending."""
    inf, meta = zoo_config("wholeBody_ct_segmentation")
    inf["network_def"]["init_filters"] = 8  # was 32 (GroupNorm needs a multiple of 8)
    inf["inferer"]["roi_size"] = [32, 32, 32]
    inf["displayable_configs"]["sw_batch_size"] = 2
    check_equivalent(tmp_path, inf, meta)
    b = load_bundle(tmp_path / "bundle")
    assert b.spacing_mm == (1.5, 1.5, 1.5)
    assert b.pipeline.inferer_args["padding_mode"] == "replicate" and b.pipeline.inferer_args["overlap"] == 0.25


@pytest.mark.slow
def test_swin_unetr_btcv_matches_monai_once_img_size_is_dropped(tmp_path):
    """The zoo's config passes img_size, which SwinUNETR no longer takes in MONAI 1.6 (MONAI's own runner
    fails on it too); without it, and with feature_size 12, the pipeline matches."""
    pytest.importorskip("einops", reason="MONAI's SwinUNETR needs einops")
    inf, meta = zoo_config("swin_unetr_btcv_segmentation")
    del inf["network_def"]["img_size"]
    inf["network_def"]["feature_size"] = 12  # was 48 (a multiple of 12, as SwinUNETR needs)
    inf["inferer"]["roi_size"] = [32, 32, 32]
    # ITKReader (the config's file reader) is not installed; the reference reads the file with nibabel
    check_equivalent(tmp_path, inf, meta, overrides={"preprocessing#transforms#0#reader": "NibabelReader"})


def test_swin_unetr_btcv_as_published_is_refused_naming_img_size(tmp_path):
    inf, meta = zoo_config("swin_unetr_btcv_segmentation")
    root = tmp_path / "b"
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "configs" / "inference.json").write_text(json.dumps(inf))
    (root / "configs" / "metadata.json").write_text(json.dumps(meta))
    import torch

    torch.save({"w": torch.zeros(2)}, root / "models" / "model.pt")
    (root / "models" / "model.pt.sha256").write_text(hashlib.sha256((root / "models" / "model.pt").read_bytes()).hexdigest())
    b = load_bundle(root)  # the pipeline itself is supported
    assert [t.name for t in b.pipeline.pre][:2] == ["Orientationd", "Spacingd"]
    with pytest.raises(SurgtwinError, match="img_size"):
        b.build_network("cpu")


def test_pancreas_dints_is_refused_naming_the_reason(tmp_path):
    inf, meta = zoo_config("pancreas_ct_dints_segmentation")
    root = tmp_path / "b"
    (root / "configs").mkdir(parents=True)
    (root / "configs" / "inference.json").write_text(json.dumps(inf))
    (root / "configs" / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(SurgtwinError, match="DiNTS is not supported.*torch.load") as ei:
        load_bundle(root)
    assert "inference.json" in str(ei.value)
