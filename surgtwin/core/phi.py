"""Patient-identifying information (PHI) and the messages surgtwin prints or shows.

No message may contain a patient-identifying element value. Two defences, in this order:

1. **Messages are built without values.** Core code names the field at fault (``PatientName``,
   ``(0010,0010)``) and never quotes what it holds. This is the one that matters; the rest is a net.
2. **The boundaries scrub what they print.** A :class:`PhiGuard` holds the values of the PHI
   attributes below, read from the DICOM files the run is about, and :meth:`PhiGuard.scrub` redacts
   them (in the spellings they take in text: ``DOE^JANE``, ``DOE JANE``, ``JANE DOE``; ``19610412``,
   ``1961-04-12``) plus any raw element bytes a library quoted (``b'...'`` reprs), whatever they hold.
   The CLI (``surgtwin.cli.main``) runs every command inside :func:`guarding` with its stdout and
   stderr passed through the guard, and adds the values of the input file (or of the first DICOM file
   of an input folder), of the file an error names, and (``info``) of one file per series listed.
   Core code that holds a whole dataset may call :func:`note_dataset` to add its values.

What this does not do: recognise names or dates in free text. That cannot be done reliably, and a
guess would redact measurements, structure names and file names. Values shorter than
``MIN_LENGTH`` characters (a sex code ``F``, an age ``5``) are not scrubbed either: they identify no
one and would redact every ``F`` in a message.
"""

from __future__ import annotations

import contextlib
import re
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path

#: Attributes of DICOM PS3.15 Annex E (Basic Application Level Confidentiality Profile) that
#: identify a patient, their carers or the place and time of care, by keyword -> (group, element).
#: Free-text descriptions (SeriesDescription, StudyDescription) are in the profile too but are not
#: listed: ``info`` must show them, and a name inside them is scrubbed by the patient's own values.
PHI_KEYWORDS: dict[str, tuple[int, int]] = {
    "PatientName": (0x0010, 0x0010),
    "PatientID": (0x0010, 0x0020),
    "IssuerOfPatientID": (0x0010, 0x0021),
    "PatientBirthDate": (0x0010, 0x0030),
    "PatientBirthTime": (0x0010, 0x0032),
    "PatientSex": (0x0010, 0x0040),
    "OtherPatientIDs": (0x0010, 0x1000),
    "OtherPatientNames": (0x0010, 0x1001),
    "PatientBirthName": (0x0010, 0x1005),
    "PatientAge": (0x0010, 0x1010),
    "PatientAddress": (0x0010, 0x1040),
    "PatientMotherBirthName": (0x0010, 0x1060),
    "MedicalRecordLocator": (0x0010, 0x1090),
    "CountryOfResidence": (0x0010, 0x2150),
    "RegionOfResidence": (0x0010, 0x2152),
    "PatientTelephoneNumbers": (0x0010, 0x2154),
    "EthnicGroup": (0x0010, 0x2160),
    "Occupation": (0x0010, 0x2180),
    "AdditionalPatientHistory": (0x0010, 0x21B0),
    "ResponsiblePerson": (0x0010, 0x2297),
    "ResponsibleOrganization": (0x0010, 0x2299),
    "PatientComments": (0x0010, 0x4000),
    "AccessionNumber": (0x0008, 0x0050),
    "InstitutionName": (0x0008, 0x0080),
    "InstitutionAddress": (0x0008, 0x0081),
    "ReferringPhysicianName": (0x0008, 0x0090),
    "ReferringPhysicianAddress": (0x0008, 0x0092),
    "ReferringPhysicianTelephoneNumbers": (0x0008, 0x0094),
    "StationName": (0x0008, 0x1010),
    "InstitutionalDepartmentName": (0x0008, 0x1040),
    "PhysiciansOfRecord": (0x0008, 0x1048),
    "PerformingPhysicianName": (0x0008, 0x1050),
    "NameOfPhysiciansReadingStudy": (0x0008, 0x1060),
    "OperatorsName": (0x0008, 0x1070),
    "StudyDate": (0x0008, 0x0020),
    "StudyTime": (0x0008, 0x0030),
    "StudyID": (0x0020, 0x0010),
    "DeviceSerialNumber": (0x0018, 0x1000),
    "RequestingPhysician": (0x0032, 0x1032),
    "RequestAttributesSequence": (0x0040, 0x0275),
}

#: values shorter than this are not scrubbed (see the module docstring)
MIN_LENGTH = 3
REDACTED = "[redacted]"

