"""Run a MONAI model-zoo bundle's own pre/post-processing exactly, without executing its config.

A bundle whose ``metadata.json`` has no ``surgtwin`` section (a hospital's own or a model-zoo bundle) is
run the way MONAI's bundle runner runs its ``configs/inference.json``: the ``preprocessing`` Compose,
the ``inferer``, the network, then the ``postprocessing`` Compose, using MONAI's own transform classes
so that the labels match MONAI's runner voxel for voxel. What differs is how they are built: surgtwin
instantiates each transform itself from an allow-list below, with arguments that are literal JSON (or
references / restricted expressions, see ``bundle_config``), and refuses a bundle that uses any other
transform, argument, or key, naming it and the file. Nothing from the config is ``eval``ed.

Supported (each changes the output, so each is applied):

* preprocessing: ``Orientationd`` (axcodes), ``Spacingd`` (pixdim, mode, padding_mode, align_corners,
  …), ``ScaleIntensityRanged`` (a/b min/max, clip), ``ScaleIntensityd`` (minv/maxv/factor),
  ``NormalizeIntensityd`` (nonzero, channel_wise, numeric subtrahend/divisor), ``CropForegroundd``
  (margin, k_divisible, allow_smaller; the default ``select_fn``), ``EnsureTyped``;
* inferer: ``SlidingWindowInferer`` (roi_size, sw_batch_size, overlap, mode, sigma_scale,
  padding_mode, cval) or ``SimpleInferer``; ``evaluator.amp`` (autocast on CUDA only, as MONAI's
  evaluator does);
* postprocessing: ``Activationsd`` (softmax / sigmoid), ``Invertd`` (back through the preprocessing,
  ``nearest_interp`` as configured), ``AsDiscreted`` (argmax, threshold, rounding),
  ``KeepLargestConnectedComponentd`` (applied_labels, independent, connectivity, num_components);
* networks: those of ``bundle.ALLOWED_NETWORKS`` (UNet, SegResNet, SwinUNETR, …) with literal arguments.

Read but not applied, because they cannot change the labels:

* ``LoadImaged`` (surgtwin hands over the volume it already holds, as float32 with its affine in
  MONAI's RAS convention, which is what LoadImaged produces from the same file; ``reader`` only picks
  the file parser), ``EnsureChannelFirstd`` (the image is given a channel axis),
  ``SaveImaged`` (writes a file; surgtwin returns the labels instead);
* the inferer's ``device`` / ``sw_device`` / ``progress`` / ``cache_roi_weight_map`` / ``cpu_thresh`` /
  ``buffer_*`` (where and in what pieces the same sums are computed), ``Invertd.device``/``to_tensor``;
* everything else in the file that the runner needs to find files and devices (imports, datalist,
  dataset, dataloader, device, handlers, checkpointloader, output_*).

Refused, naming the transform or key: any other transform (e.g. ``Lambdad``, ``ThresholdIntensityd``),
any argument not listed (e.g. ``CropForegroundd.select_fn``, ``Activationsd.other_fn``), keys other than
the image key (pre) and ``pred`` (post), a postprocessing that does not end in a label map
(``AsDiscreted`` with ``argmax``), DiNTS (its architecture comes from a checkpoint that the config loads
with ``$torch.load``), and config files other than ``inference.json`` (YAML).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import CancelToken, ProgressFn, check, report
from surgtwin.core.segmentation.bundle_checks import shown, triple
from surgtwin.core.segmentation.bundle_config import BundleConfig

_COMMON = {"keys", "allow_missing_keys"}

#: preprocessing transforms applied (MONAI class name -> accepted arguments besides keys)
PRE_APPLIED = {
    "Orientationd": {"axcodes", "as_closest_canonical", "labels"},
    "Spacingd": {"pixdim", "mode", "padding_mode", "align_corners", "diagonal", "scale_extent",
                 "recompute_affine", "min_pixdim", "max_pixdim"},
    "ScaleIntensityRanged": {"a_min", "a_max", "b_min", "b_max", "clip"},
    "ScaleIntensityd": {"minv", "maxv", "factor", "channel_wise"},
    "NormalizeIntensityd": {"subtrahend", "divisor", "nonzero", "channel_wise"},
    "CropForegroundd": {"source_key", "margin", "allow_smaller", "k_divisible", "mode"},
    "EnsureTyped": {"data_type"},
}
#: preprocessing transforms read but not applied (see the module docstring)
PRE_IGNORED = {
    "LoadImaged": {"reader", "image_only", "ensure_channel_first", "simple_keys"},
    "EnsureChannelFirstd": {"channel_dim", "strict_check"},
}
POST_APPLIED = {
    "Activationsd": {"softmax", "sigmoid"},
    "Invertd": {"transform", "orig_keys", "meta_keys", "orig_meta_keys", "meta_key_postfix", "nearest_interp",
                "to_tensor", "device"},
    "AsDiscreted": {"argmax", "threshold", "rounding", "dim", "keepdim"},
    "KeepLargestConnectedComponentd": {"applied_labels", "is_onehot", "independent", "connectivity",
                                       "num_components"},
}
POST_IGNORED = {"SaveImaged": None}  # None: its arguments are not read at all
INFERERS = {
    "SlidingWindowInferer": {"roi_size", "sw_batch_size", "overlap", "mode", "sigma_scale", "padding_mode", "cval"},
    "SimpleInferer": set(),
}
INFERER_IGNORED = {"device", "sw_device", "progress", "cache_roi_weight_map", "cpu_thresh", "buffer_steps", "buffer_dim"}
#: arguments that go to the MONAI class but are not surgtwin's to set
_DROP = {"Invertd": {"transform", "device", "to_tensor"}}
PRED_KEY = "pred"


@dataclass
class TransformSpec:
    name: str
    args: dict
    where: str  # dotted key in inference.json, for messages


@dataclass
class ZooPipeline:
    path: Path  # inference.json
    image_key: str
    pre: list[TransformSpec]
    post: list[TransformSpec]
    inferer: str
    inferer_args: dict
    amp: bool = False
    ignored: list[str] = field(default_factory=list)

    def first(self, name: str) -> TransformSpec | None:
        return next((t for t in self.pre if t.name == name), None)


def _transforms(cfg: BundleConfig, key: str) -> list:
    comp = cfg.raw(key)
    if comp is None:
        raise SurgtwinError(f"inference.json has no {key}", path=cfg.path,
                            hint=f"a model-zoo bundle describes its {key} as a Compose of MONAI transforms")
    if isinstance(comp, dict) and str(comp.get("_target_", "")).split(".")[-1] == "Compose":
        comp = comp.get("transforms")
    if not isinstance(comp, list):
        raise SurgtwinError(f"{key} must be a Compose with a list of transforms, got {shown(comp)}", path=cfg.path)
    return comp


def _spec(cfg: BundleConfig, item, where: str, applied: dict, ignored: dict, keys_ok: set[str],
          stage: str, image_key: str) -> TransformSpec | None:
    if not isinstance(item, dict) or not isinstance(item.get("_target_"), str):
        raise SurgtwinError(f"{where} must be a transform object with a _target_, got {shown(item)}", path=cfg.path)
    name = item["_target_"].split(".")[-1]
    if name in ignored and ignored[name] is None:
        return None
    allowed = applied.get(name, ignored.get(name))
    if allowed is None:
        supported = ", ".join(sorted({*applied, *ignored}))
        raise SurgtwinError(f"{where}: {stage} transform {name} is not supported by surgtwin", path=cfg.path,
                            hint=f"surgtwin runs these {stage} transforms exactly: {supported}")
    args = {}
    for k, v in item.items():
        if k == "_target_":
            continue
        if k not in allowed | _COMMON:
            raise SurgtwinError(f"{where}: {name}.{k} is not supported by surgtwin", path=cfg.path,
                                hint=f"surgtwin reads these {name} arguments: {', '.join(sorted(allowed | _COMMON))}")
        if name == "Invertd" and k == "transform":
            if v != "@preprocessing":
                raise SurgtwinError(f"{where}: Invertd.transform must be \"@preprocessing\", got {shown(v)}",
                                    path=cfg.path)
            continue
        if k in _DROP.get(name, ()):
            continue
        args[k] = cfg.resolve(v, f"{where} {name}.{k}")
    keys = args.pop("keys", None)
    keys = [keys] if isinstance(keys, str) else keys
    if not isinstance(keys, list) or not keys or not set(keys) <= keys_ok:
        raise SurgtwinError(f"{where}: {name}.keys = {shown(keys)}; surgtwin runs {stage} on "
                            f"{' / '.join(sorted(keys_ok))} only", path=cfg.path)
    for k in ("source_key", "orig_keys"):
        if k in args and args[k] != image_key:
            raise SurgtwinError(f"{where}: {name}.{k} = {shown(args[k])} is not the image", path=cfg.path)
    if name in ignored:
        return None
    return TransformSpec(name, args, where)


def parse_pipeline(cfg: BundleConfig) -> ZooPipeline:
    """Validate inference.json's preprocessing, inferer and postprocessing (nothing is built yet)."""
    image_key = cfg.resolve(cfg.raw("image_key", "image"), "image_key")
    if not isinstance(image_key, str):
        raise SurgtwinError(f"image_key must be a string, got {shown(image_key)}", path=cfg.path)
    pre, post = [], []
    for i, item in enumerate(_transforms(cfg, "preprocessing")):
        s = _spec(cfg, item, f"preprocessing.transforms[{i}]", PRE_APPLIED, PRE_IGNORED, {image_key}, "preprocessing",
                  image_key)
        if s:
            pre.append(s)
    for i, item in enumerate(_transforms(cfg, "postprocessing")):
        s = _spec(cfg, item, f"postprocessing.transforms[{i}]", POST_APPLIED, POST_IGNORED, {PRED_KEY},
                  "postprocessing", image_key)
        if s:
            post.append(s)
    argmax = [s for s in post if s.name == "AsDiscreted" and s.args.get("argmax")]
    if not argmax:
        raise SurgtwinError("postprocessing does not make a label map (no AsDiscreted with argmax: true)",
                            path=cfg.path, hint="surgtwin runs bundles whose output is one label per voxel")
    inf = cfg.raw("inferer")
    if not isinstance(inf, dict) or not isinstance(inf.get("_target_"), str):
        raise SurgtwinError("inference.json has no inferer", path=cfg.path,
                            hint="e.g. {\"_target_\": \"SlidingWindowInferer\", \"roi_size\": [96, 96, 96]}")
    iname = inf["_target_"].split(".")[-1]
    if iname not in INFERERS:
        raise SurgtwinError(f"inferer {iname} is not supported by surgtwin", path=cfg.path,
                            hint=f"surgtwin runs {', '.join(INFERERS)}")
    iargs = {}
    for k, v in inf.items():
        if k == "_target_" or k in INFERER_IGNORED:
            continue
        if k not in INFERERS[iname]:
            raise SurgtwinError(f"inferer: {iname}.{k} is not supported by surgtwin", path=cfg.path)
        iargs[k] = cfg.resolve(v, f"inferer.{k}")
    if iname == "SlidingWindowInferer":
        from surgtwin.core.segmentation.bundle import ROI_RANGE

        iargs["roi_size"] = list(triple(iargs.get("roi_size"), cfg.path, "inferer.roi_size", *ROI_RANGE, integer=True))
        if math.prod(iargs["roi_size"]) > 512**3:
            raise SurgtwinError(f"inferer.roi_size {iargs['roi_size']} is too large a window", path=cfg.path)
        for k, lo, hi in (("sw_batch_size", 1, 64), ("overlap", 0.0, 0.95)):
            v = iargs.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi):
                raise SurgtwinError(f"inferer.{k} must be a number from {lo} to {hi}, got {shown(v)}", path=cfg.path)
    amp = cfg.raw("evaluator#amp", False)
    return ZooPipeline(cfg.path, image_key, pre, post, iname, iargs, amp=amp is True,
                       ignored=["LoadImaged", "EnsureChannelFirstd", "SaveImaged"])


