"""The plan report: a PDF a surgeon prints, made from whatever the case holds (no Qt).

* ``write_report(case, out_path, *, deidentify=False, progress=None, cancel=None) -> Path``: the
  report, written atomically (temp file, fsync, rename). Pages: the case header (patient values from
  the source DICOM, or none when ``deidentify``), the intended-use statement, the plan at a glance, 3D
  pictures and MPR slices rendered offscreen, the structures with their volumes, measurements, then a
  section per planning item the case has (implants and their checks, FE study, blood flow, TAVR
  sizing, trajectories, rehearsals, the segmentation quality gate), provenance and limitations. A
  stale item's section says so in red. Every page: case name, "NOT FOR CLINICAL USE", page X of Y.
* ``case_snapshots(case, *, size=(900, 700)) -> [(title, RGB uint8 array)]``: the report's pictures
  (also what the DICOM Secondary Capture export writes).
* ``report_figures(case, ...)`` (``surgtwin.services.report_figures``): the same pictures, each with the
  report section it belongs to.
* Step ``report`` (options ``out``, ``deidentify``): the report as a pipeline job for the app; it
  renders from ``services.recovery.snapshot(case)`` so the case may change while it runs, and stores nothing.

De-identified (``deidentify=True``): no patient name, ID, birth date, sex, accession, institution,
study date, description, UIDs, source path or free-text notes; the case is called by its name only
when that name is not (part of) the patient's name, else ``Case <first 8 of its id>``; and every
string on the pages is passed through a ``PhiGuard`` holding the source DICOM's PHI values.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np

from surgtwin.core.case import Case
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import check, report
from surgtwin.services import report_sections as sec
from surgtwin.services.pipeline import Step, StepJob, StepOutput, register_step
from surgtwin.services.recovery import snapshot
from surgtwin.services.report_figures import Picture, figures_by_section, report_figures
from surgtwin.services.report_pages import Figure, ReportDoc, Section, Table, Text, build_pdf

INTENDED_USE = sec.INTENDED_USE
#: DICOM keywords shown in the identified header (never in a de-identified one)
HEADER_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyDate",
                   "StudyDescription", "SeriesDescription", "InstitutionName", "Manufacturer")
SOFTWARE = ("numpy", "scipy", "vtk", "pyvista", "SimpleITK", "pydicom", "scikit-fem", "monai", "torch", "reportlab")


# -- the patient header and de-identification ---------------------------------------------------------
def source_dicom_file(case: Case) -> Path | None:
    """A DICOM file of the case's source series (None when the source is gone or not DICOM)."""
    p = Path(case.source.path) if case.source.path else None
    if p is None or case.source.kind != "dicom" or not p.exists():
        return None
    files = [p] if p.is_file() else sorted(f for f in p.iterdir() if f.is_file())[:50]
    for f in files:
        try:
            with open(f, "rb") as fh:
                fh.seek(128)
                if fh.read(4) == b"DICM":
                    return f
        except OSError:
            continue
    return None


def patient_header(case: Case) -> dict[str, str]:
    """The source DICOM's patient/study values (``HEADER_KEYWORDS``) as text; {} when unreadable."""
    f = source_dicom_file(case)
    if f is None:
        return {}
    import warnings

    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(str(f), stop_before_pixels=True, specific_tags=list(HEADER_KEYWORDS))
    except Exception:  # noqa: BLE001 - an unreadable header leaves the fields empty
        return {}
    out = {}
    for kw in HEADER_KEYWORDS:
        v = ds.get(kw)
        if v is not None and not isinstance(v, bytes) and str(v).strip():
            out[kw] = str(v).replace("^", ", ", 1).replace("^", " ") if kw == "PatientName" else str(v)
    return out


def phi_guard(case: Case):
    """A ``PhiGuard`` holding the PHI values of the case's source DICOM (empty when unreadable)."""
    from surgtwin.core.phi import PhiGuard

    guard = PhiGuard()
    f = source_dicom_file(case)
    if f is not None:
        guard.add_file(f)
    return guard


