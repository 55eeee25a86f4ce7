"""The cases of a cohort: ``CohortCase`` (one case per study, or a virtual patient), ``discover`` (the
cases that paths name), ``virtual_cohort`` (synthetic patients from the phantom generator) and the
cohort manifest (``cohort.json``). Running them is ``surgtwin.services.cohort``."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from surgtwin.core.errors import SurgtwinError

#: name of a cohort manifest (a virtual cohort, or a saved list of inputs)
MANIFEST = "cohort.json"
#: the drawn physiology a virtual patient passes to the TAVR step
TAVR_PHYSIOLOGY = ("bsa_m2", "bmi", "cardiac_output_l_min", "heart_rate_bpm")


# -- the cases of a cohort -------------------------------------------------------------------------
@dataclass(frozen=True)
class CohortCase:
    """One case of a cohort: ``source`` is ``{"kind": "dicom"|"image"|"sample"|"case", "path": ...}`` or
    ``{"kind": "virtual", "phantom": KIND, "seed": N, "pixel_mm": .., "slice_mm": ..}``. ``options``:
    this case's own step options (``{"tavr": {"bsa_m2": 1.84, ...}}``, e.g. a virtual patient's drawn
    physiology, or a real patient's measured one written into ``cohort.json``); options given for the
    whole run override them (``effective_options``). ``arm``: the trial arm this case is in
    (``{"implant.size": "4"}``: the same patient in each arm, ``expand_arms``); its values are also in
    ``options``."""

    case_id: str
    source: dict
    options: dict = field(default_factory=dict)
    arm: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = {"case_id": self.case_id, "source": dict(self.source)}
        if self.options:
            d["options"] = {k: dict(v) for k, v in self.options.items()}
        if self.arm:
            d["arm"] = dict(self.arm)
        return d

    @property
    def arm_label(self) -> str:
        """``"implant.size=4"`` (several keys joined by ", "); empty outside a trial arm."""
        return ", ".join(f"{k}={v}" for k, v in self.arm.items())

    @staticmethod
    def from_json(d: dict, *, where=None) -> CohortCase:
        if not isinstance(d, dict) or not isinstance(d.get("case_id"), str) or not isinstance(d.get("source"), dict):
            raise SurgtwinError("a cohort entry needs 'case_id' (text) and 'source' (an object)", path=where)
        if not _ID_OK.fullmatch(d["case_id"]):
            raise SurgtwinError(f"case id {d['case_id']!r} may only hold letters, digits, '.', '_' and '-'",
                                path=where)
        kind = d["source"].get("kind")
        if kind not in ("dicom", "image", "sample", "case", "virtual"):
            raise SurgtwinError(f"case {d['case_id']!r}: unknown source kind {kind!r}", path=where,
                                hint="use dicom, image, sample, case or virtual")
        opts = d.get("options", {})
        if not isinstance(opts, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in opts.items()):
            raise SurgtwinError(f"case {d['case_id']!r}: 'options' must map step names to objects "
                                "(e.g. {\"tavr\": {\"bsa_m2\": 1.8}})", path=where)
        arm = d.get("arm", {})
        if not isinstance(arm, dict) or not all(isinstance(k, str) and "." in k for k in arm):
            raise SurgtwinError(f"case {d['case_id']!r}: 'arm' must map STEP.KEY to a value "
                                "(e.g. {\"implant.size\": \"4\"})", path=where)
        return CohortCase(d["case_id"], dict(d["source"]), {k: dict(v) for k, v in opts.items()}, dict(arm))

    def effective_options(self, options: dict | None) -> dict:
        """This case's step options with the run's ``options`` laid over them, step by step."""
        options = options or {}
        return {step: {**self.options.get(step, {}), **(options.get(step) or {})}
                for step in sorted(set(self.options) | set(options))}

    @property
    def label(self) -> str:
        s = self.source
        text = f"virtual {s['phantom']} seed {s['seed']}" if s["kind"] == "virtual" else str(s.get("path"))
        return f"{text}  [{self.arm_label}]" if self.arm else text


_ID_OK = re.compile(r"[A-Za-z0-9._-]{1,120}")


def _safe_id(text: str) -> str:
    t = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "case"
    return t[:120]


def _unique_ids(entries: list[CohortCase]) -> list[CohortCase]:
    seen: dict[str, int] = {}
    out = []
    for e in entries:
        cid = e.case_id
        if cid in seen:
            seen[cid] += 1
            cid = f"{cid}-{seen[e.case_id]}"
        seen.setdefault(cid, 1)
        out.append(replace(e, case_id=cid))
    return out


def _looks_like_dicom_folder(folder: Path) -> bool:
    for n, p in enumerate(folder.iterdir()):
        if n > 200:
            break
        if p.is_file() and (p.suffix.lower() == ".dcm" or _has_dicm(p)):
            return True
    return False


def _has_dicm(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def discover(inputs) -> list[CohortCase]:
    """The cases named by ``inputs``: cohort manifests (``cohort.json``), ``.stwin`` cases, sample case
    folders, DICOM study folders, image files, and folders whose sub-folders are any of those (one case
    per study). A path that is none of those is refused, naming it."""
    from surgtwin.core.io import is_itk_file
    from surgtwin.services.pipeline import find_case_for, is_case_path

    out: list[CohortCase] = []

    def one(p: Path, *, nested: bool) -> bool:
        if p.is_file() and p.name.endswith(".json"):
            out.extend(read_manifest(p))
            return True
        if is_case_path(p):
            out.append(CohortCase(_safe_id(p.name.split(".")[0]), {"kind": "case", "path": str(p.resolve())}))
            return True
        if p.is_dir() and find_case_for(p) is not None and (p / "dicom").is_dir():
            out.append(CohortCase(_safe_id(p.name), {"kind": "sample", "path": str(p.resolve())}))
            return True
        if p.is_dir() and (p / MANIFEST).is_file() and not nested:
            out.extend(read_manifest(p / MANIFEST))
            return True
        if p.is_dir() and _looks_like_dicom_folder(p):
            out.append(CohortCase(_safe_id(p.name), {"kind": "dicom", "path": str(p.resolve())}))
            return True
        if p.is_file() and (is_itk_file(p) or p.suffix.lower() == ".dcm"):
            kind = "image" if is_itk_file(p) else "dicom"
            out.append(CohortCase(_safe_id(p.name.split(".")[0]), {"kind": kind, "path": str(p.resolve())}))
            return True
        return False

    for raw in inputs:
        p = Path(raw)
        if not p.exists():
            raise SurgtwinError("does not exist", path=p, hint="give DICOM study folders, .stwin cases or a cohort.json")
        if one(p, nested=False):
            continue
        if p.is_dir():
            found = [c for c in sorted(p.iterdir()) if c.is_dir() or c.suffix in (".nii", ".gz", ".nrrd", ".mha")]
            if any([one(c, nested=True) for c in found]):
                continue
        raise SurgtwinError("holds no study this cohort can run (no DICOM files, image, case or sample folder)",
                            path=p, hint="give one folder per study, a folder of study folders, or a cohort.json")
    if not out:
        raise SurgtwinError("the cohort has no cases", hint="give DICOM study folders, .stwin cases or a cohort.json")
    return _unique_ids(out)


# -- step options and trial arms -------------------------------------------------------------------
def _value(raw: str):
    """A value as JSON when it parses (numbers, lists, true/false), else the text."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def parse_options(items) -> dict:
    """``["flow.components=largest", "tavr.size=26"]`` -> ``{"flow": {"components": "largest"}, ...}``
    (a key's ``-`` read as ``_``; each value JSON when it parses, else text)."""
    out: dict = {}
    for it in items or []:
        key, sep, raw = str(it).partition("=")
        step, dot, name = key.strip().partition(".")
        if not sep or not dot or not step or not name:
            raise SurgtwinError(f"--option {it!r} is not STEP.KEY=VALUE", hint="e.g. --option flow.components=largest")
        out.setdefault(step.strip(), {})[name.strip().replace("-", "_")] = _value(raw.strip())
    return out


