"""Walk a folder tree, read headers only, and return series candidates plus the files skipped."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from surgtwin.core.dicom.header import SliceHeader, read_headers
from surgtwin.core.dicom.series import SeriesCandidate, group_series
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import CancelToken, ProgressFn, check, report

_NOT_DICOM_SUFFIXES = {".txt", ".md", ".json", ".png", ".jpg", ".jpeg", ".pdf", ".xml", ".html", ".nii", ".gz",
                       ".nrrd", ".mha", ".mhd", ".py", ".csv", ".zip", ".exe", ".ini", ".log"}


@dataclass
class ScanResult:
    candidates: list[SeriesCandidate]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    n_files: int = 0


def list_files(root: Path, skipped: list[tuple[str, str]] | None = None) -> list[str]:
    """Regular files under ``root`` (sorted, hidden ones left out). FIFOs, sockets and devices are
    listed in ``skipped``: opening a FIFO would block the scan forever."""
    import stat

    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = os.path.join(dirpath, name)
            try:
                mode = os.stat(path).st_mode
            except OSError as exc:
                if skipped is not None:
                    skipped.append((path, f"cannot read file ({exc.strerror})"))
                continue
            if not stat.S_ISREG(mode):
                if skipped is not None:
                    skipped.append((path, "not a regular file (FIFO, socket or device)"))
                continue
            files.append(path)
    return files


def scan(
    path: str | Path,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> ScanResult:
    """Read the headers of every file under ``path`` (or of one file) and group them into series."""
    root = Path(path)
    if not root.exists():
        raise SurgtwinError("no such file or folder", path=root)
    skipped: list[tuple[str, str]] = []
    if root.is_dir():
        files = list_files(root, skipped)
    elif root.is_file():
        files = [str(root)]
    else:
        raise SurgtwinError("not a regular file or folder (FIFO, socket or device)", path=root)
    headers: list[SliceHeader] = []
    total = len(files)
    for i, f in enumerate(files):
        if i % 256 == 0:
            check(cancel)
            report(progress, i / max(total, 1), f"reading headers {i}/{total}")
        suffix = Path(f).suffix.lower()
        if suffix in _NOT_DICOM_SUFFIXES and not f.lower().endswith(".dcm"):
            skipped.append((f, f"not a DICOM file (extension {suffix})"))
            continue
        try:
            hs = read_headers(f)
        except SurgtwinError as exc:
            skipped.append((f, exc.reason))
            continue
        for h in hs:
            if not h.has_pixels:
                skipped.append((f, f"DICOM object without pixel data (SOP class {h.sop_class_uid or 'unknown'})"))
                break
        else:
            headers.extend(hs)
    report(progress, 1.0, f"{total} files scanned")
    return ScanResult(candidates=group_series(headers), skipped=skipped, n_files=total)
