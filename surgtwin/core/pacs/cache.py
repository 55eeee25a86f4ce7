"""The local cache of retrieved series: one folder per complete, verified series.

Layout under the cache root::

    <study UID>/<series UID>/<SOP instance UID>.dcm   complete series (as received, DICOM file format)
    <study UID>/<series UID>/series.json               its manifest (instance count, node, time)
    .pending/<series UID>-XXXX/                         transfers in progress

A transfer writes into a pending folder (``PendingSeries``); ``verify`` checks the instance count
against what C-FIND promised and what the node counted in its sub-operations, and re-reads every file
with pydicom (study, series and SOP instance UIDs as expected); only then ``commit`` writes the manifest
and renames the folder into place, so a failed, cancelled or half-finished transfer leaves nothing
behind. A folder with a manifest whose instance count still matches is complete; anything else found
at a series' place is removed before it is fetched again.

``Inbox`` is the C-STORE handler for C-GET and for our C-MOVE storage SCP: it writes each instance
into the pending folder of its series and refuses instances of series nobody asked for.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from surgtwin.core.errors import SurgtwinError

MANIFEST = "series.json"
PENDING = ".pending"
#: pending folders older than this are left-overs of a crashed run and are removed
STALE_PENDING_S = 24 * 3600
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
STATUS_OK, STATUS_WRITE_FAILED, STATUS_NOT_ASKED_FOR = 0x0000, 0xA700, 0xC001


def _checked_uid(uid: str, field: str) -> str:
    uid = str(uid).strip()
    if not uid or len(uid) > 64 or not _UID_RE.match(uid):
        raise SurgtwinError(f"{field} {uid!r} is not a DICOM UID", hint="dotted digits, e.g. 1.2.840.113619.2.1")
    return uid


class SeriesCache:
    """The cache folder (see the module docstring)."""

    def __init__(self, root) -> None:
        self.root = Path(root)

    def folder(self, study_uid: str, series_uid: str) -> Path:
        return self.root / _checked_uid(study_uid, "study_uid") / _checked_uid(series_uid, "series_uid")

    def lookup(self, study_uid: str, series_uid: str) -> Path | None:
        """The series' folder when it is complete in the cache; a damaged entry is removed (None)."""
        folder = self.folder(study_uid, series_uid)
        if not folder.exists():
            return None
        manifest = read_manifest(folder)
        if manifest is not None and manifest.get("n_instances") == sum(1 for _ in folder.glob("*.dcm")):
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        return None

    def entries(self) -> list[dict]:
        """The manifests of the complete series in the cache (each with its "folder")."""
        out = []
        if not self.root.is_dir():
            return out
        for manifest in sorted(self.root.glob(f"*/*/{MANIFEST}")):
            data = read_manifest(manifest.parent)
            if data is not None:
                out.append({**data, "folder": str(manifest.parent)})
        return out

    def remove(self, study_uid: str, series_uid: str) -> None:
        folder = self.folder(study_uid, series_uid)
        shutil.rmtree(folder, ignore_errors=True)
        try:
            folder.parent.rmdir()
        except OSError:
            pass

    def begin(self, study_uid: str, series_uid: str, *, expected: int | None = None) -> PendingSeries:
        """A new pending folder for one series' transfer."""
        self.folder(study_uid, series_uid)  # checks the UIDs
        pending_root = self.root / PENDING
        pending_root.mkdir(parents=True, exist_ok=True)
        self.clean_stale()
        tmp = Path(tempfile.mkdtemp(prefix=f"{series_uid}-", dir=pending_root))
        return PendingSeries(self, study_uid, series_uid, tmp, expected)

    def clean_stale(self, max_age_s: float = STALE_PENDING_S) -> None:
        now = time.time()
        for p in (self.root / PENDING).glob("*"):
            try:
                if now - p.stat().st_mtime > max_age_s:
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                pass


