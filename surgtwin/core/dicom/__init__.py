"""DICOM: header-only scan, series candidates with warnings (like 3D Slicer's examine), pixel loading."""

from __future__ import annotations

from pathlib import Path

from surgtwin.core.dicom.series import SeriesCandidate
from surgtwin.core.errors import SurgtwinError

__all__ = ["SeriesCandidate", "find_series", "load_series"]


def find_series(path, *, progress=None, cancel=None) -> list[SeriesCandidate]:
    """All series candidates under a folder (or in one file), best first, each with its warnings."""
    from surgtwin.core.dicom.scan import scan

    return scan(path, progress=progress, cancel=cancel).candidates


def choose_candidate(candidates: list[SeriesCandidate], series_uid: str | None, source,
                     skipped: list[tuple[str, str]] = ()) -> SeriesCandidate:
    if series_uid is not None:
        matches = [c for c in candidates if c.series_uid == series_uid]
        if not matches:
            raise SurgtwinError(f"no series with SeriesInstanceUID {series_uid}", path=source,
                                hint="run `surgtwin info` to list the series")
        loadable = [c for c in matches if c.loadable]
        if not loadable:
            raise SurgtwinError(f"series {series_uid} cannot be loaded: {matches[0].refusal}", path=source)
        return loadable[0]
    loadable = [c for c in candidates if c.loadable]
    if not loadable:
        if candidates:
            reasons = "; ".join(sorted({c.refusal or "" for c in candidates}))[:500]
            raise SurgtwinError(f"no loadable image series ({reasons})", path=source)
        if skipped:
            shown = "; ".join(f"{f}: {r}" for f, r in list(skipped)[:3])
            more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
            raise SurgtwinError(f"no DICOM image series found; {len(skipped)} file(s) skipped: {shown}{more}",
                                path=source)
        raise SurgtwinError("no DICOM image series found", path=source,
                            hint="point at a folder that holds the .dcm files of a CT or MR series")
    return max(loadable, key=lambda c: (len(c.headers), c.confidence))


def load_series(path, *, series_uid: str | None = None, allow_resample: bool = True,
                progress=None, cancel=None):
    """Load one series from a DICOM folder or file as a ``Volume`` (most slices unless ``series_uid``)."""
    from surgtwin.core.dicom.load import load_candidate
    from surgtwin.core.dicom.scan import scan
    from surgtwin.core.progress import scaled

    result = scan(Path(path), progress=scaled(progress, 0.0, 0.2), cancel=cancel)
    cand = choose_candidate(result.candidates, series_uid, path, result.skipped)
    return load_candidate(cand, allow_resample=allow_resample, progress=scaled(progress, 0.2, 1.0), cancel=cancel)
