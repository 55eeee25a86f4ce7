"""Model-zoo configs: what surgtwin cannot run exactly is refused, naming the transform or key and the file;
config expressions are read by a restricted interpreter, never executed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.segmentation.bundle_config import BundleConfig
from surgtwin.core.segmentation.bundle_zoo import parse_pipeline

ZOO = Path(__file__).resolve().parents[1] / "fixtures" / "zoo_configs"
SPLEEN = json.loads((ZOO / "spleen_ct_segmentation" / "inference.json").read_text())


def cfg(edit=None, data=None) -> BundleConfig:
    d = json.loads(json.dumps(data or SPLEEN))
    if edit:
        edit(d)
    return BundleConfig(d, Path("/b/configs/inference.json"))


def test_real_configs_parse_without_running_any_expression():
    for name in ("spleen_ct_segmentation", "wholeBody_ct_segmentation", "swin_unetr_btcv_segmentation"):
        d = json.loads((ZOO / name / "inference.json").read_text())
        pipe = parse_pipeline(BundleConfig(d, Path(name)))
        assert pipe.inferer == "SlidingWindowInferer" and pipe.post


def test_restricted_expression_and_references():
    c = cfg(data={"hi": True, "a": {"b": 2}, "x": "$[1.5, 1.5] if @hi else [3.0, 3.0]", "y": "$@a#b * 2 - 1"})
    assert c.resolve("@x", "x") == [1.5, 1.5]
    assert c.resolve("@y", "y") == 3
    for bad in ("$__import__('os').system('true')", "$torch.load('x')", "$numpy.float32", "$[i for i in (1,)]",
                "$(lambda: 1)()", "$open('/etc/passwd').read()"):
        with pytest.raises(SurgtwinError, match="config expression .* does not evaluate"):
            cfg(data={"v": bad}).resolve("@v", "v")
    with pytest.raises(SurgtwinError, match="does not define"):
        cfg(data={}).resolve("@nope", "k")
    with pytest.raises(SurgtwinError, match="deeper"):
        cfg(data={"a": "@b", "b": "@a"}).resolve("@a", "a")


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda d: d["preprocessing"]["transforms"].append({"_target_": "Lambdad", "keys": "image", "func": "$lambda x: x"}),
     r"transforms\[6\]: preprocessing transform Lambdad is not supported"),
    (lambda d: d["preprocessing"]["transforms"][4].update(dtype="$numpy.float16"),
     r"ScaleIntensityRanged.dtype is not supported"),
    (lambda d: d["preprocessing"]["transforms"].insert(
        4, {"_target_": "CropForegroundd", "keys": "image", "source_key": "image", "select_fn": "$lambda x: x > 0"}),
     r"CropForegroundd.select_fn is not supported"),
    (lambda d: d["preprocessing"]["transforms"][3].update(pixdim="$numpy.ones(3)"),
     r"Spacingd.pixdim is a config expression"),
    (lambda d: d["preprocessing"]["transforms"][2].update(keys=["image", "label"]), r"Orientationd.keys"),
    (lambda d: d["postprocessing"]["transforms"].pop(2), r"no AsDiscreted with argmax"),
    (lambda d: d["postprocessing"]["transforms"][0].update(other_fn="$torch.tanh"), r"Activationsd.other_fn"),
    (lambda d: d["inferer"].update(_target_="SaliencyInferer"), r"inferer SaliencyInferer is not supported"),
    (lambda d: d["inferer"].update(roi_size=[96, 96]), r"inferer.roi_size must be three integers"),
    (lambda d: d.pop("postprocessing"), r"no postprocessing"),
])
def test_unsupported_parts_are_refused_by_name(edit, reason):
    with pytest.raises(SurgtwinError, match=reason) as ei:
        parse_pipeline(cfg(edit))
    assert "inference.json" in str(ei.value) and "\n" not in str(ei.value)