def read_manifest(folder: Path) -> dict | None:
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class PendingSeries:
    """One series being received into a temporary folder; ``commit`` or ``discard`` it."""

    def __init__(self, cache: SeriesCache, study_uid: str, series_uid: str, folder: Path, expected: int | None):
        self.cache, self.study_uid, self.series_uid = cache, study_uid, series_uid
        self.folder, self.expected = folder, expected
        self.received = 0
        self.refused = 0
        self.write_error = ""
        self._lock = threading.Lock()

    def write(self, sop_uid: str, data: bytes) -> None:
        name = sop_uid if _UID_RE.match(sop_uid or "") and len(sop_uid) <= 64 else None
        with self._lock:
            self.received += 1
            if name is None:
                name = f"instance-{self.received:06d}"
        (self.folder / f"{name}.dcm").write_bytes(data)

    def files(self) -> list[Path]:
        return sorted(self.folder.glob("*.dcm"))

    def verify(self, *, completed: int | None = None, failed: int | None = None,
               cancel_check: Callable[[], None] | None = None) -> str | None:
        """Why the received series is not complete and sound, or None when it is."""
        files = self.files()
        n = len(files)
        if self.refused:
            return f"{self.refused} instance(s) could not be written into the cache ({self.write_error})"
        if failed:
            return f"{failed} of the series' instances failed to transfer (the node counted them as failed)"
        if n == 0:
            return "no instances arrived"
        if self.expected is not None and n != self.expected:
            return f"the series arrived incomplete: {n} of {self.expected} instances (as the node's C-FIND said)"
        if completed is not None and completed != n:
            return f"the node says it sent {completed} instances, {n} arrived"
        import pydicom

        for k, f in enumerate(files):
            if cancel_check is not None and k % 32 == 0:
                cancel_check()
            try:
                ds = pydicom.dcmread(f)
                study, series, sop = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
            except Exception as exc:  # noqa: BLE001 - any reading problem makes the file unusable
                return f"instance file {f.name} cannot be read back ({type(exc).__name__}: {exc})"
            if (study, series) != (self.study_uid, self.series_uid):
                return f"instance {sop} belongs to another study or series"
            if f.stem != sop and not f.stem.startswith("instance-"):
                return f"instance file {f.name} holds SOP instance {sop}"
        return None

    def commit(self, info: dict) -> Path:
        """Write the manifest and move the folder into place; the final folder."""
        target = self.cache.folder(self.study_uid, self.series_uid)
        manifest = {"study_uid": self.study_uid, "series_uid": self.series_uid, "n_instances": len(self.files()),
                    "retrieved": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **info}
        (self.folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(self.folder, target)
        except OSError:
            # someone else completed the same series meanwhile: keep theirs when it is sound
            if self.cache.lookup(self.study_uid, self.series_uid) is None:
                os.rename(self.folder, target)
            else:
                self.discard()
        return target

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class Inbox:
    """C-STORE handler: routes each received instance to the pending folder of its series."""

    def __init__(self, pending: dict[str, PendingSeries], on_instance: Callable[[], None] | None = None) -> None:
        self.pending = pending
        self.on_instance = on_instance
        self.unexpected = 0

    def handle(self, event) -> int:
        """pynetdicom's EVT_C_STORE handler; returns the C-STORE status. With one series expected (a
        series-level retrieve) the dataset is not decoded here: ``PendingSeries.verify`` reads every file."""
        try:
            if len(self.pending) == 1:
                (target,) = self.pending.values()
                sop_uid = str(event.request.AffectedSOPInstanceUID or "")
            else:
                ds = event.dataset
                target = self.pending.get(str(ds.get("SeriesInstanceUID", "")))
                sop_uid = str(ds.get("SOPInstanceUID", ""))
        except Exception:  # noqa: BLE001 - an undecodable dataset is refused, not a crash of the SCP
            target = None
        if target is None:
            self.unexpected += 1
            return STATUS_NOT_ASKED_FOR
        try:
            target.write(sop_uid, event.encoded_dataset(include_meta=True))
        except OSError as exc:
            target.refused += 1
            target.write_error = exc.strerror or str(exc)
            return STATUS_WRITE_FAILED
        if self.on_instance is not None:
            self.on_instance()
        return STATUS_OK
