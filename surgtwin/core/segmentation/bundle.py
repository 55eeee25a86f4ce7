"""Load and validate a MONAI bundle folder (ours or a hospital's own) without executing pickled code.

A bundle is a folder with ``configs/metadata.json``, ``configs/inference.json``, ``models/model.pt``
(or ``models/model.safetensors``), ``docs/README.md`` and a licence. What surgtwin needs from it:

* the output channels and their names: ``network_data_format.outputs.pred.channel_def``; optional
  ``surgtwin.labels`` gives each channel a label value, colour and SNOMED code;
* the input: modality (must match the volume), ``num_channels`` (surgtwin feeds one CT channel);
* preprocessing: voxel spacing (mm, along the array axes), array orientation (``axcodes``, MONAI
  style: the direction each array axis increases toward, e.g. ``"RAS"``), the HU window and the
  value range it maps to. Taken from ``metadata.json``'s ``surgtwin`` section when present, else from
  the ``Spacingd`` / ``Orientationd`` / ``ScaleIntensityRanged`` entries of ``inference.json``;
* the network: ``network_def`` of ``inference.json``, a ``_target_`` from an allow-list of MONAI
  networks with literal JSON arguments (no ``$`` expressions: nothing from a config is evaluated);
* the weights' sha256: ``surgtwin.weights_sha256`` in ``metadata.json`` or ``models/model.pt.sha256``.
  A bundle whose weights do not match, or that records no hash, is refused.

Weights are read with ``torch.load(weights_only=True)`` or safetensors, never plain pickle.

Two kinds of bundle:

* surgtwin's own (``metadata.json`` has a ``surgtwin`` section): the preprocessing numbers above and
  surgtwin's inference path (``inference.run_model``: source-resolution boundaries, HU refinement);
* any other (a model-zoo or a hospital's bundle): ``inference.json``'s own ``preprocessing``,
  ``inferer`` and ``postprocessing`` are validated against an allow-list and run exactly as MONAI's
  bundle runner runs them (``bundle_zoo``; ``Bundle.pipeline``). A transform, argument or config
  expression surgtwin cannot run exactly is refused by name. ``$`` expressions are never executed; the
  few literal ones the zoo uses in values (``bundle_config``) are read by a restricted interpreter.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.segmentation.bundle_checks import (
    as_int,
    as_object,
    as_sha256,
    as_str,
    as_str_list,
    check_network_args,
    first_entry,
    json_depth,
    label_table,
    literal,
    pair,
    shown,
    triple,
)
from surgtwin.core.types import LabelTable

#: MONAI networks a bundle's ``network_def`` may name (constructed with literal keyword arguments)
ALLOWED_NETWORKS = ("UNet", "BasicUNet", "SegResNet", "DynUNet", "AttentionUnet", "UNETR", "SwinUNETR")

_AXCODE_LPS = {
    "L": (1.0, 0.0, 0.0),
    "R": (-1.0, 0.0, 0.0),
    "P": (0.0, 1.0, 0.0),
    "A": (0.0, -1.0, 0.0),
    "S": (0.0, 0.0, 1.0),
    "I": (0.0, 0.0, -1.0),
}


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def axcodes_directions(axcodes: str) -> np.ndarray:
    """3x3 matrix whose columns are the LPS unit vectors array axes 0, 1, 2 increase toward."""
    codes = str(axcodes).upper()
    if len(codes) != 3 or any(c not in _AXCODE_LPS for c in codes):
        raise SurgtwinError(f"axcodes must be three letters from L/R, P/A, S/I, got {axcodes!r}")
    d = np.array([_AXCODE_LPS[c] for c in codes]).T
    if abs(abs(np.linalg.det(d)) - 1.0) > 1e-6:
        raise SurgtwinError(f"axcodes {axcodes!r} name the same axis twice")
    return d


@dataclass
class Bundle:
    """A validated bundle: everything inference needs, read from the folder's JSON files."""

    path: Path
    name: str
    version: str
    metadata: dict
    modality: str
    in_channels: int
    channel_names: list[str]  # index = output channel, 0 = background
    labels: LabelTable  # label value, name, colour, code of every foreground channel
    channel_values: np.ndarray  # output channel -> label value (0 for background)
    spacing_mm: tuple[float, float, float] | None  # along array axes 0, 1, 2 of the network input
    axcodes: str
    hu_window: tuple[float, float]
    value_range: tuple[float, float]
    roi_size: tuple[int, int, int]
    network_def: dict
    weights_path: Path
    weights_sha256: str
    single_component: tuple[str, ...] = ()
    fill_holes: tuple[str, ...] = ()
    #: contrast-filled vessels whose boundary is refined at the source resolution (surgtwin bundles only)
    contrast_vessels: tuple[str, ...] = ()
    #: single-component structures that a field of view may cut into pieces (vessels)
    tubular: tuple[str, ...] = ()
    #: contrast vessels followed past the network's view by geodesic growth, and how far (mm)
    thin_vessels: tuple[str, ...] = ()
    thin_vessel_grow_mm: float = 0.0
    #: weight of the scan's own per-structure HU histograms at boundaries (surgtwin bundles; 0 = off)
    hu_refine_weight: float = 0.0
    warnings: list[str] = field(default_factory=list)
    #: a model-zoo bundle's own pipeline (``bundle_zoo.ZooPipeline``), run exactly; None for surgtwin's
    pipeline: object = None

    @property
    def out_channels(self) -> int:
        return len(self.channel_names)

    def check_input(self, volume) -> None:
        """Refuse a volume this bundle was not made for (modality) with a message saying what to do."""
        mod = (getattr(volume, "modality", None) or "").upper()
        if mod and mod != self.modality.upper():
            raise SurgtwinError(
                f"this model segments {self.modality} images but the volume's modality is {mod}",
                path=self.path,
                hint="load a CT series, or choose a bundle made for this modality",
            )

    def build_network(self, device: str = "cpu"):
        """Construct the network from ``network_def`` and load the verified weights (no pickle).

        The construction is bounded (``bundle_checks.build_network_guarded``): a ``network_def`` that
        asks for more parameters than its weights file could hold is refused before any allocation."""
        from monai import networks

        from surgtwin.core.segmentation.bundle_checks import (
            NetworkTooLarge,
            build_network_guarded,
            network_budget,
        )

        inf_path = self.path / "configs" / "inference.json"
        target = str(self.network_def.get("_target_", "")).split(".")[-1]
        kwargs = {k: v for k, v in self.network_def.items() if k != "_target_"}
        cls = getattr(networks.nets, target)
        state = load_weights(self.weights_path, self.weights_sha256)
        try:
            net = build_network_guarded(cls, kwargs, *network_budget(state))
        except NetworkTooLarge as exc:
            raise SurgtwinError(
                f"network_def describes a {target} far larger than its weights file: building it would "
                f"allocate {exc.args[0]}, the weights hold {len(state)} tensors of "
                f"{sum(v.numel() for v in state.values()):.3g} values",
                path=inf_path, hint="network_def's sizes (channels, features, layers) are wrong for this bundle",
            ) from None
        except TypeError as exc:
            raise SurgtwinError(
                f"network_def for {target} has arguments it does not accept ({_first_line(exc)})",
                path=inf_path, hint="fix network_def so that it matches the MONAI version installed",
            ) from None
        except MemoryError:
            raise SurgtwinError(f"not enough memory to build the {target} network_def describes", path=inf_path) from None
        except Exception as exc:  # noqa: BLE001 - MONAI constructors raise ValueError, AssertionError, ImportError ...
            raise SurgtwinError(
                f"network_def does not describe a {target} that MONAI can build "
                f"({type(exc).__name__}: {_first_line(exc)})",
                path=inf_path, hint="fix network_def (see the MONAI documentation of this network)",
            ) from None
        try:
            net.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError, ValueError, AttributeError) as exc:
            raise SurgtwinError(
                f"the weights do not fit the network that network_def describes ({_first_line(exc)})",
                path=self.weights_path,
                hint="the bundle's inference.json and models/model.pt come from different models",
            ) from None
        net.eval()
        return net.to(device)