def parse_arms(items) -> dict[str, list]:
    """``["implant.size=2,4,6"]`` -> ``{"implant.size": [2, 4, 6]}`` (each value read as JSON when it
    parses, else text)."""
    arms: dict[str, list] = {}
    for it in items or []:
        key, sep, raw = str(it).partition("=")
        step, dot, name = key.strip().partition(".")
        values = [v.strip() for v in raw.split(",") if v.strip()]
        if not sep or not dot or not step or not name or not values:
            raise SurgtwinError(f"arm {it!r} is not STEP.KEY=VALUE,VALUE,...", hint="e.g. implant.size=2,4,6")
        if len(set(values)) != len(values):
            raise SurgtwinError(f"arm {it!r} repeats a value")
        arms[f"{step}.{name.replace('-', '_')}"] = [_value(v) for v in values]
    return arms


def expand_arms(entries: list[CohortCase], arms: dict[str, list]) -> list[CohortCase]:
    """Every case once per combination of the ``arms`` values (the same patient in each arm): case id
    ``<id>-<key><value>`` (e.g. ``abdomen-pelvis-0003-size4``), the arm's values laid over the case's
    own options."""
    if not arms:
        return list(entries)
    keys = list(arms)
    out = []
    for e in entries:
        again = sorted(set(keys) & set(e.arm))
        if again:
            raise SurgtwinError(f"case {e.case_id!r} is already in the trial arm {again[0]}={e.arm[again[0]]}",
                                hint="run the cohort.json that holds the arms without --arm again")
        for combo in itertools.product(*(arms[k] for k in keys)):
            opts = {step: dict(v) for step, v in e.options.items()}
            suffix = []
            for k, v in zip(keys, combo, strict=True):
                step, name = k.split(".", 1)
                opts.setdefault(step, {})[name] = v
                suffix.append(_safe_id(f"{name.split('_')[-1]}{v}"))
            out.append(CohortCase(_safe_id(f"{e.case_id}-{'-'.join(suffix)}"), e.source, opts,
                                  {**e.arm, **{k: v for k, v in zip(keys, combo, strict=True)}}))
    return _unique_ids(out)