def _build(spec: TransformSpec, keys, path: Path, extra: dict | None = None):
    from monai import transforms as mt

    cls = getattr(mt, spec.name)
    try:
        return cls(keys=keys, **spec.args, **(extra or {}))
    except Exception as exc:  # noqa: BLE001 - MONAI raises ValueError, TypeError, ... for bad arguments
        msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise SurgtwinError(f"{spec.where}: MONAI cannot build {spec.name} with these arguments ({msg})",
                            path=path) from None


def build_transforms(pipe: ZooPipeline):
    """(preprocessing Compose, postprocessing Compose) as MONAI objects."""
    from monai.transforms import Compose

    pre = Compose([_build(s, pipe.image_key, pipe.path) for s in pipe.pre])
    post = []
    for s in pipe.post:
        extra = {"transform": pre} if s.name == "Invertd" else None
        post.append(_build(s, PRED_KEY, pipe.path, extra))
    return pre, Compose(post)


#: LPS <-> RAS (MONAI's world convention) for a 4x4 affine
_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])


def run_pipeline(volume, bundle, net, *, device: str = "cpu", progress: ProgressFn | None = None,
                 cancel: CancelToken | None = None):
    """The bundle's own preprocessing, inferer, network and postprocessing on ``volume``; a
    ``ModelOutput`` whose ``channels_source`` has exactly the volume's shape (the bundle's Invertd maps
    the labels back), plus the softmax and argmax on the model grid (for confidences)."""
    import time
    from contextlib import nullcontext

    import torch
    from monai.data import MetaTensor, decollate_batch, list_data_collate
    from monai.inferers import SimpleInferer, SlidingWindowInferer

    from surgtwin.core.segmentation.inference import ModelOutput
    from surgtwin.core.types import Volume

    pipe: ZooPipeline = bundle.pipeline
    t = {}
    t0 = time.perf_counter()
    pre, post = build_transforms(pipe)
    arr = np.ascontiguousarray(volume.array, dtype=np.float32)
    image = MetaTensor(torch.from_numpy(arr)[None], affine=torch.as_tensor(_FLIP @ volume.affine, dtype=torch.float64),
                       meta={"space": "RAS", "original_channel_dim": "no_channel"})
    data = pre({pipe.image_key: image})
    t["preprocess"] = time.perf_counter() - t0
    check(cancel)
    batch = list_data_collate([data])
    inputs = batch[pipe.image_key].to(device)
    if pipe.inferer == "SlidingWindowInferer":
        from surgtwin.core.segmentation.inference import count_windows

        a = pipe.inferer_args
        n_win = count_windows(inputs.shape[2:], a["roi_size"], float(a.get("overlap", 0.25)))
        total = max(1, math.ceil(n_win / int(a.get("sw_batch_size", 1))))
        inferer = SlidingWindowInferer(**a)
    else:
        total, inferer = 1, SimpleInferer()
    done = [0]

    def network(x):
        check(cancel)
        y = net(x)
        done[0] += 1
        report(progress, 0.05 + 0.8 * min(1.0, done[0] / total), f"network: window batch {done[0]}/{total}")
        return y

    t1 = time.perf_counter()
    amp = torch.autocast("cuda") if pipe.amp and torch.device(device).type == "cuda" else nullcontext()
    with torch.no_grad(), amp:
        pred = inferer(inputs, network)
    t["network"] = time.perf_counter() - t1
    check(cancel)
    t2 = time.perf_counter()
    report(progress, 0.86, "post-processing (the bundle's own)")
    with torch.no_grad():
        probs = torch.softmax(pred[0].detach().float().cpu(), dim=0)
    out = [{**b, **o} for b, o in zip(decollate_batch(batch), decollate_batch({pipe.image_key: inputs, PRED_KEY: pred}),
                                       strict=True)]
    labels = post(out[0])[PRED_KEY]
    lab = np.asarray(labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels)
    if lab.ndim == 4:
        lab = lab[0]
    if lab.shape != volume.shape:
        raise SurgtwinError(f"the bundle's postprocessing returned labels of shape {lab.shape}, not the volume's "
                            f"{volume.shape} (does it invert its preprocessing with Invertd?)", path=pipe.path)
    n_out = bundle.out_channels
    channels_source = np.rint(lab).astype(np.uint8 if n_out < 256 else np.uint16)
    grid_affine = _FLIP @ np.asarray(data[pipe.image_key].affine, dtype=np.float64)
    grid = Volume(np.zeros(tuple(probs.shape[1:]), np.uint8), grid_affine)
    channels_grid = probs.argmax(dim=0).numpy().astype(channels_source.dtype)
    t["postprocess"] = time.perf_counter() - t2
    return ModelOutput(channels_source, channels_grid, probs, grid, t)
