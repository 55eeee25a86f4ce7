"""`surgtwin convert INPUT OUT.nii.gz`: load a series/image and write it as NIfTI/NRRD/MHA."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("convert", help="convert a DICOM series (or image file) to NIfTI/NRRD/MHA")
    p.add_argument("input", help="DICOM folder or file, or a NIfTI/NRRD/MHA file")
    p.add_argument("output", help="output file: .nii.gz, .nii, .nrrd or .mha")
    p.add_argument("--series", metavar="UID", help="SeriesInstanceUID to convert (default: most slices)")
    p.add_argument("--strict", action="store_true",
                   help="refuse series that need resampling (gaps, uneven spacing, gantry tilt)")
    return p


def run(args) -> int:
    from pathlib import Path

    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.core.io import check_output_path, load_volume, save_volume

    if not Path(args.input).exists():
        raise SurgtwinError("no such file or folder", path=args.input)
    check_output_path(args.output)  # before the (long) loading
    vol = load_volume(args.input, series_uid=args.series, allow_resample=not args.strict,
                      progress=ProgressBar("loading"))
    for w in vol.metadata.get("warnings", []):
        print(f"warning: {w}")
    out = save_volume(vol, args.output)
    sp = "x".join(f"{s:.4g}" for s in vol.spacing_mm)
    print(f"wrote {out} ({'x'.join(map(str, vol.shape))} voxels, spacing {sp} mm, {vol.array.dtype})")
    return 0