# -- virtual cohorts -------------------------------------------------------------------------------
def virtual_cohort(kind: str, n: int, *, first_seed: int = 0, pixel_mm: float | None = None,
                   slice_mm: float | None = None) -> list[CohortCase]:
    """``n`` synthetic patients of ``kind`` (seeds ``first_seed`` ...): anatomy varied by the phantom
    generator's documented parameter ranges (``surgtwin.core.phantom``, see docs/cohorts.md); a cardiac
    patient also gets a drawn physiology (``core.phantom.physiology``) as its TAVR options (BSA, BMI,
    cardiac output, heart rate)."""
    from surgtwin.core.phantom import CASE_KINDS
    from surgtwin.core.phantom.physiology import draw_physiology

    if kind not in CASE_KINDS:
        raise SurgtwinError(f"unknown phantom kind {kind!r}", hint=f"use one of {', '.join(CASE_KINDS)}")
    if not 1 <= int(n) <= 100_000:
        raise SurgtwinError(f"a virtual cohort needs 1 to 100000 patients, got {n}")
    if first_seed < 0:
        raise SurgtwinError(f"the first seed must be >= 0, got {first_seed}")
    out = []
    for seed in range(int(first_seed), int(first_seed) + int(n)):
        src = {"kind": "virtual", "phantom": kind, "seed": seed}
        if pixel_mm is not None:
            src["pixel_mm"] = float(pixel_mm)
        if slice_mm is not None:
            src["slice_mm"] = float(slice_mm)
        phys = draw_physiology(kind, seed)
        opts = {"tavr": {k: phys[k] for k in TAVR_PHYSIOLOGY}} if phys else {}
        out.append(CohortCase(f"{kind}-{seed:04d}", src, opts))
    return out


def write_manifest(entries: list[CohortCase], path, *, description: str = "") -> Path:
    path = Path(path)
    if path.is_dir() or not path.name.endswith(".json"):
        path = path / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"surgtwin_cohort": 1, "description": description, "cases": [e.to_json() for e in entries]}
    write_json_atomic(path, data)
    return path


def read_manifest(path) -> list[CohortCase]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SurgtwinError(f"is not a readable cohort manifest ({exc})", path=path) from None
    if not isinstance(data, dict) or data.get("surgtwin_cohort") != 1 or not isinstance(data.get("cases"), list):
        raise SurgtwinError("is not a surgtwin cohort manifest (needs \"surgtwin_cohort\": 1 and \"cases\")", path=path)
    entries = [CohortCase.from_json(d, where=path) for d in data["cases"]]
    ids = [e.case_id for e in entries]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise SurgtwinError(f"case ids repeat: {', '.join(dup[:5])}", path=path)
    return entries


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` as JSON at ``path`` so that a crash leaves the old file or the new one, never half."""
    from surgtwin.core.io import atomic_write

    text = json.dumps(data, indent=1, allow_nan=False)
    atomic_write(path, lambda tmp: tmp.write_text(text))