#: a bytes repr as Python prints it: b'...' or b"..." (with escapes)
_BYTES_REPR = re.compile(r"""(?<![A-Za-z0-9_])b(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")


def variants(value) -> set[str]:
    """The spellings a value takes in text: a person name's components and orders, a date's common
    formats; multi-valued strings (``A\\B``) split. Shorter than ``MIN_LENGTH``: nothing."""
    out: set[str] = set()
    for v in str(value).split("\\"):
        v = " ".join(v.replace("\x00", " ").split())
        if len(v) < MIN_LENGTH:
            continue
        out.add(v)
        if "^" in v:
            parts = [p.strip() for p in v.split("^") if p.strip()]
            out.add("^".join(parts))
            out.add(" ".join(parts))
            if len(parts) >= 2:
                out.update({f"{parts[1]} {parts[0]}", f"{parts[0]}, {parts[1]}"})
            out.update(p for p in parts if len(p) >= MIN_LENGTH)
        if re.fullmatch(r"\d{8}", v):
            y, m, d = v[:4], v[4:6], v[6:]
            out.update({f"{y}-{m}-{d}", f"{d}.{m}.{y}", f"{m}/{d}/{y}", f"{y}/{m}/{d}"})
    return {v for v in out if len(v) >= MIN_LENGTH}


#: longer "values" are not names, IDs, dates or addresses but a damaged element that swallowed the
#: rest of a file: they would only slow every scrub down (a ~1 MB regex) and never occur in a message
MAX_VALUE_LENGTH = 256


def plausible(value: str) -> bool:
    """Whether ``value`` can be a PHI value worth scrubbing (short, printable text)."""
    return MIN_LENGTH <= len(value) <= MAX_VALUE_LENGTH and value.isprintable()


@lru_cache(maxsize=32)
def _pattern(values: frozenset):
    spellings: set[str] = set()
    for v in values:
        spellings |= variants(v)
    if not spellings:
        return None
    alternatives = "|".join(re.escape(s) for s in sorted(spellings, key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])", re.IGNORECASE)


def scrub(text: str, values) -> str:
    """``text`` with every spelling of every value in ``values`` replaced by ``[redacted]``
    (case-insensitive; only where the value is not part of a longer word or number). The pattern
    is compiled once per set of values."""
    if not text:
        return text
    pattern = _pattern(frozenset(str(v) for v in values if plausible(str(v))))
    return text if pattern is None else pattern.sub(REDACTED, text)


def redact_raw_bytes(text: str) -> str:
    """Replace every ``b'...'`` repr (raw element bytes a library put into a message) by ``b'…'``."""
    return _BYTES_REPR.sub("b'…'", text) if text else text


def values_from_dataset(ds) -> set[str]:
    """The PHI values of a pydicom ``Dataset`` (or a mapping keyword -> value), as strings."""
    out: set[str] = set()
    for kw in PHI_KEYWORDS:
        try:
            v = ds.get(kw) if hasattr(ds, "get") else getattr(ds, kw, None)
        except Exception:  # noqa: BLE001 - a damaged element must not stop the others
            continue
        if v is None or isinstance(v, (bytes, bytearray)):
            continue
        if hasattr(v, "__iter__") and not isinstance(v, str) and not hasattr(v, "family_name"):
            items = list(v)
            if items and hasattr(items[0], "keys"):  # a sequence: its items' values
                for item in items:
                    out |= values_from_dataset(item)
                continue
            out.update(str(x) for x in items)
        else:
            out.add(str(v))
    return {v for v in out if len(v.strip()) >= MIN_LENGTH}


def values_from_file(path) -> set[str]:
    """The PHI values of a DICOM file (read with pydicom, PHI elements only, no pixel data); an empty
    set for anything that is not a DICOM file with the standard preamble."""
    p = Path(path)
    try:
        if not p.is_file():
            return set()
        with open(p, "rb") as fh:
            fh.seek(128)
            if fh.read(4) != b"DICM":
                return set()
        ds = _quiet_dcmread(p)
    except Exception:  # noqa: BLE001 - a file pydicom cannot read adds nothing to scrub
        return set()
    return values_from_dataset(ds)


def _quiet_dcmread(path: Path):
    """pydicom's read of the PHI elements with its warnings and log records silenced: they quote
    raw element bytes (e.g. "Invalid value for VR UI: '...DOE^JANE...'") on stderr."""
    import logging
    import warnings

    import pydicom

    log = logging.getLogger("pydicom")
    level, propagate = log.level, log.propagate
    log.setLevel(logging.CRITICAL + 1)
    log.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=list(PHI_KEYWORDS))
    finally:
        log.setLevel(level)
        log.propagate = propagate


class PhiGuard:
    """The PHI values known in this run, and :meth:`scrub` to keep them out of a message."""

    def __init__(self, values=()):
        self._values: set[str] = set()
        self._files: set[str] = set()
        self.add(*values)

    @property
    def values(self) -> frozenset[str]:
        return frozenset(self._values)

    def add(self, *values) -> None:
        for v in values:
            if v is not None and plausible(str(v).strip()):
                self._values.add(str(v))

    def add_dataset(self, ds) -> None:
        self.add(*values_from_dataset(ds))

    def add_file(self, path) -> None:
        """Add a DICOM file's PHI values (read once per file; not a DICOM file: nothing)."""
        key = str(path)
        if key not in self._files:
            self._files.add(key)
            self.add(*values_from_file(path))

    def scrub(self, text: str) -> str:
        return redact_raw_bytes(scrub(text, self._values))


_current: ContextVar[PhiGuard | None] = ContextVar("surgtwin_phi_guard", default=None)


def current_guard() -> PhiGuard | None:
    """The guard of the run in progress (``None`` outside :func:`guarding`)."""
    return _current.get()


def note_dataset(ds) -> None:
    """Add a dataset's PHI values to the current guard, if any (for code that reads whole datasets)."""
    guard = _current.get()
    if guard is not None:
        guard.add_dataset(ds)


@contextlib.contextmanager
def guarding(guard: PhiGuard | None = None):
    """Make ``guard`` (a new one by default) the current guard for the duration of the block."""
    guard = guard or PhiGuard()
    token = _current.set(guard)
    try:
        yield guard
    finally:
        _current.reset(token)
