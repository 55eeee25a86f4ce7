"""The pipeline over a case: open an image as a case, then named steps (segment, mesh, tet, ...).

The CLI (``surgtwin case run``) and the app call the same functions, so a step never behaves
differently between them. A step runs in three parts so the app can compute off the GUI thread:

* ``prepare_step(case, name, **options)`` on the thread that owns the case: checks the inputs are
  present and current (stale inputs are refused unless ``allow_stale=True``) and snapshots them;
* ``StepJob.compute(progress=, cancel=)`` anywhere: the long work, on the snapshot only;
* ``StepOutput.apply_to(case)`` back on the owner thread: puts the items, with provenance, into
  the case. A label map is only replaced if the labels were not edited meanwhile
  (``LabelsEditedError`` otherwise, so the user's painting is never silently overwritten).

``run_step`` does all three in a row (headless). Nothing here computes anatomy: the work is in
``surgtwin.core``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from surgtwin.core.case import Case, Provenance, SourceRef
from surgtwin.core.case.model import labels_content_hash
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import check, report, scaled

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")


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
    """The bundled sample cases (``<samples>/<case>/dicom/``), in a stable order."""
    root = sample_root() if root is None else Path(root)
    if not root.is_dir():
        return []
    preferred = ["abdomen-pelvis", "cardiac-cta", "head"]
    cases = [SampleCase(p.name, p) for p in sorted(root.iterdir()) if (p / "dicom").is_dir()]
    return sorted(cases, key=lambda c: (preferred.index(c.name) if c.name in preferred else 99, c.name))


def find_case_for(path: Path) -> SampleCase | None:
    """The sample-style case a path names: a folder holding ``dicom/``, or that ``dicom/`` itself."""
    path = Path(path).resolve()
    if path.is_dir() and (path / "dicom").is_dir():
        return SampleCase(path.name, path)
    if path.is_dir() and path.name == "dicom":
        return SampleCase(path.parent.name, path.parent)
    return None


# -- images, labels and cases ----------------------------------------------------------------------
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
    """A label image on ``reference``'s grid with its table, by ``surgtwin.core.labels_io``'s rules."""
    from surgtwin.core.labels_io import read_labelmap

    return read_labelmap(path, reference=reference, table_path=table_path, progress=progress, cancel=cancel)


def is_case_path(path) -> bool:
    """A ``.stwin`` case folder or a schema-1 session folder (opened with ``load_case``)."""
    from surgtwin.core.case import is_case_folder

    p = Path(path)
    return p.is_dir() and (is_case_folder(p) or (p / "session.json").is_file())


def new_case(path, *, series_uid=None, labels=None, progress=None, cancel=None) -> Case:
    """A new case from an image: a DICOM folder or file, a NIfTI/NRRD/MHA file, or a sample case
    folder (whose reference labels come with it). ``labels``: a label image to import as well."""
    from surgtwin.core.io import is_itk_file

    path = Path(path)
    sample = find_case_for(path)
    image = sample.dicom if sample is not None else path
    volume = load_volume(image, series_uid=series_uid, progress=scaled(progress, 0, 0.8), cancel=cancel)
    md = volume.metadata
    source = SourceRef(path=str(image.resolve()), kind="image" if image.is_file() and is_itk_file(image) else "dicom",
                       series_uid=md.get("series_uid") or series_uid, study_uid=md.get("study_uid"),
                       frame_of_reference_uid=volume.frame_of_reference_uid, modality=volume.modality)
    name = sample.name if sample is not None else (image.name.split(".")[0] if image.is_file() else image.name)
    case = Case(volume, source, name=name)
    lab_path = Path(labels) if labels is not None else None
    if lab_path is None:
        folder = sample.folder if sample is not None else (path.parent if path.is_file() else None)
        cand = folder / "labels.nii.gz" if folder is not None else None
        if cand is not None and cand.is_file() and cand.resolve() != path.resolve():
            lab_path = cand
    if lab_path is not None:
        lab = load_labels(lab_path, volume, progress=scaled(progress, 0.8, 1.0), cancel=cancel)
        case.set_labels(lab, Provenance("import", {"file": lab_path.name}))
    case.mark_saved()
    report(progress, 1.0, "case ready")
    return case


def load_case(path, *, progress=None, cancel=None) -> Case:
    """Open a saved case (``.stwin``; a schema-1 session folder is migrated)."""
    from surgtwin.core.case import open_case

    return open_case(path, progress=progress, cancel=cancel)


def load_case_staged(path, *, progress=None, cancel=None):
    """``(case, deferred)``: the image and label map now, the other items (meshes, results) as
    ``DeferredItems`` to ``load`` next, so a window paints the case before its meshes are read."""
    from surgtwin.core.case.store import DeferredItems, open_case_staged

    path = Path(path)
    if not (path / "manifest.json").exists():  # a schema-1 session: migrated whole
        return load_case(path, progress=progress, cancel=cancel), DeferredItems(path, {})
    return open_case_staged(path, progress=progress, cancel=cancel)


def save_case(case: Case, path, *, progress=None, cancel=None) -> Path:
    from surgtwin.core.case import SUFFIX
    from surgtwin.core.case import save_case as core_save

    path = Path(path)
    if not path.name.endswith(SUFFIX):
        path = path.with_name(path.name + SUFFIX)
    return core_save(case, path, progress=progress, cancel=cancel)


# -- steps -----------------------------------------------------------------------------------------
@dataclass
class StepOutput:
    """What a step made: ``items`` {key: (value, Provenance)}, maybe a new label map, a summary."""

    step: str
    items: dict = field(default_factory=dict)
    labels: tuple | None = None  # (LabelMap, Provenance)
    based_on_revision: int | None = None
    merge_meshes: bool = False
    summary: dict = field(default_factory=dict)
    result: object = None  # the core result object (e.g. SegmentationResult) for the app's messages

    def apply_to(self, case: Case) -> StepOutput:
        if self.labels is not None:
            lab, prov = self.labels
            case.set_labels(lab, prov, expected_revision=self.based_on_revision)
        for key, (value, prov) in self.items.items():
            if key == "meshes" and self.merge_meshes:
                old = case.item("meshes")
                merged = dict(old.value) if old is not None else {}
                names = set(prov.parameters.get("structures") or [])
                for n in [n for n in merged if n in names and n not in value]:
                    del merged[n]  # a structure painted away
                merged.update(value)
                if old is not None:
                    prov = replace(prov, parameters={**old.provenance.parameters,
                                                     "updated_structures": sorted(names)})
                value = merged
            case.set_item(key, value, prov)
        return self


@dataclass
class StepJob:
    """A prepared step: ``compute`` runs the long part on a snapshot, off the case's thread."""

    step: str
    fn: object
    args: tuple

    def compute(self, *, progress=None, cancel=None) -> StepOutput:
        return self.fn(*self.args, progress=progress, cancel=cancel)


