"""`surgtwin info PATH`: list the series found (patient-free summary) without loading pixels."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("info", help="list the image series in a DICOM folder/file or describe an image file")
    p.add_argument("path", help="DICOM folder or file, or a NIfTI/NRRD/MHA file")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--skipped", action="store_true", help="also list every file that was skipped and why")
    return p


def _fmt(values, nd=3):
    return "x".join(f"{v:.{nd}g}" for v in values)


def run(args) -> int:
    import json
    from pathlib import Path

    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.core.io import is_itk_file, load_volume

    path = Path(args.path)
    if path.is_file() and is_itk_file(path):
        import numpy as np

        vol = load_volume(path)
        from surgtwin.core.geometry import orientation_code

        arr = vol.array
        finite = np.isfinite(arr) if arr.dtype.kind == "f" else None
        n_bad = 0 if finite is None else int(arr.size - np.count_nonzero(finite))
        values = arr if finite is None or not n_bad else arr[finite]
        info = {
            "file": str(path),
            "shape_slices_rows_cols": list(vol.shape),
            "spacing_mm_slice_row_col": [round(float(s), 4) for s in vol.spacing_mm],
            "orientation_code": orientation_code(vol.affine),
            "dtype": str(arr.dtype),
            # finite values only: JSON has no NaN (null when no voxel is finite)
            "range": [float(values.min()), float(values.max())] if values.size else None,
            "non_finite_voxels": n_bad,
        }
        print(json.dumps(info, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in info.items()))
        return 0

    from surgtwin.core.dicom.scan import scan

    result = scan(path, progress=ProgressBar("scanning"))
    from surgtwin.core.phi import current_guard

    guard = current_guard()
    if guard is not None:  # the patient values of every series listed are redacted from the output
        for c in result.candidates:
            if c.headers:
                guard.add_file(c.headers[0].path)
    if args.json:
        out = {
            "path": str(path),
            "files": result.n_files,
            "series": [c.summary() for c in result.candidates],
            "skipped": [{"file": f, "reason": r} for f, r in result.skipped],
        }
        print(json.dumps(out, indent=2))
        return 0
    print(f"{path}: {result.n_files} file(s), {len(result.candidates)} series candidate(s), "
          f"{len(result.skipped)} file(s) skipped")
    for i, c in enumerate(result.candidates, 1):
        s = c.summary()
        status = "loadable" if c.loadable else "NOT LOADABLE"
        sp = s["spacing_mm_slice_row_col"]
        print(f"\n[{i}] {s['modality'] or '?'} {s['description']!r} series #{s['series_number']} — {status}")
        print(f"    uid: {c.series_uid or '(missing)'}")
        print(f"    size (slices x rows x cols): {_fmt(s['shape_slices_rows_cols'], 6)}   files: {s['files']}"
              + (f"   frames: {s['frames']}" if s["frames"] != s["files"] else ""))
        if sp:
            print(f"    spacing mm (slice x row x col): {_fmt(sp, 4)}   orientation: {s['orientation']} "
                  f"({s['orientation_code']})")
        if c.refusal:
            print(f"    refused: {c.refusal}")
        for w in c.warnings:
            print(f"    warning: {w}")
    if result.skipped:
        if args.skipped:
            print("\nskipped files:")
            for f, r in result.skipped:
                print(f"    {f}: {r}")
        else:
            print(f"\n{len(result.skipped)} file(s) skipped (not DICOM images); --skipped lists them")
    return 0
