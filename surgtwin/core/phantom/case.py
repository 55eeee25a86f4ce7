"""``generate_case`` / ``write_case``: synthetic patients as Volumes, and on disk as real DICOM."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.phantom import ct as ct_mod
from surgtwin.core.phantom.labels import label_table
from surgtwin.core.phantom.shapes import Canvas, rotation
from surgtwin.core.progress import report
from surgtwin.core.types import LabelMap, Volume

#: bump when the generator's output changes for a given seed (recorded in PROVENANCE.md)
GENERATOR_VERSION = "1.0.0"

CASE_KINDS = ("abdomen-pelvis", "cardiac-cta", "head")
_KIND_ID = {k: n for n, k in enumerate(CASE_KINDS)}

# per kind: default (pixel, slice) ranges in mm, body part, series description
_KIND_INFO = {
    "abdomen-pelvis": dict(pixel=(0.7, 1.5), slice=(1.0, 3.0), body_part="ABDOMEN",
                           study="CT angiography abdomen and pelvis (synthetic phantom)",
                           series="CTA abdomen pelvis arterial"),
    "cardiac-cta": dict(pixel=(0.6, 0.9), slice=(1.0, 1.5), body_part="HEART",
                        study="Cardiac CT angiography, TAVR planning (synthetic phantom)",
                        series="CTA heart aortic root"),
    "head": dict(pixel=(0.6, 1.0), slice=(1.0, 3.0), body_part="HEAD",
                 study="CT head with contrast, stereotactic planning (synthetic phantom)",
                 series="CT head contrast axial"),
}


def _builder(kind: str):
    if kind == "abdomen-pelvis":
        from surgtwin.core.phantom import abdomen as mod
    elif kind == "cardiac-cta":
        from surgtwin.core.phantom import cardiac as mod
    elif kind == "head":
        from surgtwin.core.phantom import head as mod
    else:
        raise SurgtwinError(f"unknown phantom kind {kind!r}", hint=f"use one of {', '.join(CASE_KINDS)}")
    return mod


@dataclass(eq=False)
class PhantomCase:
    """A synthetic patient: CT (int16 HU), ground-truth labels on the same grid, known quantities."""

    kind: str
    seed: int
    ct: Volume
    labels: LabelMap
    known: dict = field(default_factory=dict)


def _to_builtin(v):
    if isinstance(v, dict):
        return {str(k): _to_builtin(x) for k, x in v.items()}
    if isinstance(v, np.ndarray):
        return [_to_builtin(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_to_builtin(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return round(float(v), 4)
    if isinstance(v, np.integer):
        return int(v)
    return v


def generate_case(kind: str, seed: int, *, pixel_mm: float | None = None, slice_mm: float | None = None,
                  progress=None) -> PhantomCase:
    """A new plausible synthetic patient of ``kind`` ("abdomen-pelvis", "cardiac-cta", "head").

    Deterministic in (kind, seed, pixel_mm, slice_mm). Unset spacings are drawn from the seed within
    the kind's ranges (pixel 0.6-1.5 mm, slice 1-3 mm). The DICOM grid stays axial; the anatomy is
    rotated slightly inside it. Known quantities are in LPS mm / ml (see ``PhantomCase.known``).
    """
    mod = _builder(kind)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SurgtwinError(f"phantom seed must be a non-negative integer, got {seed!r}")
    info = _KIND_INFO[kind]
    rng = np.random.default_rng([int(seed), _KIND_ID[kind], 0x5EED])
    report(progress, 0.0, f"{kind}: drawing patient")
    P = mod.draw_params(rng)
    px = float(pixel_mm) if pixel_mm is not None else float(np.round(rng.uniform(*info["pixel"]), 3))
    sz = float(slice_mm) if slice_mm is not None else float(np.round(rng.uniform(*info["slice"]), 2))
    if not (0.2 <= px <= 5.0 and 0.2 <= sz <= 10.0):
        raise SurgtwinError(f"phantom spacing out of range: pixel {px} mm, slice {sz} mm",
                            hint="use 0.2-5 mm pixels and 0.2-10 mm slices")
    rot = rotation(*(rng.uniform(-1, 1, 3) * np.array([2.5, 2.5, 5.0])))
    # grid: axial, covering the rotated anatomy extent (plus table room behind the patient)
    lo, hi = np.asarray(P["extent_lo"], float), np.asarray(P["extent_hi"], float)
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    w = corners @ rot.T
    wlo, whi = w.min(axis=0), w.max(axis=0)
    whi[1] += P.get("table_room_mm", 50.0)
    fov = float(max(whi[0] - wlo[0], whi[1] - wlo[1]))
    n_xy = int(np.ceil(fov / px / 2.0) * 2)
    n_z = int(np.floor((hi[2] - lo[2]) / sz)) + 1
    cx, cy = 0.5 * (wlo[0] + whi[0]), 0.5 * (wlo[1] + whi[1])
    affine = np.eye(4)
    affine[:3, 0] = [0, 0, sz]
    affine[:3, 1] = [0, px, 0]
    affine[:3, 2] = [px, 0, 0]
    # round the origin to 1/100 mm so that DICOM's decimal strings reproduce the affine exactly
    affine[:3, 3] = np.round([cx - 0.5 * (n_xy - 1) * px, cy - 0.5 * (n_xy - 1) * px,
                              lo[2] + 0.5 * ((hi[2] - lo[2]) - (n_z - 1) * sz)], 2)
    centre = np.array(P.get("centre_lps", (0.0, 0.0, 0.0)), float)
    canvas = Canvas((n_z, n_xy, n_xy), affine, centre_lps=centre, rotation_matrix=rot)
    report(progress, 0.1, f"{kind}: building anatomy")
    known = mod.build(canvas, P, rng)
    report(progress, 0.7, f"{kind}: synthesising CT")
    noise_sd = float(np.round(rng.uniform(8, 25) if "noise_sd" not in P else P["noise_sd"], 1))
    hu = ct_mod.synthesize(canvas, mod.tissues(P, rng), rng, noise_sd=noise_sd,
                           add_table=P.get("table", True))
    present = np.unique(canvas.labels)
    table = label_table(int(v) for v in present if v > 0)
    for lab in table:
        known.setdefault("volume_ml", {})[lab.name] = float(np.count_nonzero(canvas.labels == lab.value)) * (
            px * px * sz / 1000.0)
    known.update({
        "noise_sd_hu": noise_sd, "pixel_mm": px, "slice_mm": sz,
        "patient_rotation_deg": [float(np.degrees(a)) for a in _euler(rot)],
    })
    public = {}
    for k, v in known.items():
        if k.startswith("_") and k.endswith("_centre"):  # anatomy-frame point -> LPS
            public[k[1:] + "_lps"] = canvas.anatomy_to_lps(v)
        elif k.startswith("_") and (k.endswith("_axis") or k.endswith("_normal")):  # direction -> LPS
            public[k[1:] + "_lps"] = np.asarray(v, float) @ rot.T
        elif k.startswith("_"):
            public[k[1:]] = v
        else:
            public[k] = v
    public = _to_builtin(public)
    meta = {"body_part": info["body_part"], "study_description": info["study"],
            "series_description": info["series"], "contrast": known.get("contrast_phase", "none")}
    vol = Volume(hu, affine, modality="CT", metadata=meta)
    lm = LabelMap(canvas.labels, affine.copy(), modality="SEG", labels=table)
    report(progress, 1.0, f"{kind}: done")
    return PhantomCase(kind=kind, seed=int(seed), ct=vol, labels=lm, known=public)


def _euler(R):
    ay = np.arcsin(-np.clip(R[2, 0], -1, 1))
    ax = np.arctan2(R[2, 1], R[2, 2])
    az = np.arctan2(R[1, 0], R[0, 0])
    return ax, ay, az


_CASE_TAG = {"abdomen-pelvis": "ABDOMEN_PELVIS", "cardiac-cta": "CARDIAC_CTA", "head": "HEAD"}


def write_case(case: PhantomCase, folder, *, compress: bool = True, progress=None) -> Path:
    """Write ``folder/dicom/`` (CT series), ``labels.nii.gz``, ``labels.json`` and ``PROVENANCE.md``.

    Output is byte-identical for the same case (fixed UIDs from the seed, fixed dates).
    """
    import SimpleITK as sitk

    from surgtwin.core.dicom.write import write_ct_series
    from surgtwin.core.geometry import volume_to_sitk

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dcm_dir = folder / "dicom"
    if dcm_dir.exists():
        for p in dcm_dir.glob("*.dcm"):
            p.unlink()
    tag = _CASE_TAG.get(case.kind, case.kind.upper().replace("-", "_"))
    meta = case.ct.metadata
    write_ct_series(
        case.ct, dcm_dir, patient_name=f"PHANTOM^{tag}", patient_id=f"PHANTOM-{tag}-{case.seed}",
        study_description=meta.get("study_description", "synthetic phantom"),
        series_description=meta.get("series_description", "synthetic CT"),
        uid_seed=f"surgtwin-phantom/{case.kind}/{case.seed}/{GENERATOR_VERSION}",
        body_part=meta.get("body_part"), contrast_agent=None if meta.get("contrast") == "none" else
        "IODINATED CONTRAST (SYNTHETIC)", compress=compress, progress=progress,
    )
    img = volume_to_sitk(case.labels)
    sitk.WriteImage(img, str(folder / "labels.nii.gz"), useCompression=True)
    case.labels.labels.save(folder / "labels.json")
    (folder / "PROVENANCE.md").write_text(provenance_text(case))
    return folder


def provenance_text(case: PhantomCase) -> str:
    k = case.known
    lines = [
        f"# Synthetic patient: {case.kind} (seed {case.seed})",
        "",
        "**Synthetic data. No real person's data was used; any resemblance is geometric only.**",
        "",
        f"- generator: `surgtwin.core.phantom` version {GENERATOR_VERSION}, "
        f"`generate_case({case.kind!r}, {case.seed}, pixel_mm={k['pixel_mm']}, slice_mm={k['slice_mm']})`",
        "- regenerate: `python scripts/make_sample_cases.py` (byte-identical with the same library versions)",
        f"- grid: {case.ct.shape[2]} x {case.ct.shape[1]} pixels x {case.ct.shape[0]} slices, "
        f"pixel {k['pixel_mm']} mm, slice {k['slice_mm']} mm, axial (LPS), CT Image Storage, RLE Lossless",
        f"- noise: sigma {k['noise_sd_hu']} HU; contrast phase: {k.get('contrast_phase', 'none')}",
        "- files: `dicom/` (one file per slice), `labels.nii.gz` (ground truth, same LPS geometry as the CT),"
        " `labels.json` (label table: value, name, colour, SNOMED CT code)",
        "",
        "## Known quantities",
        "",
        "Designed (analytic) values unless marked; positions in LPS mm; volumes from the ground-truth voxels.",
        "",
        "```json",
        json.dumps(k, indent=2, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(lines)


def timed_generate(kind: str, seed: int, **kw) -> tuple[PhantomCase, float]:
    t0 = time.perf_counter()
    case = generate_case(kind, seed, **kw)
    return case, time.perf_counter() - t0