def _labels_snapshot(case: Case):
    lab = case.labels
    return replace(lab, array=lab.array.copy())


def _segment(volume, opts, revision, *, progress=None, cancel=None) -> StepOutput:
    from surgtwin.core.segmentation import default_bundle_dir, load_bundle, segment

    method = opts.get("method", "model")
    params = {"method": method}
    model = None
    kwargs = {}
    if method == "model":
        bundle_dir = Path(opts.get("bundle") or default_bundle_dir())
        bundle = load_bundle(bundle_dir)
        kwargs["bundle"] = bundle
        model = {"name": bundle.name, "version": bundle.version, "sha256": bundle.weights_sha256}
        params["bundle"] = "bundled" if opts.get("bundle") is None else bundle_dir.name
        if opts.get("device"):
            kwargs["device"] = params["device"] = opts["device"]
    elif method == "classical":
        if opts.get("seed_lps") is not None:
            kwargs["seed_lps"] = params["seed_lps"] = [float(v) for v in opts["seed_lps"]]
    else:
        raise SurgtwinError(f"unknown segmentation method {method!r}", hint="use 'model' or 'classical'")
    if volume.modality is None:
        volume = replace(volume, modality="CT")  # NIfTI/NRRD/MHA carry no modality: the user says it is a CT
    res = segment(volume, method=method, progress=progress, cancel=cancel, **kwargs)
    from surgtwin.services.quality import QUALITY_KEY, gate_segmentation, provenance_for

    gate = gate_segmentation(volume, res)  # removed structures leave the label map; flagged ones are recorded
    prov = Provenance(f"segment:{method}", params, model=model)
    structs = gate.record["structures"]
    summary = {"structures": {s.name: {"volume_ml": round(s.volume_ml, 2), "confidence": s.confidence,
                                       "status": structs[s.name]["status"]} for s in res.structures},
               "warnings": list(res.warnings), "quality": gate.record}
    return StepOutput("segment", items={QUALITY_KEY: (gate.record, provenance_for(gate.record))},
                      labels=(gate.labels, prov), based_on_revision=revision, summary=summary, result=res)