def _first_line(exc: BaseException, limit: int = 200) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[0] if lines else type(exc).__name__)[:limit]


#: how a weights file starts: torch.save writes a zip archive (or, before torch 1.6, a pickle)
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")


def load_weights(path: Path, expected_sha256: str) -> dict:
    """Read a state dict after checking its sha256; pickled code is never executed."""
    actual = sha256_file(path)
    if actual.lower() != expected_sha256.lower():
        raise SurgtwinError(
            f"weights file checksum mismatch: sha256 is {actual[:16]}…, the bundle records "
            f"{expected_sha256[:16]}…",
            path=path,
            hint="the file is damaged or was replaced; reinstall the bundle from a trusted copy",
        )
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise SurgtwinError(
                "this bundle stores its weights as safetensors, which needs the 'safetensors' package",
                path=path,
                hint="pip install safetensors, or convert the weights to models/model.pt",
            ) from None
        try:
            return load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError, ... on a damaged file
            raise SurgtwinError(f"not a readable safetensors file ({_first_line(exc)})", path=path) from None
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head.startswith(_TORCH_MAGIC):
        raise SurgtwinError(
            "not a PyTorch weights file (it is neither the zip archive nor the pickle that torch.save writes)",
            path=path, hint="write models/model.pt with torch.save(model.state_dict()), or use models/model.safetensors",
        )
    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - UnpicklingError, RuntimeError, EOFError, IndexError ... on garbage
        raise SurgtwinError(
            f"cannot read the weights safely ({_first_line(exc)})",
            path=path,
            hint="surgtwin only loads plain state dicts (torch.save(model.state_dict()) or safetensors)",
        ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise SurgtwinError("the weights file does not hold a state dict (names -> tensors)", path=path)
    return obj


# -- parsing helpers -------------------------------------------------------------------------------
def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise SurgtwinError(
            "missing file of the MONAI bundle", path=path, hint="a bundle needs configs/metadata.json, "
            "configs/inference.json and models/model.pt"
        )
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise SurgtwinError(f"larger than {MAX_CONFIG_BYTES >> 20} MiB: not a bundle config", path=path)
        data = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise SurgtwinError("not valid JSON (nested too deeply)", path=path) from None
    except (OSError, ValueError) as exc:
        raise SurgtwinError(f"not valid JSON ({str(exc)[:200]})", path=path) from None
    if not isinstance(data, dict):
        raise SurgtwinError("expected a JSON object at the top level", path=path)
    if json_depth(data) > MAX_CONFIG_DEPTH:
        raise SurgtwinError(f"nested deeper than {MAX_CONFIG_DEPTH} levels: not a bundle config", path=path)
    return data


def _walk(obj):
    """Every dict nested anywhere in a JSON structure."""
    if isinstance(obj, dict):
        yield obj
        for v in obj.values():
            yield from _walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v)


