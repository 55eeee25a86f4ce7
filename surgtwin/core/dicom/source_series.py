"""The DICOM series a case was loaded from, one file per slice of the case's grid.

Objects written back to the hospital (SEG, RTSTRUCT, Secondary Capture) reference the source study,
series, frame of reference and each slice's SOP instance, so exporting needs the source files and
needs them to lie exactly on the case's grid: ``SourceSeries.open`` refuses a folder that is gone, a
series that is no longer there, a multi-frame series, and a series the case's grid does not match
(it was resampled on load: gantry tilt, uneven or missing slices).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import check, report, scaled

#: how far (in voxels) a file's position may lie from its slice of the grid
POSITION_TOL_VOX = 0.01
REOPEN_HINT = "open the case again from the DICOM folder it was made from (surgtwin case new DICOM_DIR), " \
              "or move that folder back to where it was"


@dataclass
class SourceSeries:
    """The source series' files, in the grid's slice order (``paths[k]``, ``headers[k]``)."""

    folder: Path
    paths: list[Path]
    headers: list  # pydicom Datasets without pixel data
    series_uid: str
    study_uid: str
    frame_of_reference_uid: str

    @classmethod
    def open(cls, folder, grid, *, series_uid: str | None = None, progress=None, cancel=None) -> SourceSeries:
        """The series ``series_uid`` under ``folder``, checked to lie on ``grid`` (a ``Volume``)."""
        import pydicom

        from surgtwin.core.dicom import choose_candidate
        from surgtwin.core.dicom.scan import scan

        folder = Path(folder)
        if not folder.exists():
            raise SurgtwinError("the case's source DICOM series is no longer on disk", path=folder,
                                hint=REOPEN_HINT)
        result = scan(folder, progress=scaled(progress, 0.0, 0.3), cancel=cancel)
        cand = choose_candidate(result.candidates, series_uid, folder, result.skipped)
        if any(h.frame_index is not None for h in cand.headers):
            raise SurgtwinError("the source is a multi-frame (enhanced) image; exporting objects that reference "
                                "it is not supported yet", path=folder,
                                hint="export from a single-frame series of the same scan")
        cls._check_grid(cand, grid, folder)
        order = cls._slice_order(cand, grid, folder)
        headers, paths = [], []
        for n, i in enumerate(order):
            check(cancel)
            path = Path(cand.headers[i].path)
            try:
                headers.append(pydicom.dcmread(path, stop_before_pixels=True))
            except Exception as exc:  # noqa: BLE001 - a file changed since the scan
                raise SurgtwinError(f"cannot read the source image ({type(exc).__name__})", path=path,
                                    hint=REOPEN_HINT) from None
            paths.append(path)
            if n % 32 == 0:
                report(progress, 0.3 + 0.7 * n / len(order), "reading source headers")
        report(progress, 1.0, "source series ready")
        return cls(folder, paths, headers, cand.series_uid, cand.study_uid, cand.frame_of_reference_uid)

    @staticmethod
    def _check_grid(cand, grid, folder: Path) -> None:
        why = None
        if cand.needs_resample:
            why = f"the series was resampled onto a regular grid when it was loaded ({'; '.join(cand.warnings)})"
        elif cand.shape != grid.shape:
            why = f"the series has {cand.shape} voxels, the case {grid.shape}"
        elif cand.affine is None or not np.allclose(cand.affine, grid.affine,
                                                    atol=1e-3 * float(np.min(grid.spacing_mm)) + 1e-6):
            why = "the series' geometry (origin, spacing or orientation) differs from the case's"
        elif grid.frame_of_reference_uid and cand.frame_of_reference_uid != grid.frame_of_reference_uid:
            why = "the series' frame of reference differs from the case's"
        if why:
            raise SurgtwinError(f"the case's grid does not match its source DICOM series: {why}", path=folder,
                                hint="objects that reference the source need labels on its exact grid; "
                                     "export NIfTI/meshes instead, or open the case again from the source series")

    @staticmethod
    def _slice_order(cand, grid, folder: Path) -> list[int]:
        """Index of the header that holds slice ``k``, for each ``k`` of the grid."""
        inv = np.linalg.inv(grid.affine)
        pos = np.array([h.position for h in cand.headers], dtype=float)
        kji = pos @ inv[:3, :3].T + inv[:3, 3]
        k = np.rint(kji[:, 0]).astype(int)
        off = np.abs(kji - np.c_[k, np.zeros((len(k), 2))]).max(axis=1)
        if len(k) != grid.shape[0] or np.any(off > POSITION_TOL_VOX) or sorted(k.tolist()) != list(range(len(k))):
            raise SurgtwinError("the source files do not lie one per slice on the case's grid", path=folder,
                                hint=REOPEN_HINT)
        return [int(i) for i in np.argsort(k)]

    @property
    def sop_class_uids(self) -> list[str]:
        return [str(h.SOPClassUID) for h in self.headers]

    @property
    def sop_instance_uids(self) -> list[str]:
        return [str(h.SOPInstanceUID) for h in self.headers]

    def read_full(self, k: int):
        """Slice ``k``'s file with its pixel data (a pydicom Dataset)."""
        import pydicom

        try:
            return pydicom.dcmread(self.paths[k])
        except Exception as exc:  # noqa: BLE001
            raise SurgtwinError(f"cannot read the source image ({type(exc).__name__})", path=self.paths[k],
                                hint=REOPEN_HINT) from None