def compute_surfaces(labelmap, *, structures=None, smoothing_iterations=20, target_triangles=None,
                     progress=None, cancel=None) -> tuple[dict, Provenance]:
    """Surfaces of ``labelmap`` and their provenance (what the mesh step and ``surgtwin mesh`` run)."""
    from surgtwin.core.mesh import surfaces_from_labels

    if smoothing_iterations < 0:
        raise SurgtwinError(f"smoothing iterations must be >= 0, got {smoothing_iterations}")
    meshes = surfaces_from_labels(labelmap, labels=structures, smoothing_iterations=smoothing_iterations,
                                  target_triangles=target_triangles, progress=progress, cancel=cancel)
    params = {"smoothing_iterations": int(smoothing_iterations), "target_triangles": target_triangles}
    if structures:
        params["structures"] = list(structures)
    return meshes, Provenance("surfaces", params, {"labels": labels_content_hash(labelmap)})


def _mesh(labels, opts, *, progress=None, cancel=None) -> StepOutput:
    """Surfaces of all (or ``structures``) structures. ``merge=True`` (the app's refresh after
    edits) rebuilds only ``structures`` and keeps the case's other meshes: the caller must only
    merge when those were current before the edits, since the result is recorded as current."""
    structures = opts.get("structures")
    if structures:
        present = {lab.name for lab in labels.labels}
        missing = [s for s in structures if s not in present]
        if missing and not opts.get("merge"):
            raise SurgtwinError(f"no structure named {', '.join(map(repr, missing))} in the label map",
                                hint=f"known: {', '.join(sorted(present))}")
        structures = [s for s in structures if s in present and np.any(labels.mask(s))]
    if opts.get("merge") and not structures:  # every edited structure was painted away
        prov = Provenance("surfaces", {"structures": list(opts.get("structures") or [])},
                          {"labels": labels_content_hash(labels)})
        return StepOutput("mesh", items={"meshes": ({}, prov)}, merge_meshes=True, summary={"structures": {}})
    meshes, prov = compute_surfaces(labels, structures=structures,
                                    smoothing_iterations=opts.get("smoothing_iterations", 20),
                                    target_triangles=opts.get("target_triangles"), progress=progress, cancel=cancel)
    if opts.get("merge"):
        prov.parameters["structures"] = list(opts.get("structures") or [])
    summary = {"structures": {n: {"triangles": int(len(m.faces)),
                                  "volume_ml": round(m.quality.volume_ml, 2) if m.quality else None}
                              for n, m in meshes.items()}}
    return StepOutput("mesh", items={"meshes": (meshes, prov)}, merge_meshes=bool(opts.get("merge")),
                      summary=summary)