def _find_transform(config: dict, name: str) -> dict | None:
    for d in _walk(config):
        t = d.get("_target_")
        if isinstance(t, str) and t.split(".")[-1] == name:
            return d
    return None


#: the range of a model's voxel size (mm) and of its sliding-window size (voxels per axis)
SPACING_RANGE_MM = (0.01, 100.0)
ROI_RANGE = (1, 1024)
#: limits on a bundle's JSON configs (real ones are a few kB, nested a few levels)
MAX_CONFIG_BYTES = 16 << 20
MAX_CONFIG_DEPTH = 64
#: the most output channels (structures + background) a bundle may have
MAX_OUT_CHANNELS = 1024


def load_bundle(path: str | Path) -> Bundle:
    """Read and validate a bundle folder; raise ``SurgtwinError`` naming the file/field at fault.

    Every field used is checked for type and range here (see ``bundle_checks``), so that a wrong one
    is refused by name rather than failing later in inference."""
    root = Path(path)
    if not root.is_dir():
        raise SurgtwinError("model bundle folder not found", path=root, hint="pass the folder that holds configs/ and models/")
    meta_path = root / "configs" / "metadata.json"
    inf_path = root / "configs" / "inference.json"
    meta = _read_json(meta_path)
    inf = _read_json(inf_path)
    ours = as_object(meta.get("surgtwin"), meta_path, "surgtwin", default={})
    warnings: list[str] = []

    # -- inputs -------------------------------------------------------------------------------
    if "network_data_format" not in meta:
        raise SurgtwinError("metadata has no network_data_format with inputs and outputs", path=meta_path,
                            hint="see MONAI's bundle specification (mb_specification)")
    ndf = as_object(meta["network_data_format"], meta_path, "network_data_format")
    image_key, image = first_entry(ndf, "inputs", "image", meta_path)
    pred_key, pred = first_entry(ndf, "outputs", "pred", meta_path)
    modality = image.get("modality", "n/a")
    if not isinstance(modality, str) or modality.upper() != "CT":
        raise SurgtwinError(
            f"the bundle's input modality is {shown(modality)}; surgtwin segments CT volumes",
            path=meta_path, hint=f"network_data_format.inputs.{image_key}.modality must be \"CT\"",
        )
    in_channels = as_int(image.get("num_channels", 1), meta_path, f"network_data_format.inputs.{image_key}.num_channels")
    if in_channels != 1:
        raise SurgtwinError(
            f"the bundle expects {in_channels} input channels; surgtwin feeds one CT channel",
            path=meta_path, hint="use a single-channel CT model (network_data_format.inputs.image.num_channels = 1)",
        )

    # -- outputs --------------------------------------------------------------------------------
    pkey = f"network_data_format.outputs.{pred_key}"
    cdef = pred.get("channel_def")
    if not isinstance(cdef, dict) or not cdef:
        raise SurgtwinError(f"{pkey}.channel_def is missing", path=meta_path,
                            hint="name every output channel, e.g. {\"0\": \"background\", \"1\": \"liver\"}")
    channels = {}
    for k, v in cdef.items():
        if not k.strip().isdigit():
            raise SurgtwinError(f"{pkey}.channel_def keys must be channel numbers, got {shown(k)}", path=meta_path)
        channels[int(k)] = as_str(v, meta_path, f"{pkey}.channel_def.{k}")
    n_out = as_int(pred.get("num_channels", len(channels)), meta_path, f"{pkey}.num_channels", 1, MAX_OUT_CHANNELS)
    if sorted(channels) != list(range(n_out)):
        raise SurgtwinError(
            f"channel_def names channels {sorted(channels)[:20]} but num_channels is {n_out}", path=meta_path,
            hint="channel_def must name channels 0..num_channels-1",
        )
    names = [channels[c] for c in range(n_out)]
    table, values = label_table(ours.get("labels"), names, meta_path)

    # -- preprocessing -------------------------------------------------------------------------
    if "surgtwin" not in meta:
        from surgtwin.core.segmentation.bundle_config import BundleConfig

        cfg = BundleConfig(inf, inf_path)
        pipeline, spacing, axcodes, window, vrange, roi = _zoo_preprocessing(cfg)
    else:
        cfg = None
        pipeline, spacing, axcodes, window, vrange, roi = _surgtwin_preprocessing(ours, meta_path, inf, inf_path, warnings)

    # -- network -----------------------------------------------------------------------------------
    netdef = inf.get("network_def")
    if not isinstance(netdef, dict):
        raise SurgtwinError("inference.json has no network_def", path=inf_path,
                            hint="describe the network, e.g. {\"_target_\": \"UNet\", ...}")
    target = netdef.get("_target_")
    if isinstance(target, str) and target.split(".")[-1] == "DiNTS":
        raise SurgtwinError(
            "network DiNTS is not supported: its searched architecture (arch_code, node_a) comes from a "
            "checkpoint that the config loads with a $torch.load expression, which surgtwin never runs",
            path=inf_path, hint="run this bundle with MONAI itself, or export the model to a supported network")
    netdef = literal(netdef, inf_path, "network_def") if cfg is None else cfg.resolve(netdef, "network_def")
    target = netdef.get("_target_")
    if not isinstance(target, str) or target.split(".")[-1] not in ALLOWED_NETWORKS:
        raise SurgtwinError(f"network {shown(target)} is not supported", path=inf_path,
                            hint=f"surgtwin builds these MONAI networks: {', '.join(ALLOWED_NETWORKS)}")
    check_network_args(netdef, inf_path)
    if "in_channels" in netdef and as_int(netdef["in_channels"], inf_path, "network_def.in_channels") != in_channels:
        raise SurgtwinError(f"network_def.in_channels = {netdef['in_channels']} but metadata says {in_channels} "
                            "input channels", path=inf_path)
    if "out_channels" in netdef and as_int(netdef["out_channels"], inf_path, "network_def.out_channels") != n_out:
        raise SurgtwinError(f"network_def.out_channels = {netdef['out_channels']} but channel_def names {n_out} channels",
                            path=inf_path, hint="metadata.json and inference.json describe different models")

    # -- weights + checksum ---------------------------------------------------------------------
    weights = None
    for cand in ("model.safetensors", "model.pt"):
        if (root / "models" / cand).is_file():
            weights = root / "models" / cand
            break
    if weights is None:
        raise SurgtwinError("no weights in the bundle", path=root / "models",
                            hint="expected models/model.pt (a state dict) or models/model.safetensors")
    side = weights.with_name(weights.name + ".sha256")
    digest = ours.get("weights_sha256")
    if digest:
        digest = as_sha256(digest, meta_path, "surgtwin.weights_sha256")
    elif side.is_file():
        words = side.read_text(errors="replace").split()
        digest = as_sha256(words[0] if words else "", side, "the first word") if words else None
    if not digest:
        raise SurgtwinError(
            "the bundle records no sha256 for its weights, so they cannot be verified", path=weights,
            hint=f"after checking where the bundle comes from, write the file's sha256 into {side.name}",
        )

    pp = as_object(ours.get("postprocess"), meta_path, "surgtwin.postprocess", default={})

    def names_of(key):
        return as_str_list(pp.get(key), meta_path, f"surgtwin.postprocess.{key}")

    name = meta.get("name", root.name)
    version = meta.get("version", "?")
    return Bundle(
        path=root,
        name=as_str(name, meta_path, "name", max_len=120),
        version=as_str(str(version) if isinstance(version, (int, float)) else version, meta_path, "version", max_len=40),
        metadata=meta,
        modality="CT",
        in_channels=in_channels,
        channel_names=names,
        labels=table,
        channel_values=values,
        spacing_mm=spacing,
        axcodes=axcodes.upper(),
        hu_window=window,
        value_range=vrange,
        roi_size=roi,
        network_def=netdef,
        weights_path=weights,
        weights_sha256=digest,
        single_component=names_of("single_component"),
        fill_holes=names_of("fill_holes"),
        contrast_vessels=names_of("contrast_vessels"),
        tubular=names_of("tubular"),
        hu_refine_weight=_number_in(pp, "hu_refine_weight", 0.0, 5.0, meta_path,
                                    "0 turns the HU boundary refinement off; surgtwin's model uses 0.6"),
        thin_vessels=names_of("thin_vessels"),
        thin_vessel_grow_mm=_number_in(pp, "thin_vessel_grow_mm", 0.0, 50.0, meta_path,
                                       "how far (mm) thin contrast vessels are followed; 0 = not at all"),
        warnings=warnings,
        pipeline=pipeline,
    )


