"""Organ segmentation: a MONAI bundle (ours or a hospital's) or a classical, model-free fallback.

    from surgtwin.core.segmentation import segment
    result = segment(volume)                       # bundled model, CPU (CUDA when present)
    result = segment(volume, bundle="/path/to/bundle")
    result = segment(volume, method="classical")   # bone + contrast vessels, no model
    result.labels        # LabelMap on exactly the input's grid (shape and affine)
    result.structures    # per structure: volume_ml, confidence (mean softmax inside the mask)

torch and MONAI are imported inside the functions that need them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import CancelToken, ProgressFn, report
from surgtwin.core.types import LabelMap, LabelTable, Volume

__all__ = ["segment", "SegmentationResult", "StructureReport", "load_bundle", "default_bundle_dir"]


@dataclass
class StructureReport:
    value: int
    name: str
    voxels: int
    volume_ml: float
    confidence: float | None  # mean softmax probability inside the mask (None for classical)


@dataclass
class SegmentationResult:
    labels: LabelMap
    structures: list[StructureReport]
    method: str
    model: str | None = None
    timings_s: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def structure(self, name: str) -> StructureReport:
        for s in self.structures:
            if s.name == name:
                return s
        raise SurgtwinError(f"no structure named {name!r} in this segmentation",
                            hint=f"found: {[s.name for s in self.structures]}")

    def to_json(self) -> dict:
        return {
            "method": self.method,
            "model": self.model,
            "labels": self.labels.labels.to_json(),
            "structures": [
                {"value": s.value, "name": s.name, "voxels": s.voxels, "volume_ml": round(s.volume_ml, 3),
                 "confidence": None if s.confidence is None else round(s.confidence, 4)}
                for s in self.structures
            ],
            "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
            "warnings": list(self.warnings),
            "disclaimer": "NOT FOR CLINICAL USE",
        }


def load_bundle(path):
    from surgtwin.core.segmentation.bundle import load_bundle as _load

    return _load(path)


def default_bundle_dir() -> Path:
    from surgtwin.core.segmentation.bundle import default_bundle_dir as _d

    return _d()


def model_card() -> str:
    """A short summary of the bundled model (About boxes, ``surgtwin info``); reads its metadata only."""
    import json

    d = default_bundle_dir()
    f = d / "configs" / "metadata.json"
    if not f.is_file():
        return "no segmentation model installed"
    try:
        m = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"the bundled model's metadata is unreadable ({f}: {exc})"
    return (f"{m.get('name', '?')} {m.get('version', '?')}. {m.get('description', '')} "
            f"{m.get('intended_use', '')} Model card with training data and measured Dice: {d / 'docs' / 'README.md'}")


def _counts(array: np.ndarray, n_bins: int) -> np.ndarray:
    """Voxels per value of a non-negative integer array, in chunks (no whole-volume int64 copy: that
    would be 630 MB at 512 x 512 x 300)."""
    flat = array.ravel()
    n_bins = max(n_bins, int(flat.max(initial=0)) + 1)
    counts = np.zeros(n_bins, np.int64)
    for i in range(0, flat.size, 1 << 22):
        counts += np.bincount(flat[i:i + (1 << 22)], minlength=n_bins)
    return counts


def structure_reports(labels: LabelMap, confidences: dict[int, float] | None = None,
                      counts: np.ndarray | None = None) -> list[StructureReport]:
    """Volume (and confidence) per structure; ``counts``: voxels per label value when already known."""
    if counts is None:
        counts = _counts(labels.array, max((lab.value for lab in labels.labels), default=0) + 1)
    out = []
    for lab in labels.labels:
        n = int(counts[lab.value]) if lab.value < len(counts) else 0
        if n == 0:
            continue
        conf = None if confidences is None else confidences.get(lab.value)
        out.append(StructureReport(lab.value, lab.name, n, n * labels.voxel_volume_ml, conf))
    return out


#: a CT with air in the field of view has voxels near -1000 HU; none below this suggests raw stored
#: values (rescale slope/intercept not applied) when the scan is larger than a small crop
RAW_VALUES_MIN_HU = -200.0


def _checked_input(volume: Volume) -> tuple[Volume, list[str]]:
    """Non-finite voxels become air (with a warning: one NaN would otherwise blank the whole
    result); a CT without a single voxel below -200 HU gets a warning that its values may be raw."""
    from dataclasses import replace

    warnings = []
    arr = volume.array
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        n_bad = int(bad.sum())
        if n_bad:
            arr = np.where(bad, np.asarray(-1024.0, arr.dtype), arr)
            volume = replace(volume, array=arr)
            warnings.append(f"{n_bad} voxels were not numbers (NaN/inf) and were treated as air (-1024 HU)")
    if (volume.modality or "CT").upper() == "CT" and arr.size >= 32**3 and float(arr.min()) > RAW_VALUES_MIN_HU:
        warnings.append(f"no voxel is below {RAW_VALUES_MIN_HU:.0f} HU (minimum {float(arr.min()):.0f}): if these "
                        "are raw stored values, apply the rescale slope/intercept first (DICOM loading does); "
                        "labels may be wrong")
    return volume, warnings


def segment(
    volume: Volume,
    *,
    method: str = "model",
    bundle=None,
    device: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    **options,
) -> SegmentationResult:
    """Segment a CT ``Volume`` (HU). ``bundle``: a bundle folder or a loaded ``Bundle`` (default: ours).

    ``method="classical"`` needs no model (bone by HU threshold, contrast vessels from a seed; see
    ``surgtwin.core.segmentation.classical``; ``options`` go to it). The label map returned always has
    exactly the input's shape and affine.
    """
    if not isinstance(volume, Volume):
        raise SurgtwinError(f"segment() needs a Volume, got {type(volume).__name__}")
    volume, input_warnings = _checked_input(volume)
    if method == "classical":
        from surgtwin.core.segmentation.classical import segment_classical

        t0 = time.perf_counter()
        labels = segment_classical(volume, progress=progress, cancel=cancel, **options)
        return SegmentationResult(labels, structure_reports(labels), "classical",
                                  timings_s={"total": time.perf_counter() - t0}, warnings=input_warnings)
    if method != "model":
        raise SurgtwinError(f"unknown segmentation method {method!r}", hint="use 'model' or 'classical'")
    from surgtwin.core.segmentation.bundle import Bundle
    from surgtwin.core.segmentation.inference import run_model

    if bundle is None:
        bundle = default_bundle_dir()
        if not (Path(bundle) / "configs" / "metadata.json").is_file():
            raise SurgtwinError("the bundled segmentation model is not installed", path=bundle,
                                hint="reinstall surgtwin, pass --bundle DIR, or use --method classical")
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    out = run_model(volume, b, device=device, progress=progress, cancel=cancel, **options)
    report(progress, 0.97, "measuring structures")
    lut = b.channel_values
    dtype = np.uint8 if lut.max(initial=0) < 256 else np.uint16
    values = lut.astype(dtype)[out.channels_source]
    # the label table lists the structures found in this scan (like a DICOM SEG's segments), not all
    # the bundle can segment: a cardiac CT's result has no "kidney_left" entry
    n_src = _counts(out.channels_source, b.out_channels)
    found = {int(lut[c]) for c in np.nonzero(n_src)[0] if c}
    found_labels = LabelTable([lab for lab in b.labels if lab.value in found])
    labels = LabelMap(values, volume.affine.copy(), frame_of_reference_uid=volume.frame_of_reference_uid,
                      modality="SEG", metadata={"source": "surgtwin segmentation", "model": b.name}, labels=found_labels)
    conf = {}
    probs = out.probs_grid
    for c in range(1, b.out_channels):
        mask = out.channels_grid == c
        if mask.any():
            conf[int(lut[c])] = float(probs[c].numpy()[mask].mean())
    by_value = np.zeros(int(lut.max(initial=0)) + 1, np.int64)
    np.add.at(by_value, lut, n_src[:len(lut)])
    res = SegmentationResult(labels, structure_reports(labels, conf, by_value), "model", model=f"{b.name} {b.version}",
                             timings_s=out.timings_s, warnings=[*input_warnings, *b.warnings])
    report(progress, 1.0, "done")
    return res