def _tet(labels, volume, opts, *, progress=None, cancel=None) -> StepOutput:
    from surgtwin.core.mesh.tetra import tet_mesh

    structures = list(opts.get("structures") or [])
    if not structures:
        raise SurgtwinError("the tet step needs the structures to mesh", hint="e.g. --tet-structures femur_left")
    size = float(opts.get("size_mm", 2.0))
    tm = tet_mesh(labels, structures, size_mm=size, ct=volume, progress=progress, cancel=cancel)
    prov = Provenance("tetrahedra", {"structures": structures, "size_mm": size},
                      {"labels": labels_content_hash(labels)})
    prov.inputs["volume"] = opts["_volume_hash"]
    key = "tet:" + ",".join(structures)
    return StepOutput("tet", items={key: (tm, prov)},
                      summary={key: {"nodes": int(len(tm.nodes)), "elements": int(len(tm.elements))}})


@dataclass(frozen=True)
class Step:
    """A named pipeline step: the case items it reads (checked current) and how it is prepared:
    ``prepare(case, **options) -> StepJob`` runs on the case's thread and snapshots the inputs."""

    name: str
    help: str
    inputs: tuple[str, ...]
    prepare: object


def _prepare_segment(case: Case, **options) -> StepJob:
    return StepJob("segment", _segment, (case.volume, options, case.labels_revision))


def _prepare_mesh(case: Case, **options) -> StepJob:
    return StepJob("mesh", _mesh, (_labels_snapshot(case), options))


def _prepare_tet(case: Case, **options) -> StepJob:
    return StepJob("tet", _tet, (_labels_snapshot(case), case.volume, {**options, "_volume_hash": case.volume_hash}))


#: the steps ``case run --steps`` knows, in pipeline order (see ``steps()``)
STEPS = {
    "segment": Step("segment", "label organs and structures (bundled model, a MONAI bundle, or classical)",
                    ("volume",), _prepare_segment),
    "mesh": Step("mesh", "watertight surfaces of every structure (LPS mm)", ("labels",), _prepare_mesh),
    "tet": Step("tet", "tetrahedral mesh of chosen structures with per-element HU", ("labels", "volume"),
                _prepare_tet),
}
#: services modules that add their steps to ``STEPS`` with ``register_step`` when imported
STEP_MODULES: tuple[str, ...] = ("surgtwin.services.implants", "surgtwin.services.simulate",
                                  "surgtwin.services.flow", "surgtwin.services.tavr",
                                  "surgtwin.services.trajectory",
                                  "surgtwin.services.rehearsal", "surgtwin.services.report",
                                  "surgtwin.services.dicom_export")


def register_step(step: Step) -> Step:
    """Add a capability's step (called by the modules in ``STEP_MODULES`` when imported)."""
    STEPS[step.name] = step
    return step


def steps() -> dict[str, Step]:
    """Every step, the capability modules' included (imported on first use)."""
    import importlib

    for mod in STEP_MODULES:
        importlib.import_module(mod)
    return STEPS


def prepare_step(case: Case, name: str, *, allow_stale: bool = False, **options) -> StepJob:
    """Check ``case`` has current inputs for step ``name`` and snapshot them (on the owner thread)."""
    step = steps().get(name)
    if step is None:
        raise SurgtwinError(f"unknown step {name!r}", hint=f"steps: {', '.join(steps())}")
    case.require_current(step.inputs, allow_stale=allow_stale, purpose=f"the {name} step")
    from surgtwin.services.quality import GATED_STEPS, require_confirmed

    if name in GATED_STEPS:  # flagged structures of a segmentation wait for the user's confirmation
        require_confirmed(case, purpose=f"the {name} step", structures=options.get("structures"))
    return step.prepare(case, **options)


def run_step(case: Case, name: str, *, allow_stale: bool = False, progress=None, cancel=None,
             **options) -> StepOutput:
    """Prepare, compute and apply one step (headless)."""
    job = prepare_step(case, name, allow_stale=allow_stale, **options)
    return job.compute(progress=progress, cancel=cancel).apply_to(case)


