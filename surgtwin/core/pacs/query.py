"""C-FIND queries: the identifier asked for at each level, and each answer as one flat dict.

Levels: ``patient`` (Patient Root model), ``study`` and ``series`` (Study Root model). Matching keys are
checked here before anything goes on the wire: patient names may carry the DICOM wildcards ``*`` and
``?``; dates are ``YYYYMMDD`` or a range ``YYYYMMDD-YYYYMMDD`` (either end may be left open); UIDs are
dotted digits. A filter that the level cannot match on (a study date at patient level) is refused
rather than silently ignored.

Every answer dict has all of ``RESULT_KEYS``; values are strings ("" when the node did not say), except
``n_instances`` and ``n_series`` (int, or None when unknown). ``modalities`` of a study is its
ModalitiesInStudy joined with "/".
"""

from __future__ import annotations

import datetime as _dt
import re

from surgtwin.core.errors import SurgtwinError

LEVELS = ("patient", "study", "series")
RESULT_KEYS = ("level", "patient_name", "patient_id", "birth_date", "study_date", "study_description",
               "modalities", "accession", "study_uid", "series_uid", "series_number", "series_description",
               "modality", "n_instances", "n_series")
PATIENT_ROOT = "patient"
STUDY_ROOT = "study"
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_DATE_RE = re.compile(r"^(\d{8})?(-)?(\d{8})?$")
_MODALITY_RE = re.compile(r"^[A-Z0-9_]{1,16}$")

#: result key -> DICOM keyword, per level (keys not listed stay "")
_KEYWORDS = {
    "patient": {"patient_name": "PatientName", "patient_id": "PatientID", "birth_date": "PatientBirthDate",
                "n_instances": "NumberOfPatientRelatedInstances"},
    "study": {"patient_name": "PatientName", "patient_id": "PatientID", "birth_date": "PatientBirthDate",
              "study_date": "StudyDate", "study_description": "StudyDescription",
              "modalities": "ModalitiesInStudy", "accession": "AccessionNumber", "study_uid": "StudyInstanceUID",
              "n_instances": "NumberOfStudyRelatedInstances", "n_series": "NumberOfStudyRelatedSeries"},
    "series": {"patient_name": "PatientName", "patient_id": "PatientID", "birth_date": "PatientBirthDate",
               "study_date": "StudyDate", "study_description": "StudyDescription",
               "accession": "AccessionNumber", "study_uid": "StudyInstanceUID", "series_uid": "SeriesInstanceUID",
               "series_number": "SeriesNumber", "series_description": "SeriesDescription",
               "modality": "Modality", "n_instances": "NumberOfSeriesRelatedInstances"},
}


def check_uid(value: str, field: str) -> str:
    text = str(value).strip()
    if text and (len(text) > 64 or not _UID_RE.match(text)):
        raise SurgtwinError(f"{field} {value!r} is not a DICOM UID", hint="dotted digits, e.g. 1.2.840.113619.2.1")
    return text


def check_date(value: str, field: str = "study_date") -> str:
    """A DICOM date or date range (``YYYYMMDD``, ``YYYYMMDD-YYYYMMDD``, ``YYYYMMDD-``, ``-YYYYMMDD``)."""
    text = str(value).strip()
    if not text:
        return ""
    m = _DATE_RE.match(text)
    ok = bool(m) and bool(m[1] or m[3]) and (bool(m[2]) or not m[3])
    if ok:
        try:
            for part in (m[1], m[3]):
                if part:
                    _dt.date(int(part[:4]), int(part[4:6]), int(part[6:]))
        except ValueError:
            ok = False
    if ok and m[1] and m[3] and m[1] > m[3]:
        ok = False
    if not ok:
        raise SurgtwinError(f"{field} {value!r} is not a date or date range",
                            hint="YYYYMMDD, or YYYYMMDD-YYYYMMDD (either end may be open), e.g. 20240101-20241231")
    return text


def check_name(value: str) -> str:
    text = str(value).strip()
    if len(text) > 64 or any(c in text for c in "\\\n\r"):
        raise SurgtwinError("the patient name filter must be one line of at most 64 characters, without '\\'",
                            hint="use * and ? as wildcards, e.g. DOE^J*")
    return text


def build_identifier(level: str, *, patient_id: str = "", patient_name: str = "", study_date: str = "",
                     modality: str = "", study_uid: str = "", series_uid: str = ""):
    """(query model, pydicom Dataset identifier) for a C-FIND at ``level`` with these filters."""
    from pydicom.dataset import Dataset

    if level not in LEVELS:
        raise SurgtwinError(f"find level {level!r} is not one of {', '.join(LEVELS)}")
    patient_name = check_name(patient_name)
    patient_id = str(patient_id).strip()
    if len(patient_id) > 64 or "\\" in patient_id:
        raise SurgtwinError("the patient ID filter must be at most 64 characters, without '\\'")
    study_date = check_date(study_date)
    study_uid = check_uid(study_uid, "study_uid")
    series_uid = check_uid(series_uid, "series_uid")
    if series_uid and level != "series":
        raise SurgtwinError("a series UID filter needs a series-level find", hint="use --level series")
    modality = str(modality).strip().upper()
    if modality and not _MODALITY_RE.match(modality):
        raise SurgtwinError(f"modality {modality!r} is not a DICOM modality code", hint="e.g. CT, MR, SEG")
    if level == "patient" and (study_date or modality or study_uid):
        raise SurgtwinError("a patient-level find cannot filter on study date, modality or study UID",
                            hint="use --level study (or series) for those filters")
    ds = Dataset()
    ds.QueryRetrieveLevel = level.upper()
    for keyword in _KEYWORDS[level].values():
        setattr(ds, keyword, "")
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    if level != "patient":
        ds.StudyDate = study_date
        ds.StudyInstanceUID = study_uid
    if level == "study":
        ds.ModalitiesInStudy = modality
    elif level == "series":
        ds.Modality = modality
        ds.SeriesInstanceUID = series_uid
    return (PATIENT_ROOT if level == "patient" else STUDY_ROOT), ds


def result_dict(level: str, ds) -> dict:
    """One C-FIND answer (a pydicom Dataset) as a dict with every key of ``RESULT_KEYS``."""
    out: dict = dict.fromkeys(RESULT_KEYS, "")
    out["level"] = level
    out["n_instances"] = out["n_series"] = None
    for key, keyword in _KEYWORDS[level].items():
        value = ds.get(keyword) if ds is not None else None
        if key in ("n_instances", "n_series"):
            out[key] = _as_int(value)
        elif keyword == "ModalitiesInStudy":
            out[key] = "/".join(str(v) for v in _values(value))
        else:
            out[key] = "" if value is None else str(value).strip()
    return out


def _values(value) -> list:
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes):
        return [v for v in str(value).split("\\") if v]
    try:
        return [v for v in value if str(v)]
    except TypeError:
        return [value]


def _as_int(value) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None
