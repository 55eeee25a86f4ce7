"""The actions the app (and the CLI) run: open images and labels, find series, segment, mesh.

Every function here calls into ``surgtwin.core`` where the real work lives (the DICOM loader, the
mesher, segmentation); nothing here computes anatomy. Long functions take ``progress`` and ``cancel``
keywords.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import check, report

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")


def _optional(module: str):
    """Import a core module that may not exist yet; None when it does not."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name) or exc.name == module:
            return None
        raise


# -- sample cases --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleCase:
    name: str
    folder: Path

    @property
    def dicom(self) -> Path:
        return self.folder / "dicom"

    @property
    def labels_nifti(self) -> Path:
        return self.folder / "labels.nii.gz"

    @property
    def labels_json(self) -> Path:
        return self.folder / "labels.json"


def sample_root() -> Path:
    from surgtwin import resources

    return resources.sample_root()


def sample_cases(root: Path | None = None) -> list[SampleCase]:
    """The bundled sample cases (``sample_dicom/<case>/dicom/``), in a stable order."""
    root = sample_root() if root is None else Path(root)
    if not root.is_dir():
        return []
    preferred = ["abdomen-pelvis", "cardiac-cta", "head"]
    cases = [SampleCase(p.name, p) for p in sorted(root.iterdir()) if (p / "dicom").is_dir()]
    return sorted(cases, key=lambda c: (preferred.index(c.name) if c.name in preferred else 99, c.name))


def find_case_for(path: Path) -> SampleCase | None:
    """The case a path names: a folder holding ``dicom/``, or that ``dicom/`` folder itself."""
    path = Path(path).resolve()
    if path.is_dir() and (path / "dicom").is_dir():
        return SampleCase(path.name, path)
    if path.is_dir() and path.name == "dicom":
        return SampleCase(path.parent.name, path.parent)
    return None


# -- series and images ---------------------------------------------------------------------------
def find_series(folder, *, progress=None, cancel=None) -> list:
    """Every DICOM series candidate under ``folder`` (with warnings), before loading."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SurgtwinError("is not a folder", path=folder, hint="choose a folder that holds DICOM files")
    from surgtwin.core.dicom import find_series as core_find_series

    return list(core_find_series(folder, progress=progress, cancel=cancel))


def load_volume(path, *, series_uid=None, progress=None, cancel=None):
    """Open a DICOM folder/file, NIfTI, NRRD or MHA as a ``Volume`` (LPS)."""
    path = Path(path)
    if not path.exists():
        raise SurgtwinError("does not exist", path=path, hint="check the path or pick another file")
    from surgtwin.core.io import load_volume as core_load_volume

    return core_load_volume(path, series_uid=series_uid, progress=progress, cancel=cancel)


def load_labels(path, reference, *, table_path=None, progress=None, cancel=None):
    """Read a label image (NIfTI/NRRD/...) onto ``reference``'s grid, with its label table."""
    from dataclasses import replace

    from surgtwin.core.geometry import resample_to
    from surgtwin.core.types import LabelMap, LabelTable

    path = Path(path)
    report(progress, 0.1, f"reading {path.name}")
    vol = load_volume(path, cancel=cancel)
    if not np.issubdtype(vol.array.dtype, np.integer):
        vol = vol.with_array(np.rint(vol.array).astype(np.int32))
    if not vol.same_geometry(reference, atol_mm=0.05):
        report(progress, 0.5, "resampling labels onto the image grid")
        vol = resample_to(vol, reference, interpolation="nearest")
    if table_path is None:
        for cand in (path.with_name(path.name.split(".")[0] + ".json"), path.parent / "labels.json"):
            if cand.is_file():
                table_path = cand
                break
    values = [int(v) for v in np.unique(vol.array) if v > 0]
    if table_path is not None:
        table = LabelTable.load(table_path)
    else:
        from surgtwin.core.types import Label

        table = LabelTable(Label(v, f"label {v}", _default_color(v)) for v in values)
    arr = vol.array.astype(np.uint8 if max(values, default=0) < 256 else np.uint16)
    report(progress, 1.0, "labels loaded")
    return LabelMap(arr, reference.affine.copy(), reference.frame_of_reference_uid, None, {}, labels=table) \
        if not isinstance(vol, LabelMap) else replace(vol, array=arr)


def _default_color(v: int) -> tuple[int, int, int]:
    palette = [(230, 90, 80), (90, 170, 230), (240, 200, 80), (120, 200, 120), (200, 120, 220),
               (250, 150, 60), (80, 200, 200), (220, 220, 220)]
    return palette[(v - 1) % len(palette)]


def open_case(path, *, series_uid=None, progress=None, cancel=None):
    """Open an image; for a sample case also its reference labels. Returns (volume, labels|None, source)."""
    from surgtwin.core.progress import scaled

    path = Path(path)
    case = find_case_for(path)
    image_path = case.dicom if case is not None else path
    volume = load_volume(image_path, series_uid=series_uid, progress=scaled(progress, 0, 0.8), cancel=cancel)
    labels = None
    folder = case.folder if case is not None else (path.parent if path.is_file() else None)
    lab_path = folder / "labels.nii.gz" if folder is not None else None
    if lab_path is not None and lab_path.is_file() and lab_path.resolve() != path.resolve():
        table = folder / "labels.json"
        labels = load_labels(lab_path, volume, table_path=table if table.is_file() else None,
                             progress=scaled(progress, 0.8, 1.0), cancel=cancel)
    source = {"path": str(image_path.resolve()), "series_uid": series_uid}
    return volume, labels, source


# -- segmentation and meshes ---------------------------------------------------------------------
def segmentation_available() -> bool:
    seg = _optional("surgtwin.core.segmentation")
    return seg is not None and hasattr(seg, "segment")