def run_steps(case: Case, names, *, options: dict | None = None, allow_stale: bool = False, progress=None,
              cancel=None) -> list[StepOutput]:
    """Run ``names`` in order; ``options`` maps a step name to its keyword options."""
    names = list(names)
    for n in names:
        if n not in steps():
            raise SurgtwinError(f"unknown step {n!r}", hint=f"steps: {', '.join(steps())}")
    out = []
    for i, n in enumerate(names):
        check(cancel)
        sub = scaled(progress, i / len(names), (i + 1) / len(names))
        out.append(run_step(case, n, allow_stale=allow_stale, progress=sub, cancel=cancel,
                            **(options or {}).get(n, {})))
    return out


def export_meshes(case: Case, out_dir, *, fmt: str = "stl", allow_stale: bool = False) -> dict:
    """Write the case's surfaces for 3D printing (refuses stale meshes unless ``allow_stale``)."""
    from surgtwin.core.mesh.io import export_mesh, safe_filename

    case.require_current(["meshes"], allow_stale=allow_stale, purpose="exporting meshes")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, m in case.meshes.items():
        written[name] = export_mesh(m, out / f"{safe_filename(name)}.{fmt}", fmt=fmt)
    return written


# -- segmentation models ---------------------------------------------------------------------------
def bundled_model_dir() -> Path:
    """The folder of the model bundle shipped with surgtwin."""
    from surgtwin.core.segmentation import default_bundle_dir

    return Path(default_bundle_dir())


def bundled_model_available() -> bool:
    """True when the bundled model's metadata and weights are on disk (they are verified when used)."""
    folder = bundled_model_dir()
    if not (folder / "configs" / "metadata.json").is_file():
        return False
    return any((folder / "models" / w).is_file() for w in ("model.pt", "model.safetensors"))


def check_bundle(folder, *, progress=None, cancel=None):
    """Validate a (hospital's) MONAI bundle folder the way segmentation will use it: read its configs,
    build the network and load the weights after checking their sha256. Returns the loaded ``Bundle``.

    Any refusal is a ``SurgtwinError`` whose path is ``folder`` and whose reason says what is wrong.
    """
    from surgtwin.core.progress import Cancelled
    from surgtwin.core.segmentation import load_bundle

    folder = Path(folder)

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
        bundle = load_bundle(folder)
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


# -- display meshes (the 3D view) ------------------------------------------------------------------
#: triangle budget for a whole case's display meshes (the 3D view); export keeps full resolution
DISPLAY_TRIANGLE_BUDGET = 600_000
#: no display mesh is decimated below this many triangles
MIN_TRIANGLES_PER_STRUCTURE = 4_000


def display_triangle_budget(n_structures: int, total: int = DISPLAY_TRIANGLE_BUDGET) -> int:
    """Per-structure triangle budget so that ``n_structures`` meshes stay within ``total``."""
    return max(MIN_TRIANGLES_PER_STRUCTURE, int(total // max(1, n_structures)))


def display_meshes(meshes: dict, *, n_structures: int | None = None, total_triangles=DISPLAY_TRIANGLE_BUDGET,
                   progress=None, cancel=None) -> dict:
    """Lighter copies of a case's surfaces for the 3D view: the case stays near ``total_triangles``
    (an even per-structure share; small structures keep their full resolution). The case keeps the
    full-resolution meshes for export. ``n_structures``: the share's divisor (all the case's
    structures when only some are refreshed)."""
    from surgtwin.services.meshing import simplify_for_display

    target = display_triangle_budget(n_structures or len(meshes), total_triangles)
    out = {}
    for k, (name, m) in enumerate(meshes.items()):
        check(cancel)
        report(progress, k / max(1, len(meshes)), f"simplifying {name}")
        out[name] = simplify_for_display(m, target)
    report(progress, 1.0, f"{len(out)} surfaces")
    return out
