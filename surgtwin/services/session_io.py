"""Save and open a session in a simple versioned folder (no Qt).

Layout of ``<name>.surgtwin/``::

    session.json   schema_version, volume reference (path + series UID), view settings, structure
                   display, measurements, and a sha256 of every other file
    labels.nii.gz  the (edited) label map on the image grid, with labels.json (its label table)
    meshes.npz     vertices/faces of each structure mesh (LPS mm)

The folder is written next to its target under a temporary name, every file fsync'ed, then renamed
into place, so a crash never leaves a half-written session. Opening checks the schema version and
the checksums. A later issue hardens this into the full case file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from surgtwin.core.errors import SurgtwinError

SCHEMA_VERSION = 1
SESSION_FILE = "session.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_session(session, folder, *, view: dict | None = None, progress=None, cancel=None) -> Path:
    """Write ``session`` to ``folder`` atomically; returns the folder path."""
    from surgtwin.core.geometry import volume_to_sitk
    from surgtwin.core.progress import check, report
    from surgtwin.render.scene import mesh_value

    folder = Path(folder)
    if session.volume is None:
        raise SurgtwinError("nothing to save: open an image first")
    if not session.source.get("path"):
        raise SurgtwinError("this image has no file it was opened from, so the session cannot refer to it")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        files = {}
        if session.labels is not None:
            import SimpleITK as sitk

            report(progress, 0.1, "writing labels")
            sitk.WriteImage(volume_to_sitk(session.labels), str(tmp / "labels.nii.gz"), True)
            session.labels.labels.save(tmp / "labels.json")
            files["labels"] = "labels.nii.gz"
            files["label_table"] = "labels.json"
        check(cancel)
        if session.meshes:
            report(progress, 0.6, "writing meshes")
            arrays = {}
            for i, (name, m) in enumerate(session.meshes.items()):
                arrays[f"v{i}"] = np.asarray(m.vertices, dtype=np.float32)
                arrays[f"f{i}"] = np.asarray(m.faces, dtype=np.int32)
            arrays["names"] = np.array(list(session.meshes), dtype=str)
            arrays["values"] = np.array([mesh_value(m) for m in session.meshes.values()], dtype=np.int32)
            np.savez_compressed(tmp / "meshes.npz", **arrays)
            files["meshes"] = "meshes.npz"
        doc = {
            "schema_version": SCHEMA_VERSION,
            "app": "surgtwin",
            "volume": {"path": session.source.get("path"), "series_uid": session.source.get("series_uid"),
                       "shape": list(session.volume.shape), "affine": session.volume.affine.tolist()},
            "view": {"crosshair_lps": [float(v) for v in session.crosshair_lps],
                     "window": list(session.window), **(view or {})},
            "structures": [{"value": d.value, "name": d.name, "color": list(d.color), "visible": d.visible,
                            "opacity_2d": d.opacity_2d, "opacity_3d": d.opacity_3d}
                           for d in session.display.values()],
            "measurements": [m.to_json() for m in session.measurements],
            "files": {key: {"name": name, "sha256": _sha256(tmp / name)} for key, name in files.items()},
        }
        (tmp / SESSION_FILE).write_text(json.dumps(doc, indent=2) + "\n")
        for p in tmp.iterdir():
            _fsync(p)
        report(progress, 0.9, "replacing the old session")
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            if old.exists():
                shutil.rmtree(old)
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
        report(progress, 1.0, "saved")
        return folder
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_session(folder) -> dict:
    """Read and verify ``session.json`` (schema version, checksums). Returns the document."""
    folder = Path(folder)
    path = folder / SESSION_FILE
    if not path.is_file():
        raise SurgtwinError("is not a surgtwin session (no session.json)", path=folder,
                            hint="choose a folder saved with File > Save session")
    try:
        doc = json.loads(path.read_text())
    except ValueError as exc:
        raise SurgtwinError(f"session.json is not valid JSON ({exc})", path=path) from None
    version = doc.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise SurgtwinError("session.json has no valid schema_version", path=path)
    if version > SCHEMA_VERSION:
        raise SurgtwinError(f"session schema {version} is newer than this app understands ({SCHEMA_VERSION})",
                            path=path, hint="update surgtwin")
    for key, entry in doc.get("files", {}).items():
        f = folder / entry["name"]
        if not f.is_file():
            raise SurgtwinError(f"the session's {key} file is missing", path=f)
        if _sha256(f) != entry["sha256"]:
            raise SurgtwinError(f"the session's {key} file is damaged (checksum mismatch)", path=f)
    return doc


def open_session(folder, session, *, progress=None, cancel=None) -> dict:
    """Load a saved session into ``session`` (reloading its image). Returns the view settings."""
    from surgtwin.core.progress import scaled
    from surgtwin.services import pipeline
    from surgtwin.services.session import Measurement

    folder = Path(folder)
    doc = read_session(folder)
    vol_ref = doc["volume"]
    if not vol_ref.get("path") or not Path(vol_ref["path"]).exists():
        raise SurgtwinError("the image this session refers to is not there", path=vol_ref.get("path"),
                            hint="restore the image at that path, then open the session again")
    volume = pipeline.load_volume(vol_ref["path"], series_uid=vol_ref.get("series_uid"),
                                  progress=scaled(progress, 0, 0.7), cancel=cancel)
    if list(volume.shape) != list(vol_ref["shape"]):
        raise SurgtwinError(f"the image changed since the session was saved (shape {list(volume.shape)} "
                            f"vs {vol_ref['shape']})", path=vol_ref["path"])
    labels = None
    files = doc.get("files", {})
    if "labels" in files:
        labels = pipeline.load_labels(folder / files["labels"]["name"], volume,
                                      table_path=folder / files["label_table"]["name"],
                                      progress=scaled(progress, 0.7, 0.9), cancel=cancel)
    meshes = {}
    if "meshes" in files:
        from surgtwin.services.meshing import DisplayMesh

        with np.load(folder / files["meshes"]["name"]) as z:
            for i, (name, value) in enumerate(zip(z["names"], z["values"], strict=True)):
                colour = labels.labels[int(value)].color if labels is not None and int(value) in labels.labels \
                    else (200, 200, 200)
                meshes[str(name)] = DisplayMesh(str(name), int(value), tuple(colour), z[f"v{i}"].astype(np.float64),
                                                z[f"f{i}"].astype(np.int64))
    return {"doc": doc, "volume": volume, "labels": labels, "meshes": meshes,
            "source": {"path": vol_ref["path"], "series_uid": vol_ref.get("series_uid")},
            "measurements": [Measurement(m["kind"], [tuple(p) for p in m["points_lps"]], m.get("plane"))
                             for m in doc.get("measurements", [])]}


def apply_loaded(session, loaded: dict) -> dict:
    """Put what ``open_session`` read into ``session`` (on the GUI thread). Returns the view settings."""
    doc = loaded["doc"]
    session.set_volume(loaded["volume"], source=loaded["source"])
    session.set_labels(loaded["labels"])
    for s in doc.get("structures", []):
        if s["value"] in session.display:
            session.set_structure(s["value"], visible=s["visible"], color=s["color"],
                                  opacity_2d=s["opacity_2d"], opacity_3d=s["opacity_3d"])
    session.set_meshes(loaded["meshes"])
    view = doc.get("view", {})
    if "window" in view:
        session.set_window(*view["window"])
    if "crosshair_lps" in view:
        session.set_crosshair(view["crosshair_lps"])
    for m in loaded["measurements"]:
        session.add_measurement(m)
    return view