def segment(volume, *, method="classical", bundle=None, progress=None, cancel=None):
    """Segment ``volume`` with ``surgtwin.core.segmentation``: ``method="model"`` (``bundle``: a bundle
    folder or loaded ``Bundle``; None = the bundled model) or ``"classical"`` (no model).

    Returns core's ``SegmentationResult``: ``.labels`` (LabelMap on the input grid) and
    ``.structures`` (volume_ml and, for a model, confidence per structure), ``.method``, ``.model``.
    """
    seg = _optional("surgtwin.core.segmentation")
    if seg is None or not hasattr(seg, "segment"):
        raise SurgtwinError("segmentation is not available yet in this build",
                            hint="open a sample case (it ships reference labels) or load a label file")
    return seg.segment(volume, method=method, bundle=bundle, progress=progress, cancel=cancel)


def bundled_model_dir() -> Path | None:
    """The folder of the model bundle shipped with surgtwin (None without segmentation in this build)."""
    seg = _optional("surgtwin.core.segmentation")
    if seg is None or not hasattr(seg, "default_bundle_dir"):
        return None
    return Path(seg.default_bundle_dir())


def bundled_model_available() -> bool:
    """True when the bundled model's metadata and weights are on disk (they are verified when used)."""
    folder = bundled_model_dir()
    if folder is None or not (folder / "configs" / "metadata.json").is_file():
        return False
    return any((folder / "models" / w).is_file() for w in ("model.pt", "model.safetensors"))


def check_bundle(folder, *, progress=None, cancel=None):
    """Validate a (hospital's) MONAI bundle folder the way segmentation will use it: read its configs,
    build the network and load the weights after checking their sha256. Returns the loaded ``Bundle``.

    Any refusal is a ``SurgtwinError`` whose path is ``folder`` and whose reason says what is wrong.
    """
    from surgtwin.core.progress import Cancelled

    folder = Path(folder)
    seg = _optional("surgtwin.core.segmentation")
    if seg is None or not hasattr(seg, "load_bundle"):
        raise SurgtwinError("segmentation is not available yet in this build", path=folder)

    def refuse(reason: str, where=None, hint=None):
        if where is not None and Path(where) != folder:
            try:
                where = Path(where).relative_to(folder)
            except ValueError:
                pass
            reason = f"{reason} ({where})"
        return SurgtwinError(f"not a usable MONAI bundle: {reason}", path=folder,
                             hint=hint or "choose the folder that holds configs/ and models/ of a CT bundle")

    report(progress, 0.05, "reading the bundle's configs")
    try:
        bundle = seg.load_bundle(folder)
    except SurgtwinError as exc:
        raise refuse(exc.reason, exc.path, exc.hint) from None
    check(cancel)
    report(progress, 0.3, "checking the weights (sha256) and building the network")
    try:
        bundle.build_network("cpu")
    except SurgtwinError as exc:
        raise refuse(exc.reason, exc.path, exc.hint) from None
    except Cancelled:
        raise
    except Exception as exc:  # noqa: BLE001 - a hospital's network_def can fail in MONAI in many ways
        raise refuse(f"its network could not be built ({type(exc).__name__}: {str(exc)[:200]})",
                     folder / "configs" / "inference.json") from None
    report(progress, 1.0, f"{bundle.name} {bundle.version}")
    return bundle


#: triangle budget for a whole case's display meshes (the 3D view); export keeps full resolution
DISPLAY_TRIANGLE_BUDGET = 600_000
#: no display mesh is decimated below this many triangles
MIN_TRIANGLES_PER_STRUCTURE = 4_000


def display_triangle_budget(n_structures: int, total: int = DISPLAY_TRIANGLE_BUDGET) -> int:
    """Per-structure triangle budget so that ``n_structures`` meshes stay within ``total``."""
    return max(MIN_TRIANGLES_PER_STRUCTURE, int(total // max(1, n_structures)))


def build_meshes(labelmap, *, labels=None, target_triangles=None, progress=None, cancel=None) -> dict:
    """Surface meshes (LPS mm) of the structures of ``labelmap``: name -> mesh.

    ``target_triangles``: per-structure triangle budget (quadric decimation); None = full resolution,
    as used for export. The app asks for ``display_meshes`` instead.
    """
    from surgtwin.core.mesh import surfaces_from_labels

    return surfaces_from_labels(labelmap, labels=labels, target_triangles=target_triangles,
                                progress=progress, cancel=cancel)


def display_meshes(labelmap, *, labels=None, total_triangles=DISPLAY_TRIANGLE_BUDGET, progress=None,
                   cancel=None) -> dict:
    """Meshes for the 3D view: the case stays near ``total_triangles`` (an even per-structure share;
    small structures keep their full resolution). Built at full resolution, then simplified by
    vertex clustering (``target_triangles=`` in the core mesher uses quadric decimation, which took
    ~130 s instead of ~25 s for the abdomen-pelvis sample case)."""
    from surgtwin.core.progress import scaled
    from surgtwin.services.meshing import simplify_for_display

    n = len(labelmap.labels) or (len(labels) if labels is not None else 1)  # same share for partial refreshes
    target = display_triangle_budget(n, total_triangles)
    full = build_meshes(labelmap, labels=labels, progress=scaled(progress, 0, 0.9), cancel=cancel)
    out = {}
    for k, (name, m) in enumerate(full.items()):
        check(cancel)
        report(progress, 0.9 + 0.1 * k / max(1, len(full)), f"simplifying {name}")
        out[name] = simplify_for_display(m, target)
    report(progress, 1.0, f"{len(out)} surfaces")
    return out
