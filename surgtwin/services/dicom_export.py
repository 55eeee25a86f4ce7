"""DICOM back to the hospital: the case's labels as SEG and RTSTRUCT, snapshots as Secondary Capture,
optionally de-identified; and DICOM SEG / RTSTRUCT files read into a case's labels.

For the app and the CLI (no Qt here)::

    from surgtwin.services import dicom_export
    result = dicom_export.export_dicom(case, "out/", deidentify=True, snapshots=[])   # ExportResult
    labels = dicom_export.import_segmentation(case, "seg.dcm")     # off the GUI thread: reads only
    dicom_export.apply_segmentation(case, labels)                  # on the case's thread

``export_dicom`` runs in two parts like a pipeline step: ``prepare_export`` checks and snapshots the
case on its thread, ``ExportJob.run`` writes anywhere. The objects reference the source study, series
and frame of reference, so the case must have been made from a DICOM series that is still on disk and
whose grid the labels lie on. The output folder is written in full or not at all (a temporary sibling
folder, renamed at the end).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from surgtwin.core.case import Case, Provenance
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import check, report, scaled
from surgtwin.services import recovery
from surgtwin.services.pipeline import Step, StepJob, StepOutput, register_step

SEG_FILE = "seg.dcm"
RTSTRUCT_FILE = "rtstruct.dcm"
SC_FOLDER = "snapshots"
CT_FOLDER = "ct"
SEG_SOP_CLASSES = ("1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7")  # SEG, label map SEG
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"


@dataclass
class ExportResult:
    """What an export wrote. ``files`` per kind ("seg", "rtstruct", "sc", "ct"); ``series_uids`` the new
    series' UIDs per kind and ``study_uid``/``frame_of_reference_uid`` as written (pseudonyms when
    de-identified); ``counts``: segments, seg_frames, rois, contours, snapshots, ct_images."""

    out_dir: Path
    files: dict[str, list[Path]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    series_uids: dict[str, str] = field(default_factory=dict)
    study_uid: str = ""
    frame_of_reference_uid: str = ""
    deidentified: bool = False
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One patient-free line per object written (what the CLI prints)."""
        c = self.counts
        out = []
        for p in self.files.get("seg", []):
            out.append(f"SEG       {p.name}: {c.get('segments', 0)} segments, {c.get('seg_frames', 0)} frames, "
                       f"{_mb(p)}")
        for p in self.files.get("rtstruct", []):
            out.append(f"RTSTRUCT  {p.name}: {c.get('rois', 0)} ROIs, {c.get('contours', 0)} contours, {_mb(p)}")
        for p in self.files.get("sc", []):
            out.append(f"SC        {SC_FOLDER}/{p.name}: snapshot, {_mb(p)}")
        if self.files.get("ct"):
            out.append(f"CT        {CT_FOLDER}/: {len(self.files['ct'])} de-identified source images")
        return out


def _mb(path: Path) -> str:
    try:
        return f"{path.stat().st_size / 1e6:.2f} MB"
    except OSError:
        return "?"