def case_label(case: Case, *, deidentify: bool, guard=None) -> str:
    """The case's name for the pages; when de-identifying, a pseudonym unless the name is known not
    to hold a PHI value of the source (an unreadable source: always the pseudonym)."""
    pseudonym = f"Case {case.case_id[:8]}"
    if not deidentify:
        return case.name or pseudonym
    guard = guard if guard is not None else phi_guard(case)
    if not case.name or not guard.values or guard.scrub(case.name) != case.name:
        return pseudonym
    return case.name


def case_snapshots(case: Case, *, size=(900, 700)) -> list[tuple[str, np.ndarray]]:
    """The report's pictures as (title, RGB uint8 (H, W, 3)) pairs."""
    return [(p.title, p.image) for p in report_figures(case, size=size)]


# -- the document ---------------------------------------------------------------------------------------
def _header(case: Case, label: str, deidentify: bool) -> Section:
    v = case.volume
    rows = [["case", label, "modality", case.source.modality or v.modality or "-"],
            ["image", "\u00d7".join(map(str, v.shape)) + " voxels (slices \u00d7 rows \u00d7 columns)",
             "spacing", "\u00d7".join(f"{s:g}" for s in v.spacing_mm) + " mm"]]
    if deidentify:
        rows.append(["patient", "de-identified (no name, ID, birth date, study date, institution or UIDs)",
                     "case created", case.created[:10]])
    elif not (h := patient_header(case)):
        rows.append(["patient", "not shown: the source DICOM files are not readable here", "case created",
                     case.created[:19].replace("T", " ")])
    else:
        rows += [["patient name", h.get("PatientName", "-"), "patient ID", h.get("PatientID", "-")],
                 ["birth date", h.get("PatientBirthDate", "-"), "sex", h.get("PatientSex", "-")],
                 ["study date", h.get("StudyDate", "-"), "accession", h.get("AccessionNumber", "-")],
                 ["study", h.get("StudyDescription", "-"), "series", h.get("SeriesDescription", "-")],
                 ["institution", h.get("InstitutionName", "-"), "case created", case.created[:19].replace("T", " ")],
                 ["source", case.source.path or "-", "series UID", case.source.series_uid or "-"]]
    return Section("Case", [Table([], rows, [0.14, 0.36, 0.14, 0.36], key_value=True)])


def _glance(case: Case) -> Section:
    rows = []

    def add(item, result, key, verdict="ok"):
        rows.append([item, result, "STALE" if case.is_stale(key) else verdict])

    if case.labels is not None:
        add("structures", f"{len(case.labels.labels)} labelled ({case.item('labels').provenance.method})", "labels",
            "edited" if case.labels_edited_by_hand() else "ok")
    if case.meshes:
        add("surfaces", f"{len(case.meshes)} structure surfaces", "meshes")
    for r in (case.item("implants").value if case.item("implants") else None) or []:
        add(f"implant {r.get('id')}", f"{r.get('name')}: placement checks", "implants",
            "pass" if (r.get("checks") or {}).get("passed") else "FAIL")
    for key in sec.fem_keys(case):
        a = case.item(key).value
        add(key, f"implant safety factor {sec.num(a.get('safety_factor'))}; bone SED change "
                 f"{sec.num(sec.bone_sed_change_percent(a), '+.1f')} %", key)
    for key in sorted(k for k in case.keys() if k.startswith("flow:")):
        a = case.item(key).value
        ratio = np.asarray(a.get("stenosis_pressure_ratio", []), float)
        worst = f"; lowest stenosis Pd/Pp {np.nanmin(ratio):.3f}" if ratio.size and np.isfinite(ratio).any() else ""
        add(key, f"inflow {sec.num(a.get('inflow_ml_s'), '.0f')} ml/s{worst}", key)
    t = case.item("tavr").value if case.item("tavr") else None
    if t:
        m, v, pvl = t["measurement"], t.get("valve"), t.get("pvl_risk") or {}
        rec = ", ".join(f"{f} {s.get('recommended') or 'none'}" for f, s in t.get("sizing", {}).items())
        add("TAVR", f"annulus {sec.num(m.get('area_mm2'), '.0f')} mm\u00b2 / {sec.num(m.get('perimeter_mm'))} mm; "
                    f"charts: {rec}" + (f"; valve {v['family']} {v['size']}" if v else ""), "tavr",
            f"PVL risk {pvl['level']}" if pvl.get("level") else "ok")
    for tr in (case.item("trajectories").value if case.item("trajectories") else None) or []:
        add(f"trajectory {tr.get('id')}", f"{tr.get('name')}: {sec.num((tr.get('metrics') or {}).get('length_mm'))} mm",
            "trajectories", tr.get("verdict") or "-")
    for r in (case.item("rehearsals").value if case.item("rehearsals") else None) or []:
        add(f"rehearsal {r.get('id')}", f"{r.get('trajectory_name')} by {r.get('trainee') or '-'}: score "
                                        f"{sec.num((r.get('score') or {}).get('total'), '.0f')}", "rehearsals")
    if not rows:
        rows.append(["-", "the case holds no derived items yet (run: surgtwin case run CASE --steps segment,mesh)", "-"])
    return Section("Plan at a glance", [Table(["item", "result", "status"], rows, [0.2, 0.62, 0.18],
                                              verdict_columns=(2,))])