def _surgtwin_preprocessing(ours: dict, meta_path: Path, inf: dict, inf_path: Path, warnings: list):
    """(None, spacing, axcodes, HU window, value range, roi) of a surgtwin bundle."""
    spacing = ours.get("spacing_mm")
    axcodes = ours.get("axcodes")
    window = ours.get("hu_window")
    vrange = ours.get("value_range")
    spacing_where = meta_path
    if spacing is None:
        t = _find_transform(inf, "Spacingd") or _find_transform(inf, "Spacing")
        if t is None or "pixdim" not in t:
            raise SurgtwinError("cannot tell the model's voxel spacing", path=inf_path,
                                hint="add a Spacingd transform with pixdim, or surgtwin.spacing_mm in metadata.json")
        spacing, spacing_where = t["pixdim"], inf_path
    spacing = triple(spacing, spacing_where, "spacing (pixdim)", *SPACING_RANGE_MM)
    axcodes_where = meta_path
    if axcodes is None:
        t = _find_transform(inf, "Orientationd") or _find_transform(inf, "Orientation")
        axcodes_where = inf_path
        if t is None:
            axcodes = "RAS"
            warnings.append("no Orientationd in inference.json: assuming RAS array axes")
        else:
            axcodes = literal(t.get("axcodes", "RAS"), inf_path, "axcodes")
    checked_axcodes(axcodes, axcodes_where, "axcodes")
    window_where = meta_path
    if window is None or vrange is None:
        t = _find_transform(inf, "ScaleIntensityRanged") or _find_transform(inf, "ScaleIntensityRange")
        if t is None:
            raise SurgtwinError("cannot tell the model's HU window", path=inf_path,
                                hint="add ScaleIntensityRanged (a_min, a_max, b_min, b_max) or surgtwin.hu_window")
        # only the four numbers are read (a transform's other entries, e.g. "keys": "@image_key", are
        # the bundle's own business); each must be a literal
        window_where = inf_path
        window = [literal(t.get(k), inf_path, f"ScaleIntensityRanged.{k}") for k in ("a_min", "a_max")]
        vrange = [literal(t.get(k, d), inf_path, f"ScaleIntensityRanged.{k}")
                  for k, d in (("b_min", 0.0), ("b_max", 1.0))]
    window = pair(window, window_where, "HU window (hu_window / a_min, a_max)")
    vrange = pair(vrange, window_where, "value range (value_range / b_min, b_max)")
    if not window[1] > window[0]:
        raise SurgtwinError(f"HU window {window} is empty", path=window_where)
    roi = ours.get("roi_size")
    roi_where = meta_path
    if roi is None:
        t = _find_transform(inf, "SlidingWindowInferer")
        roi, roi_where = (t.get("roi_size") if t else (96, 96, 96)), inf_path
    roi = triple(roi, roi_where, "roi_size", *ROI_RANGE, integer=True)
    if math.prod(roi) > 512**3:
        raise SurgtwinError(f"roi_size {list(roi)} is too large a window for inference", path=roi_where)
    return None, spacing, axcodes, window, vrange, roi