@dataclass
class ExportJob:
    """A checked snapshot of what an export needs (made on the case's thread by ``prepare_export``)."""

    labels: object  # LabelMap (own array)
    volume: object  # Volume
    source_path: Path
    series_uid: str | None
    values: list[int]
    algorithm: object  # SegAlgorithm

    def run(self, out_dir, *, deidentify: bool = False, snapshots=(), progress=None, cancel=None) -> ExportResult:
        """Write the objects into ``out_dir`` (created; must be empty or absent)."""
        out = Path(out_dir)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise SurgtwinError("the output folder is not empty" if out.is_dir() else "is a file, not a folder", path=out,
                                hint="choose a new or empty folder, so the export is not mixed with other files")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        try:
            result = self._write(tmp, deidentify, list(snapshots or []), progress, cancel)
            if out.exists():
                out.rmdir()
            tmp.rename(out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        result.out_dir = out
        result.files = {k: [out / p.relative_to(tmp) for p in v] for k, v in result.files.items()}
        return result

    def _write(self, folder: Path, deidentify: bool, snapshots: list, progress, cancel) -> ExportResult:
        import highdicom as hd

        from surgtwin.core.dicom.deidentify import Deidentifier
        from surgtwin.core.dicom.rtstruct import build_rtstruct
        from surgtwin.core.dicom.seg_export import build_secondary_capture, build_seg
        from surgtwin.core.dicom.source_series import SourceSeries

        source = SourceSeries.open(self.source_path, self.volume, series_uid=self.series_uid,
                                   progress=scaled(progress, 0.0, 0.05), cancel=cancel)
        deid = Deidentifier() if deidentify else None
        if deid is not None:
            report(progress, 0.05, "de-identifying the source headers")
            source = deid.deidentify_source(source)
        result = ExportResult(folder, deidentified=deidentify, study_uid=source.study_uid,
                              frame_of_reference_uid=source.frame_of_reference_uid)
        check(cancel)
        report(progress, 0.08, "building the segmentation (SEG)")
        seg = build_seg(self.labels, source, values=self.values, algorithm=self.algorithm)
        self._save(seg, folder / SEG_FILE, deid, result, "seg")
        result.counts["segments"] = len(self.values)
        result.counts["seg_frames"] = int(seg.NumberOfFrames)
        del seg
        check(cancel)
        rt, n_contours = build_rtstruct(self.labels, source, values=self.values, algorithm_kind=self.algorithm.kind,
                                        progress=scaled(progress, 0.4, 0.75), cancel=cancel)
        self._save(rt, folder / RTSTRUCT_FILE, deid, result, "rtstruct")
        result.counts.update(rois=len(self.values), contours=n_contours)
        sc_uid = hd.UID()
        for n, (title, rgb) in enumerate(snapshots, start=1):
            check(cancel)
            sc = build_secondary_capture(rgb, source, title=str(title), series_uid=sc_uid, instance_number=n)
            self._save(sc, folder / SC_FOLDER / f"SC{n:04d}.dcm", deid, result, "sc")
            report(progress, 0.75 + 0.05 * n / len(snapshots), f"snapshot {n}/{len(snapshots)}")
        result.counts["snapshots"] = len(snapshots)
        if deid is not None:
            for k in range(len(source.paths)):
                check(cancel)
                ds = source.read_full(k)
                deid.deidentify(ds)
                path = folder / CT_FOLDER / f"CT{k + 1:04d}.dcm"
                path.parent.mkdir(exist_ok=True)
                ds.save_as(path, enforce_file_format=True)
                result.files.setdefault("ct", []).append(path)
                if k % 16 == 0:
                    report(progress, 0.8 + 0.2 * k / len(source.paths), "writing the de-identified CT")
            result.counts["ct_images"] = len(source.paths)
        report(progress, 1.0, "DICOM export written")
        return result

    @staticmethod
    def _save(ds, path: Path, deid, result: ExportResult, kind: str) -> None:
        if deid is not None:
            deid.mark(ds)  # built from de-identified headers: only the labelling is left to do
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        result.files.setdefault(kind, []).append(path)
        result.series_uids[kind] = str(ds.SeriesInstanceUID)


def _algorithm(case: Case):
    from surgtwin.core.dicom.seg_export import SegAlgorithm, software_version

    it = case.item("labels")
    method = it.provenance.method if it is not None else "manual"
    if not method.startswith("segment"):
        return SegAlgorithm("MANUAL")  # painted or imported: surgtwin did not compute them
    model = it.provenance.model or {}
    kind = "SEMIAUTOMATIC" if case.labels_edited_by_hand() else "AUTOMATIC"
    return SegAlgorithm(kind, str(model.get("name") or f"surgtwin {method}"),
                        str(model.get("version") or software_version()))


def prepare_export(case: Case, *, structures=None) -> ExportJob:
    """Check ``case`` can be exported as DICOM and snapshot what the export needs (on its thread)."""
    from surgtwin.core.dicom.seg_export import exported_values
    from surgtwin.services.quality import require_confirmed

    if case.labels is None:
        raise SurgtwinError("the case has no labels to export", hint="segment the case or import labels first")
    src = case.source
    if src.kind != "dicom" or not src.path:
        raise SurgtwinError("the case was not made from a DICOM series, and DICOM objects must reference one",
                            path=src.path, hint="make the case from the DICOM folder: surgtwin case new DICOM_DIR")
    if not Path(src.path).exists():
        raise SurgtwinError("the case's source DICOM series is no longer on disk", path=src.path,
                            hint="move the DICOM folder back, or open the case again from where it is now")
    case.require_current(["labels"], purpose="DICOM export")
    names = list(structures) if structures else None
    require_confirmed(case, purpose="DICOM export", structures=names)
    lab = case.labels
    values = exported_values(lab, names)
    labels = replace(lab, array=lab.array.copy())
    return ExportJob(labels, case.volume, Path(src.path), src.series_uid, values, _algorithm(case))


def default_snapshots(case: Case) -> tuple[list, list[str]]:
    """``(snapshots, warnings)``: the report's pictures (``services.report.case_snapshots``) when that
    module is present and can render here; none otherwise (the warning says why)."""
    try:
        from surgtwin.services.report import case_snapshots
    except ImportError:
        return [], []
    try:
        return list(case_snapshots(case)), []
    except Exception as exc:  # noqa: BLE001 - a rendering problem must not stop the export
        return [], [f"no snapshots: rendering failed ({type(exc).__name__}: {str(exc)[:100]}); "
                    "export with --no-snapshots to skip them"]


def export_dicom(case: Case, out_dir, *, structures=None, deidentify: bool = False, snapshots=None,
                 progress=None, cancel=None) -> ExportResult:
    """Write the case's labels as one SEG and one RTSTRUCT, and ``snapshots`` ((title, RGB uint8 (H, W, 3))
    pairs; None: the report's pictures when available) as Secondary Capture, into ``out_dir``.
    ``structures``: names to export (default all); ``deidentify``: PS3.15 Basic Profile, plus the
    de-identified source CT in ``ct/`` so the references resolve inside the exported set."""
    job = prepare_export(case, structures=structures)
    warnings: list[str] = []
    if snapshots is None:
        snapshots, warnings = default_snapshots(case)
    result = job.run(out_dir, deidentify=deidentify, snapshots=snapshots, progress=progress, cancel=cancel)
    result.warnings = warnings + result.warnings
    return result


# -- import ---------------------------------------------------------------------------------------------
def segmentation_kind(path) -> str:
    """``"seg"`` or ``"rtstruct"`` by the file's SOP Class UID; refuses anything else."""
    import pydicom

    path = Path(path)
    if not path.is_file():
        raise SurgtwinError("no such file", path=path, hint="pick a DICOM SEG or RTSTRUCT file")
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=["SOPClassUID"])
        uid = str(ds.get("SOPClassUID", ""))
    except Exception as exc:  # noqa: BLE001
        raise SurgtwinError(f"cannot read the file as DICOM ({type(exc).__name__})", path=path) from None
    if uid in SEG_SOP_CLASSES:
        return "seg"
    if uid == RTSTRUCT_SOP_CLASS:
        return "rtstruct"
    raise SurgtwinError(f"not a DICOM Segmentation or RT Structure Set (SOP class {uid or 'missing'})", path=path,
                        hint="pick a SEG or RTSTRUCT file")


