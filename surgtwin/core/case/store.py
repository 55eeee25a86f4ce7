"""The ``.stwin`` case file: save atomically, open with every check before anything is trusted.

Layout of ``NAME.stwin/`` (a folder)::

    manifest.json          schema_version, case id, source reference, volume, items with provenance,
                           measurements, notes, view; a sha256 and size for every data file
    data/<key>-<hash16>.*  one file per item, named by the item's content hash (NIfTI / NPZ / JSON)

Crash safety: data files are written under temporary names, fsync'ed and renamed to their final
names; only then is ``manifest.json`` replaced (write temp, fsync, ``os.replace``, fsync the folder).
A data file is never overwritten with other content (names carry the content hash), and files the
new manifest no longer names are deleted only after it is durable. So at every instant the case on
disk is the complete old or the complete new version. Unchanged items are not rewritten, so saving
after a label edit writes the label map and the manifest only. Leftovers of killed saves are
removed by the next save or open.

Opening validates the manifest against ``stwin.schema.json``, refuses names that leave ``data/``,
links and anything but regular files, checks every size and sha256, then reads the items through
``codecs`` (which never unpickle). A refusal names the problem and changes nothing on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from surgtwin.core.case.codecs import EXTENSIONS, read_image, read_item, write_item
from surgtwin.core.case.model import Case, SourceRef, kind_for_key
from surgtwin.core.case.provenance import Provenance, now_iso, surgtwin_version
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.measure import Measurement
from surgtwin.core.progress import check, report

SCHEMA_VERSION = 2
MANIFEST = "manifest.json"
DATA = "data"
SUFFIX = ".stwin"
TMP_PREFIX = ".tmp-"
#: a manifest larger than this is refused before parsing
MAX_MANIFEST_BYTES = 32 * 1024 * 1024


# -- small file helpers ---------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fsync_path(path: Path) -> None:
    """fsync a file or a folder (a folder's fsync makes renames inside it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _slug(key: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in key.lower())[:60] or "item"


def schema() -> dict:
    from importlib.resources import files

    return json.loads(files("surgtwin.core.case").joinpath("stwin.schema.json").read_text())


def is_case_folder(path) -> bool:
    return (Path(path) / MANIFEST).is_file()


class FolderLock:
    """An advisory lock (``flock``) on a case folder. A save holds it exclusively; an open holds it
    shared while it reads and removes leftovers only when it can take it exclusively at once, so an
    open never deletes the data files of a save in flight (in another process or thread), and two
    saves into one folder never interleave. The OS drops the lock when its holder dies (kill -9).
    Where ``flock`` is missing (Windows) or refused (some network file systems) nothing is locked."""

    def __init__(self, folder: Path) -> None:
        try:
            import fcntl  # noqa: F401 - only to know whether this platform has flock

            self.fd: int | None = os.open(folder, os.O_RDONLY)
        except (ImportError, OSError):
            self.fd = None

    def take(self, *, exclusive: bool, wait: bool = True) -> bool:
        """Take (or convert to) the shared/exclusive lock; False when ``wait`` is off and it is held."""
        if self.fd is None:
            return True
        import fcntl

        flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(self.fd, flags)
        except BlockingIOError:
            return False
        except OSError:  # no locks on this file system
            self.fd, fd = None, self.fd
            os.close(fd)
        return True

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock
            self.fd = None


# -- reading and validating -----------------------------------------------------------------------
def read_manifest(folder) -> dict:
    """The validated manifest of case ``folder`` (no data file read yet)."""
    folder = Path(folder)
    mpath = folder / MANIFEST
    if not folder.is_dir():
        raise SurgtwinError("is not a surgtwin case (not a folder)", path=folder,
                            hint=f"choose a {SUFFIX} folder saved by surgtwin")
    if mpath.is_symlink() or (mpath.exists() and not mpath.is_file()):
        raise SurgtwinError("the case's manifest.json is a link or not a regular file: refused", path=mpath)
    if not mpath.is_file():
        raise SurgtwinError("is not a surgtwin case (no manifest.json)", path=folder,
                            hint=f"choose a {SUFFIX} folder saved by surgtwin")
    size = mpath.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise SurgtwinError(f"manifest.json is implausibly large ({size} bytes): refused", path=mpath)
    try:
        doc = json.loads(mpath.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SurgtwinError(f"manifest.json is not valid JSON ({exc})", path=mpath,
                            hint="the case is damaged: restore it from a backup or its recovery copy") from None
    if not isinstance(doc, dict):
        raise SurgtwinError("manifest.json must hold a JSON object", path=mpath)
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise SurgtwinError("manifest.json has no valid schema_version", path=mpath)
    if version > SCHEMA_VERSION:
        raise SurgtwinError(f"the case was saved by a newer surgtwin (case schema {version}; this version "
                            f"reads up to {SCHEMA_VERSION})", path=mpath, hint="update surgtwin to open it")
    if version < SCHEMA_VERSION:
        raise SurgtwinError(f"case schema {version} has no migration", path=mpath)
    validate_manifest(doc, mpath)
    return doc


def validate_manifest(doc: dict, where: Path) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        field = ".".join(str(p) for p in e.absolute_path) or "(top level)"
        msg = e.message if len(e.message) <= 160 else e.message[:157] + "..."
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise SurgtwinError(f"manifest.json field {field}: {msg}{more}", path=where,
                            hint="the case is damaged or was edited by hand; restore it from a backup")
    for key in doc["items"]:
        try:
            kind = kind_for_key(key)
        except SurgtwinError as exc:
            raise SurgtwinError(f"manifest.json item {key!r}: {exc.reason}", path=where) from None
        if doc["items"][key]["kind"] != kind:
            raise SurgtwinError(f"manifest.json item {key!r} must be a {kind}, not {doc['items'][key]['kind']}",
                                path=where)


def _verified(folder: Path, entry: dict, what: str) -> Path:
    """The path of a manifest file entry after the containment, type, size and sha256 checks."""
    name = entry["name"]
    parts = Path(name).parts
    if Path(name).is_absolute() or ".." in parts or len(parts) != 2 or parts[0] != DATA:
        raise SurgtwinError(f"the manifest's {what} file name {name!r} points outside the case's data folder: "
                            "refused", path=folder / MANIFEST)
    data = folder / DATA
    if data.is_symlink() or not data.is_dir():
        raise SurgtwinError("the case's data folder is a link or missing: refused", path=data)
    p = data / parts[1]
    if p.is_symlink():
        raise SurgtwinError(f"the case's {what} file is a link: refused", path=p)
    if not p.is_file():
        raise SurgtwinError(f"the case's {what} file is missing", path=p,
                            hint="the case is incomplete: restore it from a backup or its recovery copy")
    if p.stat().st_size != entry["size"]:
        raise SurgtwinError(f"the case's {what} file has the wrong size (damaged or truncated)", path=p)
    if sha256_file(p) != entry["sha256"]:
        raise SurgtwinError(f"the case's {what} file is damaged (checksum mismatch)", path=p,
                            hint="restore the case from a backup or its recovery copy")
    return p


def open_case(path, *, progress=None, cancel=None) -> Case:
    """Open a ``.stwin`` case (or a schema-1 session folder, migrated in memory)."""
    folder = Path(path)
    if folder.is_dir() and not (folder / MANIFEST).exists() and (folder / "session.json").is_file():
        from surgtwin.core.case.migrate import case_from_session_v1

        return case_from_session_v1(folder, progress=progress, cancel=cancel)
    return open_case_staged(folder, first=None, progress=progress, cancel=cancel)[0]


@dataclass
class DeferredItems:
    """Items of a case opened by ``open_case_staged`` that are still on disk: ``load`` them (any
    thread), then ``apply_to`` the case (its owner thread). Each file is checked against the
    manifest the case was opened from, so a case changed on disk meanwhile is refused, not mixed."""

    folder: Path
    entries: dict  # key -> the manifest's item entry

    def __bool__(self) -> bool:
        return bool(self.entries)

    def load(self, volume, *, progress=None, cancel=None) -> dict:
        out = {}
        with FolderLock(self.folder) as lock:
            lock.take(exclusive=False)
            for i, (key, it) in enumerate(self.entries.items()):
                check(cancel)
                report(progress, i / max(1, len(self.entries)), f"reading {key}")
                path = _verified(self.folder, it["file"], key)
                out[key] = (read_item(it["kind"], path, it["meta"], volume), it)
        report(progress, 1.0, "case items read")
        return out

    @staticmethod
    def apply_to(case: Case, loaded: dict) -> None:
        was_dirty = case.dirty
        for key, (value, it) in loaded.items():
            if case.item(key) is None:  # not made anew since the case was opened
                case.set_item(key, value, Provenance.from_json(it["provenance"]), item_hash=it["hash"],
                              produced_hash=it.get("produced_hash"))
        if not was_dirty:
            case.mark_saved()


def open_case_staged(path, *, first=("labels",), progress=None, cancel=None) -> tuple[Case, DeferredItems]:
    """Open the image and the items in ``first`` now (None: all), the rest as ``DeferredItems``:
    the app paints the image and labels before the meshes are read."""
    folder = Path(path)
    with FolderLock(folder) as lock:
        lock.take(exclusive=False)  # a save into this folder finishes first
        case, doc, deferred = _read_case(folder, first, progress, cancel)
        if lock.take(exclusive=True, wait=False):  # no other open or save is using the files
            remove_leftovers(folder, doc)
    report(progress, 1.0, "case open")
    return case, DeferredItems(folder, deferred)


def _read_case(folder: Path, first, progress, cancel) -> tuple[Case, dict, dict]:
    doc = read_manifest(folder)
    report(progress, 0.05, "checking the case files")
    now = {k: it for k, it in doc["items"].items() if first is None or k in first}
    files = [("volume", doc["volume"]["file"])] + [(k, it["file"]) for k, it in now.items()]
    paths = {}
    for i, (what, entry) in enumerate(files):
        check(cancel)
        paths[what] = _verified(folder, entry, what)
        report(progress, 0.05 + 0.25 * (i + 1) / len(files), "checking the case files")
    v = doc["volume"]
    report(progress, 0.35, "reading the image")
    vol = read_image(paths["volume"], {"shape": v["shape"]}, affine=v["affine"])
    from dataclasses import replace

    vol = replace(vol, modality=v.get("modality"), frame_of_reference_uid=v.get("frame_of_reference_uid"),
                  metadata=dict(v.get("metadata") or {}))
    src = dict(doc["source"])
    rel = src.pop("path", None)
    # the source is only referenced: resolve the path as text, never touch it while opening
    src_path = os.path.normpath(os.path.join(os.path.abspath(folder), rel)) if rel else None
    case = Case(vol, SourceRef(path=src_path, **src), name=doc.get("name", ""), case_id=doc["case_id"],
                created=doc.get("created"), volume_hash=v["hash"])
    items = sorted(now.items(), key=lambda kv: kv[0] != "labels")
    for i, (key, it) in enumerate(items):
        check(cancel)
        report(progress, 0.5 + 0.45 * i / max(1, len(items)), f"reading {key}")
        value = read_item(it["kind"], paths[key], it["meta"], case.volume)
        prov = Provenance.from_json(it["provenance"])
        if key == "labels":
            case.set_labels(value, prov, item_hash=it["hash"], produced_hash=it.get("produced_hash"))
        else:
            case.set_item(key, value, prov, item_hash=it["hash"], produced_hash=it.get("produced_hash"))
    for m in doc.get("measurements", []):
        try:
            case.add_measurement(Measurement.from_json(m))
        except SurgtwinError as exc:
            raise SurgtwinError(f"manifest.json measurement: {exc.reason}", path=folder / MANIFEST) from None
    case.notes = doc.get("notes", "")
    case.view = dict(doc.get("view") or {})
    case.mark_saved()
    return case, doc, {k: it for k, it in doc["items"].items() if k not in now}


# -- saving ---------------------------------------------------------------------------------------
def _write_data(folder: Path, stem: str, kind: str, value) -> tuple[dict, dict]:
    """Write one item under a temporary name, fsync, rename into place; (file entry, meta)."""
    ext = EXTENSIONS[kind]
    tmp = folder / DATA / f"{TMP_PREFIX}{uuid.uuid4().hex}{ext}"
    try:
        meta = write_item(kind, value, tmp)
        fsync_path(tmp)
        digest = sha256_file(tmp)
        final = folder / DATA / f"{stem}{ext}"
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return {"name": f"{DATA}/{final.name}", "sha256": digest, "size": final.stat().st_size}, meta


def _reusable(folder: Path, old: dict | None, item_hash: str) -> bool:
    if not old or old.get("hash") != item_hash:
        return False
    p = folder / old["file"]["name"]
    return p.is_file() and not p.is_symlink() and p.stat().st_size == old["file"]["size"]


def _json_safe(d: dict) -> dict:
    out = {}
    for k, val in d.items():
        try:
            json.dumps(val, allow_nan=False)
        except (TypeError, ValueError):
            continue
        out[str(k)] = val
    return out


def save_case(case: Case, path, *, progress=None, cancel=None) -> Path:
    """Write ``case`` to the ``.stwin`` folder ``path`` (created or updated in place, atomically)."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise SurgtwinError("exists and is not a case folder", path=folder, hint="choose another name")
    if folder.is_dir() and not (folder / MANIFEST).exists() and any(p.name != DATA for p in folder.iterdir()):
        raise SurgtwinError("is a folder that is not a surgtwin case: refused to write into it", path=folder,
                            hint=f"choose a new name ending in {SUFFIX}")
    new_folder = not folder.exists()
    (folder / DATA).mkdir(parents=True, exist_ok=True)
    if new_folder:
        fsync_path(folder.parent)
    with FolderLock(folder) as lock:
        lock.take(exclusive=True)
        return _save_locked(case, folder, progress, cancel)


def _save_locked(case: Case, folder: Path, progress, cancel) -> Path:
    old_doc = None
    if (folder / MANIFEST).exists():
        try:
            old_doc = read_manifest(folder)
        except SurgtwinError as exc:  # a newer version's case, or a damaged one: never overwrite it
            raise SurgtwinError(f"a case is already there that this version cannot read ({exc.reason}): "
                                "refused to save over it", path=folder,
                                hint=f"save under another name ending in {SUFFIX}") from None
    old_items = (old_doc or {}).get("items", {})
    report(progress, 0.02, "writing the image")
    if old_doc and _reusable(folder, old_doc["volume"], case.volume_hash):
        vol_file = old_doc["volume"]["file"]
    else:
        vol_file, _ = _write_data(folder, f"volume-{case.volume_hash[:16]}", "volume", case.volume)
    items = {}
    keys = case.keys()
    for i, key in enumerate(keys):
        check(cancel)
        it = case.item(key)
        h = case.current_hash(key)
        report(progress, 0.1 + 0.8 * i / max(1, len(keys)), f"writing {key}")
        if _reusable(folder, old_items.get(key), h) and old_items[key]["kind"] == it.kind:
            entry, meta = old_items[key]["file"], old_items[key]["meta"]
            if it.kind == "labelmap":
                meta = {**meta, "label_table": it.value.labels.to_json()}
        else:
            entry, meta = _write_data(folder, f"{_slug(key)}-{h[:16]}", it.kind, it.value)
        items[key] = {"kind": it.kind, "file": entry, "hash": h, "produced_hash": it.produced_hash,
                      "provenance": it.provenance.to_json(), "meta": meta}
    check(cancel)
    src = case.source
    rel = None
    if src.path:
        try:
            rel = Path(os.path.relpath(os.path.abspath(src.path), os.path.abspath(folder))).as_posix()
        except ValueError:  # another drive (Windows): keep only the UIDs and hash
            rel = None
    v = case.volume
    doc = {
        "format": "surgtwin-case", "schema_version": SCHEMA_VERSION, "case_id": case.case_id,
        "name": case.name, "created": case.created, "saved": now_iso(), "surgtwin_version": surgtwin_version(),
        "source": {"path": rel, "kind": src.kind, "series_uid": src.series_uid, "study_uid": src.study_uid,
                   "frame_of_reference_uid": src.frame_of_reference_uid, "modality": src.modality,
                   "content_hash": src.content_hash or case.volume_hash},
        "volume": {"file": vol_file, "hash": case.volume_hash, "shape": list(v.shape),
                   "affine": [[float(x) for x in row] for row in v.affine], "modality": v.modality,
                   "frame_of_reference_uid": v.frame_of_reference_uid, "metadata": _json_safe(v.metadata)},
        "items": items,
        "measurements": [m.to_json() for m in case.measurements],
        "notes": case.notes,
        "view": _json_safe(case.view),
    }
    try:
        validate_manifest(doc, folder / MANIFEST)  # never write a manifest this version could not open
    except SurgtwinError as exc:
        raise SurgtwinError(f"cannot save: the case holds a value the case file cannot store ({exc.reason})",
                            path=folder, hint="this is a surgtwin defect: please report it") from None
    fsync_path(folder / DATA)
    report(progress, 0.95, "replacing the manifest")
    tmp = folder / f"{TMP_PREFIX}{uuid.uuid4().hex}-{MANIFEST}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, folder / MANIFEST)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_path(folder)
    remove_leftovers(folder, doc)
    case.mark_saved()
    report(progress, 1.0, "saved")
    return folder


def remove_leftovers(folder: Path, doc: dict) -> list[str]:
    """Delete temporary files of killed saves and data files ``doc`` no longer names."""
    keep = {doc["volume"]["file"]["name"]} | {it["file"]["name"] for it in doc["items"].values()}
    removed = []
    for p in list(folder.iterdir()) + (list((folder / DATA).iterdir()) if (folder / DATA).is_dir() else []):
        rel = p.relative_to(folder).as_posix()
        ours = p.name.startswith(TMP_PREFIX) or (p.parent.name == DATA and rel not in keep)
        if ours and (p.is_file() or p.is_symlink()):
            try:
                p.unlink()
                removed.append(rel)
            except OSError:
                pass
    return removed