def checked_axcodes(axcodes, where: Path, key: str) -> str:
    """``axcodes`` if it is three letters naming three different axes, else a refusal naming ``key``."""
    if not isinstance(axcodes, str):
        raise SurgtwinError(f"{key} must be a string of three letters such as \"RAS\", got {shown(axcodes)}",
                            path=where)
    try:
        axcodes_directions(axcodes)
    except SurgtwinError as exc:
        raise SurgtwinError(exc.reason, path=where) from None
    return axcodes


def _zoo_preprocessing(cfg):
    """(pipeline, spacing, axcodes, HU window, value range, roi) of a model-zoo bundle: the pipeline is
    what runs; the numbers are read from it for display (None / defaults where the bundle has none)."""
    from surgtwin.core.segmentation.bundle_zoo import parse_pipeline

    pipe = parse_pipeline(cfg)
    inf_path = cfg.path
    spacing = axcodes = None
    t = pipe.first("Spacingd")
    if t is not None:
        spacing = triple(t.args.get("pixdim"), inf_path, f"{t.where}.pixdim (spacing)", *SPACING_RANGE_MM)
    t = pipe.first("Orientationd")
    if t is not None:
        axcodes = checked_axcodes(t.args.get("axcodes"), inf_path, f"{t.where}.axcodes")
    window, vrange = (-1024.0, 3071.0), (-1024.0, 3071.0)
    t = pipe.first("ScaleIntensityRanged")
    if t is not None:
        window = pair([t.args.get("a_min"), t.args.get("a_max")], inf_path, f"{t.where} a_min, a_max")
        vrange = pair([t.args.get("b_min", 0.0), t.args.get("b_max", 1.0)], inf_path, f"{t.where} b_min, b_max")
    roi = tuple(pipe.inferer_args.get("roi_size", (0, 0, 0)))
    return pipe, spacing, (axcodes or "RAS").upper(), window, vrange, roi


def _number_in(pp: dict, key: str, lo: float, hi: float, meta_path, hint: str) -> float:
    value = pp.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= float(value) <= hi:
        raise SurgtwinError(f"surgtwin.postprocess.{key} = {value!r} is not a number from {lo:g} to {hi:g}",
                            path=meta_path, hint=hint)
    return float(value)


def default_bundle_dir() -> Path:
    """The bundled model shipped with surgtwin (``surgtwin/data/models/surgtwin_ct_multiorgan``, package data)."""
    import os

    env = os.environ.get("SURGTWIN_MODEL_DIR")
    if env:
        return Path(env)
    from surgtwin import resources

    return resources.bundled_model_dir() / DEFAULT_BUNDLE_NAME


DEFAULT_BUNDLE_NAME = "surgtwin_ct_multiorgan"