def import_segmentation(case: Case, path, *, progress=None, cancel=None):
    """A SEG or RTSTRUCT file as a ``LabelMap`` on the case's grid (the case is not changed: see
    ``apply_segmentation``). Reads only the case's volume, so it may run off the case's thread."""
    kind = segmentation_kind(path)
    if kind == "seg":
        from surgtwin.core.dicom.seg_import import read_seg

        return read_seg(path, case.volume, progress=progress, cancel=cancel)
    from surgtwin.core.dicom.rtstruct_import import read_rtstruct

    return read_rtstruct(path, case.volume, progress=progress, cancel=cancel)


def apply_segmentation(case: Case, labels, *, path=None, expected_revision: int | None = None) -> None:
    """Make ``labels`` (from ``import_segmentation``) the case's label map, with import provenance.
    ``expected_revision``: the ``labels_revision`` when the import started (edits since are not lost:
    ``LabelsEditedError``)."""
    params = {"format": str(labels.metadata.get("source", "dicom"))}
    if path is not None:
        params["file"] = Path(path).name
    case.set_labels(labels, Provenance("import", params), expected_revision=expected_revision)


# -- the pipeline step ------------------------------------------------------------------------------------
def _export_step(job: ExportJob, opts: dict, snap, *, progress=None, cancel=None) -> StepOutput:
    snapshots, warnings = default_snapshots(snap) if snap is not None else ([], [])
    res = job.run(opts["out"], deidentify=bool(opts.get("deidentify")), snapshots=snapshots, progress=progress,
                  cancel=cancel)
    summary = {"out": str(res.out_dir), "files": {k: len(v) for k, v in res.files.items()}, "counts": res.counts,
               "deidentified": res.deidentified, "warnings": warnings + res.warnings}
    return StepOutput("export", summary=summary, result=res)


def _prepare(case: Case, **options) -> StepJob:
    if not options.get("out"):
        raise SurgtwinError("the export step needs a folder to write", hint="surgtwin export CASE --dicom OUT/")
    job = prepare_export(case, structures=options.get("structures"))
    snap = recovery.snapshot(case) if options.get("snapshots", True) else None
    return StepJob("export", _export_step, (job, dict(options), snap))


register_step(Step("export", "DICOM back to the hospital: SEG, RTSTRUCT, snapshots (optionally de-identified)",
                   ("labels",), _prepare))

__all__ = ["ExportResult", "ExportJob", "prepare_export", "export_dicom", "default_snapshots",
           "segmentation_kind", "import_segmentation", "apply_segmentation"]