def _provenance(case: Case) -> Section:
    stale = case.stale_items()
    rows = []
    for key in case.keys():
        it = case.item(key)
        p = it.provenance
        made = p.method + (f" ({p.model.get('name', '?')} {p.model.get('version', '')})" if p.model else "")
        rows.append([key, made, sec.brief_params(p.parameters), f"{p.surgtwin_version}, {p.created[:16].replace('T', ' ')}",
                     "STALE: " + "; ".join(stale[key]) if key in stale else "ok"])
    blocks = [Table(["item", "made by", "parameters", "surgtwin, when (UTC)", "status"], rows,
                    [0.15, 0.17, 0.38, 0.14, 0.16], verdict_columns=(4,))]
    models = [(k, case.item(k).provenance.model) for k in case.keys() if case.item(k).provenance.model]
    for key, m in models:
        blocks.append(Text(f"{key}: model {m.get('name')} {m.get('version', '')}, weights sha256 "
                           f"{str(m.get('sha256') or '-')[:16]}\u2026", "small"))
    from importlib import metadata

    from surgtwin import __version__

    versions = [("surgtwin", __version__), ("python", platform.python_version())]
    for name in SOFTWARE:
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    cells = [f"{n} {v}" for n, v in versions]
    blocks.append(Text("Software: " + ", ".join(cells) + ".", "small"))
    return Section("Provenance", blocks, new_page=True)


def _intended_use(case: Case) -> Section:
    blocks = [Text(INTENDED_USE + ".", "warning"),
              Text("This report shows a planning aid's output on a digital twin of the patient's images. It is not a "
                   "medical device, was not validated on patients, and must not guide diagnosis or treatment.")]
    lab = case.item("labels")
    model = lab.provenance.model if lab is not None else None
    if model:
        meta = _model_metadata(model)
        text = f"Segmentation model {model.get('name')} {model.get('version', '')}"
        if meta:
            dice = meta.get("eval_metrics", {}).get("validation_mean_dice", {})
            text += (f": trained on {meta.get('data_source', 'the data its model card states')}; validation Dice "
                     + ", ".join(f"{k} {v:.2f}" for k, v in dice.items()) + f". {meta.get('intended_use', '')}")
        blocks.append(Text(text, "small"))
    elif lab is not None:
        blocks.append(Text(f"Structures: {lab.provenance.describe().split(';')[0]} (not checked by surgtwin).", "small"))
    notes = [("fem", "Finite elements: linear-elastic bone with a CT density-modulus relation and a standard load "
                     "case; shows relative changes (stress shielding), not fracture risk."),
             ("flow", "Blood flow: a reduced-order (0D) network with assumed inflow and outlet resistances."),
             ("tavr", "TAVR: sizing from the manufacturers' published charts; gradient and leak risk are "
                      "rule-based indicators."),
             ("trajectories", "Trajectories: clearances from the segmented structures only; unlabelled structures "
                              "are not seen."),
             ("rehearsals", "Rehearsal scores: teaching scores with default weights, not a validated assessment.")]
    for head, text in notes:
        if any(k.split(":")[0] == head for k in case.keys()):
            blocks.append(Text(text, "small"))
    return Section("Intended use and limitations", blocks)


