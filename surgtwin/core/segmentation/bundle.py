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
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.types import Label, LabelTable

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
    spacing_mm: tuple[float, float, float]  # along array axes 0, 1, 2 of the network input
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
        """Construct the network from ``network_def`` and load the verified weights (no pickle)."""
        from monai import networks

        target = str(self.network_def.get("_target_", "")).split(".")[-1]
        kwargs = {k: v for k, v in self.network_def.items() if k != "_target_"}
        cls = getattr(networks.nets, target)
        try:
            net = cls(**kwargs)
        except TypeError as exc:
            raise SurgtwinError(
                f"network_def for {target} has arguments it does not accept ({exc})",
                path=self.path / "configs" / "inference.json",
                hint="fix network_def so that it matches the MONAI version installed",
            ) from None
        state = load_weights(self.weights_path, self.weights_sha256)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise SurgtwinError(
                "the weights do not fit the network that network_def describes "
                f"({str(exc).splitlines()[0]})",
                path=self.weights_path,
                hint="the bundle's inference.json and models/model.pt come from different models",
            ) from None
        net.eval()
        return net.to(device)


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
        return load_file(str(path))
    import pickle

    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise SurgtwinError(
            f"cannot read the weights safely ({str(exc).splitlines()[0][:200]})",
            path=path,
            hint="surgtwin only loads plain state dicts (torch.save(model.state_dict()) or safetensors)",
        ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise SurgtwinError("the weights file does not hold a state dict", path=path)
    return obj


# -- parsing helpers -------------------------------------------------------------------------------
def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise SurgtwinError(
            "missing file of the MONAI bundle", path=path, hint="a bundle needs configs/metadata.json, "
            "configs/inference.json and models/model.pt"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SurgtwinError(f"not valid JSON ({exc})", path=path) from None
    if not isinstance(data, dict):
        raise SurgtwinError("expected a JSON object at the top level", path=path)
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


def _literal(value, where: Path, key: str):
    """Refuse config expressions: surgtwin never evaluates code from a bundle."""
    if isinstance(value, str) and value[:1] in ("$", "@", "%"):
        raise SurgtwinError(
            f"{key} is a config expression ({value!r}); surgtwin only reads literal values",
            path=where,
            hint=f"write {key} as a plain JSON number/list in the bundle",
        )
    if isinstance(value, list):
        return [_literal(v, where, key) for v in value]
    if isinstance(value, dict):
        return {k: _literal(v, where, f"{key}.{k}") for k, v in value.items()}
    return value


def _triple(value, where: Path, key: str, cast=float):
    value = _literal(value, where, key)
    if isinstance(value, (int, float)):
        value = [value] * 3
    try:
        out = tuple(cast(v) for v in value)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or any(v <= 0 for v in out):
        raise SurgtwinError(f"{key} must be three positive numbers, got {value!r}", path=where)
    return out  # type: ignore[return-value]


def load_bundle(path: str | Path) -> Bundle:
    """Read and validate a bundle folder; raise ``SurgtwinError`` naming the file/field at fault."""
    root = Path(path)
    if not root.is_dir():
        raise SurgtwinError("model bundle folder not found", path=root, hint="pass the folder that holds configs/ and models/")
    meta_path = root / "configs" / "metadata.json"
    inf_path = root / "configs" / "inference.json"
    meta = _read_json(meta_path)
    inf = _read_json(inf_path)
    ours = meta.get("surgtwin", {}) if isinstance(meta.get("surgtwin", {}), dict) else {}
    warnings: list[str] = []

    # -- inputs -------------------------------------------------------------------------------
    ndf = meta.get("network_data_format")
    try:
        inputs = ndf["inputs"]
        image = inputs["image"] if "image" in inputs else next(iter(inputs.values()))
        outputs = ndf["outputs"]
        pred = outputs["pred"] if "pred" in outputs else next(iter(outputs.values()))
    except (TypeError, KeyError, StopIteration):
        raise SurgtwinError(
            "metadata has no network_data_format with inputs and outputs", path=meta_path,
            hint="see MONAI's bundle specification (mb_specification)",
        ) from None
    modality = str(image.get("modality", "n/a"))
    if modality.upper() not in ("CT",):
        raise SurgtwinError(
            f"the bundle's input modality is {modality!r}; surgtwin segments CT volumes",
            path=meta_path, hint="network_data_format.inputs.image.modality must be \"CT\"",
        )
    in_channels = int(image.get("num_channels", 1))
    if in_channels != 1:
        raise SurgtwinError(
            f"the bundle expects {in_channels} input channels; surgtwin feeds one CT channel",
            path=meta_path, hint="use a single-channel CT model (network_data_format.inputs.image.num_channels = 1)",
        )

    # -- outputs --------------------------------------------------------------------------------
    cdef = pred.get("channel_def")
    if not isinstance(cdef, dict) or not cdef:
        raise SurgtwinError("outputs.pred.channel_def is missing", path=meta_path,
                            hint="name every output channel, e.g. {\"0\": \"background\", \"1\": \"liver\"}")
    try:
        channels = {int(k): str(v) for k, v in cdef.items()}
    except ValueError:
        raise SurgtwinError("channel_def keys must be channel numbers", path=meta_path) from None
    n_out = int(pred.get("num_channels", len(channels)))
    if sorted(channels) != list(range(n_out)):
        raise SurgtwinError(
            f"channel_def names channels {sorted(channels)} but num_channels is {n_out}", path=meta_path,
            hint="channel_def must name channels 0..num_channels-1",
        )
    names = [channels[c] for c in range(n_out)]
    by_channel = {}
    for item in ours.get("labels", []) or []:
        try:
            by_channel[int(item["channel"])] = item
        except (KeyError, TypeError, ValueError):
            raise SurgtwinError(f"malformed surgtwin.labels entry {item!r}", path=meta_path) from None
    table = LabelTable()
    values = np.zeros(n_out, dtype=np.int64)
    for c in range(1, n_out):
        item = by_channel.get(c, {})
        value = int(item.get("value", c))
        color = tuple(int(x) for x in item.get("color", _default_color(c)))[:3]
        table.add(Label(value=value, name=str(item.get("name", names[c])), color=color, code=item.get("code")))
        values[c] = value

    # -- preprocessing -------------------------------------------------------------------------
    spacing = ours.get("spacing_mm")
    axcodes = ours.get("axcodes")
    window = ours.get("hu_window")
    vrange = ours.get("value_range")
    if spacing is None:
        t = _find_transform(inf, "Spacingd") or _find_transform(inf, "Spacing")
        if t is None or "pixdim" not in t:
            raise SurgtwinError("cannot tell the model's voxel spacing", path=inf_path,
                                hint="add a Spacingd transform with pixdim, or surgtwin.spacing_mm in metadata.json")
        spacing = t["pixdim"]
    spacing = _triple(spacing, inf_path, "spacing (pixdim)")
    if axcodes is None:
        t = _find_transform(inf, "Orientationd") or _find_transform(inf, "Orientation")
        if t is None:
            axcodes = "RAS"
            warnings.append("no Orientationd in inference.json: assuming RAS array axes")
        else:
            axcodes = _literal(t.get("axcodes", "RAS"), inf_path, "axcodes")
    axcodes_directions(axcodes)
    if window is None or vrange is None:
        t = _find_transform(inf, "ScaleIntensityRanged") or _find_transform(inf, "ScaleIntensityRange")
        if t is None:
            raise SurgtwinError("cannot tell the model's HU window", path=inf_path,
                                hint="add ScaleIntensityRanged (a_min, a_max, b_min, b_max) or surgtwin.hu_window")
        # only the four numbers are read (a transform's other entries, e.g. "keys": "@image_key", are
        # the bundle's own business); each must be a literal
        window = tuple(_literal(t.get(k), inf_path, f"ScaleIntensityRanged.{k}") for k in ("a_min", "a_max"))
        vrange = tuple(_literal(t.get(k, d), inf_path, f"ScaleIntensityRanged.{k}")
                       for k, d in (("b_min", 0.0), ("b_max", 1.0)))
    try:
        window = (float(window[0]), float(window[1]))
        vrange = (float(vrange[0]), float(vrange[1]))
    except (TypeError, ValueError, IndexError):
        raise SurgtwinError(f"HU window {window!r} / value range {vrange!r} are not numbers", path=meta_path) from None
    if not window[1] > window[0]:
        raise SurgtwinError(f"HU window {window} is empty", path=meta_path)
    roi = ours.get("roi_size")
    if roi is None:
        t = _find_transform(inf, "SlidingWindowInferer")
        roi = t.get("roi_size") if t else (96, 96, 96)
    roi = _triple(roi, inf_path, "roi_size", cast=int)

    # -- network -----------------------------------------------------------------------------------
    netdef = inf.get("network_def")
    if not isinstance(netdef, dict):
        raise SurgtwinError("inference.json has no network_def", path=inf_path,
                            hint="describe the network, e.g. {\"_target_\": \"UNet\", ...}")
    netdef = _literal(netdef, inf_path, "network_def")
    target = str(netdef.get("_target_", "")).split(".")[-1]
    if target not in ALLOWED_NETWORKS:
        raise SurgtwinError(f"network {netdef.get('_target_')!r} is not supported", path=inf_path,
                            hint=f"surgtwin builds these MONAI networks: {', '.join(ALLOWED_NETWORKS)}")
    for key in ("in_channels",):
        if key in netdef and int(netdef[key]) != in_channels:
            raise SurgtwinError(f"network_def.{key} = {netdef[key]} but metadata says {in_channels} input channels",
                                path=inf_path)
    for key in ("out_channels",):
        if key in netdef and int(netdef[key]) != n_out:
            raise SurgtwinError(f"network_def.{key} = {netdef[key]} but channel_def names {n_out} channels",
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
    digest = ours.get("weights_sha256")
    side = weights.with_name(weights.name + ".sha256")
    if not digest and side.is_file():
        digest = side.read_text().split()[0] if side.read_text().split() else None
    if not digest:
        raise SurgtwinError(
            "the bundle records no sha256 for its weights, so they cannot be verified", path=weights,
            hint=f"after checking where the bundle comes from, write the file's sha256 into {side.name}",
        )

    pp = ours.get("postprocess", {}) or {}
    return Bundle(
        path=root,
        name=str(meta.get("name", root.name)),
        version=str(meta.get("version", "?")),
        metadata=meta,
        modality=modality,
        in_channels=in_channels,
        channel_names=names,
        labels=table,
        channel_values=values,
        spacing_mm=spacing,
        axcodes=str(axcodes).upper(),
        hu_window=window,
        value_range=vrange,
        roi_size=roi,
        network_def=netdef,
        weights_path=weights,
        weights_sha256=str(digest),
        single_component=tuple(pp.get("single_component", ())),
        fill_holes=tuple(pp.get("fill_holes", ())),
        contrast_vessels=tuple(str(n) for n in pp.get("contrast_vessels", ()) or ()),
        tubular=tuple(str(n) for n in pp.get("tubular", ()) or ()),
        hu_refine_weight=_number_in(pp, "hu_refine_weight", 0.0, 5.0, meta_path,
                                    "0 turns the HU boundary refinement off; surgtwin's model uses 0.6"),
        thin_vessels=tuple(str(n) for n in pp.get("thin_vessels", ()) or ()),
        thin_vessel_grow_mm=_number_in(pp, "thin_vessel_grow_mm", 0.0, 50.0, meta_path,
                                       "how far (mm) thin contrast vessels are followed; 0 = not at all"),
        warnings=warnings,
    )


def _number_in(pp: dict, key: str, lo: float, hi: float, meta_path, hint: str) -> float:
    value = pp.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= float(value) <= hi:
        raise SurgtwinError(f"surgtwin.postprocess.{key} = {value!r} is not a number from {lo:g} to {hi:g}",
                            path=meta_path, hint=hint)
    return float(value)


def _default_color(c: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(c)
    return tuple(int(x) for x in rng.integers(40, 255, 3))  # type: ignore[return-value]


def default_bundle_dir() -> Path:
    """The bundled model shipped with surgtwin (``surgtwin/data/models/surgtwin_ct_multiorgan``, package data)."""
    import os

    env = os.environ.get("SURGTWIN_MODEL_DIR")
    if env:
        return Path(env)
    from surgtwin import resources

    return resources.bundled_model_dir() / DEFAULT_BUNDLE_NAME


DEFAULT_BUNDLE_NAME = "surgtwin_ct_multiorgan"
