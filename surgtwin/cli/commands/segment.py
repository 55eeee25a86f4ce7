"""`surgtwin segment INPUT --out labels.nii.gz`: organ segmentation of a CT (model or classical).

Writes the label map with exactly the input's geometry and, beside it, ``<name>.json`` with the
label table (value, name, colour, code) and per-structure volume (ml) and confidence. The quality
gate (``surgtwin.services.quality``) runs on the result: structures outside the scan's field of view
are removed (``--no-gate`` keeps them), implausible ones are flagged; the flags are printed and the
JSON has per structure ``status``, ``reasons``, ``calibrated_confidence`` and the whole ``quality``
record.
"""

from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("segment", help="segment organs and structures of a CT (NOT FOR CLINICAL USE)")
    p.add_argument("input", help="DICOM folder or file, or a NIfTI/NRRD/MHA file (CT in HU)")
    p.add_argument("--out", "-o", required=True, help="output label map: .nii.gz, .nii, .nrrd or .mha")
    p.add_argument("--bundle", metavar="DIR", help="a MONAI bundle folder (default: the bundled model)")
    p.add_argument("--method", choices=("model", "classical"), default="model",
                   help="'model' (default) or 'classical' (bone + contrast vessels, no model)")
    p.add_argument("--seed", metavar="X,Y,Z", help="classical: a point in a contrast-filled vessel (LPS mm); write --seed=X,Y,Z when X is negative")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when present, else cpu")
    p.add_argument("--series", metavar="UID", help="SeriesInstanceUID to use from a DICOM folder")
    p.add_argument("--no-gate", action="store_true",
                   help="keep structures the quality gate removes (outside the scan's field of view); "
                        "they are still reported")
    return p


def json_path_for(out) -> Path:
    out = Path(out)
    name = out.name
    for ext in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.lower().endswith(ext):
            return out.with_name(name[: -len(ext)] + ".json")
    return out.with_name(name + ".json")


def run(args) -> int:
    import json

    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.core.io import check_output_path, load_volume, save_volume
    from surgtwin.core.segmentation import segment

    # everything that can be checked is checked before the (long) loading and model run
    if not Path(args.input).exists():
        raise SurgtwinError("no such file or folder", path=args.input)
    out_path = check_output_path(args.out, what="label map")
    side_path = json_path_for(out_path)
    if side_path.is_dir():
        raise SurgtwinError("the label JSON beside the label map would replace a folder", path=side_path)
    options = {}
    if args.seed:
        if args.method != "classical":
            raise SurgtwinError("--seed is only used with --method classical")
        try:
            options["seed_lps"] = [float(v) for v in args.seed.split(",")]
            assert len(options["seed_lps"]) == 3
        except (ValueError, AssertionError):
            raise SurgtwinError(f"--seed must be three numbers X,Y,Z in LPS mm, got {args.seed!r}") from None
    bundle, device = args.bundle, args.device
    if args.method == "model":
        device = _device(args.device)
        if args.bundle:  # a hospital's bundle: its configs, weights and network are checked first
            from surgtwin.core.segmentation import load_bundle

            bundle = load_bundle(args.bundle)
            options["net"] = bundle.build_network(device)
    vol = load_volume(args.input, series_uid=args.series, progress=ProgressBar("loading"))
    if vol.modality is None:
        from dataclasses import replace

        vol = replace(vol, modality="CT")  # NIfTI/NRRD/MHA carry no modality: the user says it is a CT
    res = segment(vol, method=args.method, bundle=bundle, device=device, progress=ProgressBar("segmenting"), **options)
    from surgtwin.services.quality import describe, gate_segmentation

    gate = gate_segmentation(vol, res)  # field of view, plausibility, calibrated confidence
    out = save_volume(res.labels if args.no_gate else gate.labels, out_path)
    side = json_path_for(out)
    tmp = side.with_name(f".{side.name}.tmp")
    doc = res.to_json()
    status = {n: q["status"] for n, q in gate.record["structures"].items()}
    for st in doc["structures"]:
        q = gate.record["structures"].get(st["name"], {})
        st.update(status=status.get(st["name"], "ok"), reasons=q.get("reasons", []),
                  calibrated_confidence=q.get("confidence"))
    if not args.no_gate:
        doc["structures"] = [st for st in doc["structures"] if st["status"] != "removed"]
        doc["labels"] = gate.labels.labels.to_json()
    doc["quality"] = gate.record
    for line in describe(gate.record):
        print(line)
    try:
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        tmp.replace(side)
    except OSError as exc:
        raise SurgtwinError(f"cannot write the label JSON ({exc.strerror or exc})", path=side) from None
    print(f"wrote {out} and {side}")
    print(f"{'structure':<24} {'volume ml':>10} {'confidence':>10}")
    for s in res.structures:
        conf = "" if s.confidence is None else f"{s.confidence:.3f}"
        print(f"{s.name:<24} {s.volume_ml:>10.1f} {conf:>10}")
    for w in res.warnings:
        print(f"warning: {w}")
    print("NOT FOR CLINICAL USE")
    return 0


def _device(device: str | None) -> str:
    """The device the model runs on: the one asked for, else CUDA when present, else the CPU."""
    import torch

    from surgtwin.core.errors import SurgtwinError

    if device == "cuda" and not torch.cuda.is_available():
        raise SurgtwinError("--device cuda: no CUDA device is available", hint="use --device cpu")
    return device or ("cuda" if torch.cuda.is_available() else "cpu")