def _model_metadata(model: dict) -> dict:
    import json

    from surgtwin.core.segmentation import default_bundle_dir

    f = Path(default_bundle_dir()) / "configs" / "metadata.json"
    try:
        meta = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if meta.get("name") == model.get("name") else {}


def build_document(case: Case, pics: list[Picture], *, deidentify: bool = False, label: str | None = None) -> ReportDoc:
    """The report's content (``report_pages.ReportDoc``) for a case and its pictures."""
    from surgtwin import __version__
    from surgtwin.core.case.provenance import now_iso
    from surgtwin.services.measure import structure_stats
    from surgtwin.services.quality import quality_record, structure_status

    label = label or case_label(case, deidentify=deidentify)
    figs = figures_by_section(pics)
    overview = Section("3D views", list(figs.get("overview", [])))
    if overview.blocks:
        overview.blocks[0].max_height_mm = 88.0  # the first one fits under the plan at a glance
    mpr = [p for p in pics if p.section == "mpr"]
    slices = Section("Slices", [Figure([(p.title, p.image) for p in mpr], mpr[0].caption, columns=3)] if mpr else [])
    stats = structure_stats(case.labels, case.volume) if case.labels is not None else {}
    rec = quality_record(case)
    statuses = structure_status(case) if rec is not None else {}
    sections = [_header(case, label, deidentify), _glance(case), overview, slices,
                sec.structures(case, stats, statuses), sec.measurements(case), sec.quality(case, rec, statuses),
                sec.implants(case), sec.fem(case, figs), sec.flow(case, figs), sec.tavr(case, figs),
                sec.trajectories(case, figs), sec.rehearsals(case)]
    if case.notes and not deidentify:
        sections.append(Section("Notes", [Text(case.notes)]))
    sections += [_provenance(case), _intended_use(case)]
    return ReportDoc("Surgical plan report", f"{label}  \u00b7  generated {now_iso()[:16].replace('T', ' ')} UTC",
                     label, INTENDED_USE, now_iso()[:16].replace("T", " ") + " UTC", __version__,
                     [s for s in sections if s is not None and (s.blocks or s.stale)])


def write_report(case: Case, out_path, *, deidentify: bool = False, progress=None, cancel=None) -> Path:
    """Write the case's plan report (PDF) to ``out_path`` atomically; returns the path."""
    from surgtwin.core.progress import scaled

    out = Path(out_path)
    if out.suffix.lower() != ".pdf":
        raise SurgtwinError("the report is a PDF: its file name must end in .pdf", path=out,
                            hint=f"e.g. {out.with_suffix('.pdf').name}")
    if not out.parent.is_dir():
        raise SurgtwinError("the folder for the report does not exist", path=out.parent,
                            hint="create it first or choose another place")
    guard = phi_guard(case) if deidentify else None
    label = case_label(case, deidentify=deidentify, guard=guard)
    pics = report_figures(case, progress=scaled(progress, 0.0, 0.85), cancel=cancel)
    check(cancel)
    report(progress, 0.88, "report: pages")
    doc = build_document(case, pics, deidentify=deidentify, label=label)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        build_pdf(doc, tmp, scrub=guard.scrub if guard is not None else (lambda s: s))
        check(cancel)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except OSError as exc:
        raise SurgtwinError(f"could not write the report ({exc.strerror or exc})", path=out,
                            hint="check the folder is writable and has space") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    report(progress, 1.0, f"report: {out.name}")
    return out


# -- the pipeline step ----------------------------------------------------------------------------------
def _report_step(snap: Case, opts: dict, *, progress=None, cancel=None) -> StepOutput:
    path = write_report(snap, opts["out"], deidentify=bool(opts.get("deidentify")), progress=progress, cancel=cancel)
    return StepOutput("report", summary={"path": str(path), "deidentified": bool(opts.get("deidentify"))})


def _prepare(case: Case, **options) -> StepJob:
    if not options.get("out"):
        raise SurgtwinError("the report step needs the PDF to write", hint="surgtwin report CASE --out plan.pdf")
    return StepJob("report", _report_step, (snapshot(case), dict(options)))


register_step(Step("report", "the plan report (PDF): pictures, structures, plan items, provenance, intended use",
                   ("volume",), _prepare))
