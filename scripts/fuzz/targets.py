"""What each input is fed to: surgtwin's real entry points, as the app and the CLI call them.

A target is ``fn(path, desc, rec)``; it lets any exception other than ``SurgtwinError`` escape (that
is a defect), records refusals and every user-visible text in ``rec`` (for the PHI grep), and flags
results that were accepted but are wrong (non-finite geometry or voxels).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np


class Recorder:
    """What a target saw: user-visible texts, refusals, and silently wrong results."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.refusals: list[str] = []
        self.wrong: list[str] = []

    def text(self, t) -> None:
        self.texts.append(str(t))

    def refuse(self, why) -> None:
        self.refusals.append(str(why)[:300])
        self.texts.append(str(why))

    def step(self, fn, *args, **kw):
        """Call ``fn``; a ``SurgtwinError`` is a clean refusal (recorded, returns None)."""
        from surgtwin.core.errors import SurgtwinError

        try:
            return fn(*args, **kw)
        except SurgtwinError as exc:
            self.refuse(exc)
            for attr in ("reason", "hint", "path"):
                if getattr(exc, attr, None):
                    self.text(getattr(exc, attr))
            return None

    def cli(self, argv: list[str]) -> None:
        """``surgtwin <argv>`` with stdout/stderr captured; exit 2 is a refusal, JSON must parse strictly."""
        from surgtwin.cli.main import main

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as exc:  # argparse
                rc = exc.code if isinstance(exc.code, int) else 1
        self.text(out.getvalue())
        self.text(err.getvalue())
        if rc == 2:
            self.refuse(f"cli exit 2: {err.getvalue().strip()[:200]}")
        elif rc != 0:
            self.wrong.append(f"`surgtwin {argv[0]}` exited {rc}: {err.getvalue().strip()[-200:]}")
        elif "--json" in argv:
            try:
                json.loads(out.getvalue(), parse_constant=_no_constant)
            except ValueError as exc:
                self.wrong.append(f"`surgtwin {argv[0]} --json` printed invalid JSON ({exc})")


def _no_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def check_volume(vol, rec: Recorder, *, voxels: bool) -> None:
    """Cheap checks of an accepted volume: finite, non-singular geometry; finite float voxels."""
    a = np.asarray(vol.affine, dtype=np.float64)
    arr = vol.array
    rec.text(json.dumps(getattr(vol, "metadata", {}) or {}, default=str))
    if a.shape != (4, 4) or not np.isfinite(a).all():
        rec.wrong.append(f"accepted silently wrong: non-finite affine {a.tolist()}")
    elif np.linalg.det(a[:3, :3]) == 0:
        rec.wrong.append(f"accepted silently wrong: singular affine (zero spacing or parallel axes) {a[:3, :3].tolist()}")
    if arr.ndim != 3 or 0 in arr.shape:
        rec.wrong.append(f"accepted silently wrong: array of shape {arr.shape}")
    elif voxels and arr.dtype.kind == "f" and not np.isfinite(arr).all():
        rec.wrong.append(f"accepted silently wrong: {int((~np.isfinite(arr)).sum())} non-finite voxels")


def dicom(path: Path, desc: dict, rec: Recorder) -> None:
    """``scan`` then ``load_volume`` (as `surgtwin info` and the app's Open do), sometimes `info --json`."""
    from surgtwin.core.dicom.scan import scan
    from surgtwin.core.io import load_volume

    mutated = set(desc.get("mutated", []))
    result = rec.step(scan, path)
    if result is not None:
        for f, reason in result.skipped:
            rec.text(f"{f}: {reason}")
            if os.path.basename(f) in mutated or not mutated:
                rec.refuse(f"skipped {os.path.basename(f)}: {reason}")
        for c in result.candidates:
            rec.text(json.dumps(c.summary(), default=str))
            if not c.loadable and any(os.path.basename(h.path) in mutated for h in c.headers):
                rec.refuse(f"candidate refused: {c.refusal}")
    vol = rec.step(load_volume, path)
    if vol is not None:
        check_volume(vol, rec, voxels=True)
    if desc.get("cli"):
        rec.cli(["info", "--json", "--skipped", str(path)])
    if desc.get("convert"):
        _convert(path, rec)


def _convert(path: Path, rec: Recorder) -> None:
    """`surgtwin convert PATH out.nii.gz` (load + save), into a folder beside the input."""
    base = Path(path) if Path(path).is_dir() else Path(path).parent
    out = base.parent / "convert_out"
    out.mkdir(exist_ok=True)
    rec.cli(["convert", str(path), str(out / "out.nii.gz")])


def nifti(path: Path, desc: dict, rec: Recorder) -> None:
    """``load_volume`` of a NIfTI file, sometimes `info --json` / `convert`; a label image (with its
    labels.json) is also read as labels onto the CT reference beside it, as the app opens labels."""
    from surgtwin.core.io import load_volume

    vol = rec.step(load_volume, path)
    if vol is not None:
        check_volume(vol, rec, voxels=False)  # NaN voxels are legal in a float NIfTI
    reference = Path(path).parent / "reference.nii"
    if reference.is_file():
        from surgtwin.services.pipeline import load_labels

        lm = rec.step(load_labels, path, load_volume(reference))
        if lm is not None:
            check_volume(lm, rec, voxels=True)
            rec.text(json.dumps([[lb.value, lb.name] for lb in lm.labels], default=str))
    if desc.get("cli"):
        rec.cli(["info", "--json", str(path)])
    if desc.get("convert"):
        _convert(path, rec)


def bundle(path: Path, desc: dict, rec: Recorder) -> None:
    """``load_bundle`` + ``build_network`` (the segmentation path) and ``check_bundle`` (the app's check)."""
    from surgtwin.core.segmentation import load_bundle
    from surgtwin.services.pipeline import check_bundle

    b = rec.step(load_bundle, path)
    if b is not None:
        for w in b.warnings:
            rec.text(w)
        rec.step(b.build_network, "cpu")
    b2 = rec.step(check_bundle, path)
    if b2 is not None:
        rec.text(f"{b2.name} {b2.version}")


DEFAULT = {"dicom": dicom, "nifti": nifti, "bundle": bundle}
