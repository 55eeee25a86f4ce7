"""Migration of older case formats into a ``Case``.

Schema 1 is the session folder the app wrote before the case model (``NAME.surgtwin/session.json``
with ``labels.nii.gz``, ``labels.json`` and ``meshes.npz`` beside it). It referenced the image by an
absolute path; the migration reads the image there or, when it is gone, the file or folder of the
same name beside the session folder (moved together), and checks the grid against the one recorded.
The session's files are read only under their fixed names and never changed; saving the migrated
case writes a new ``.stwin`` folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.progress import scaled

V1_FILES = {"labels": "labels.nii.gz", "label_table": "labels.json", "meshes": "meshes.npz"}


def _v1_doc(folder: Path) -> dict:
    import jsonschema

    from surgtwin.core.case.store import sha256_file

    path = folder / "session.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SurgtwinError(f"session.json is not valid JSON ({exc})", path=path) from None
    num = {"type": "number"}
    v1 = {
        "type": "object", "required": ["schema_version", "volume"],
        "properties": {
            "schema_version": {"const": 1},
            "volume": {"type": "object", "required": ["path", "shape", "affine"], "properties": {
                "path": {"type": "string", "minLength": 1}, "series_uid": {"type": ["string", "null"]},
                "shape": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 3, "maxItems": 3},
                "affine": {"type": "array", "minItems": 4, "maxItems": 4,
                           "items": {"type": "array", "items": num, "minItems": 4, "maxItems": 4}}}},
            "view": {"type": "object", "properties": {
                "crosshair_lps": {"type": "array", "items": num, "minItems": 3, "maxItems": 3},
                "window": {"type": "array", "items": num, "minItems": 2, "maxItems": 2}}},
            "structures": {"type": "array", "items": {"type": "object", "required": ["value"], "properties": {
                "value": {"type": "integer"}, "visible": {"type": "boolean"},
                "color": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 255},
                          "minItems": 3, "maxItems": 3},
                "opacity_2d": num, "opacity_3d": num}}},
            "measurements": {"type": "array", "items": {"type": "object", "required": ["kind", "points_lps"]}},
            "files": {"type": "object", "additionalProperties": {
                "type": "object", "required": ["name", "sha256"],
                "properties": {"name": {"type": "string"}, "sha256": {"type": "string"}}}},
        },
    }
    if not isinstance(doc, dict) or doc.get("schema_version") != 1:
        raise SurgtwinError("session.json is not a schema-1 surgtwin session", path=path)
    err = next(iter(jsonschema.Draft202012Validator(v1).iter_errors(doc)), None)
    if err is not None:
        field = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise SurgtwinError(f"session.json field {field}: {err.message[:160]}", path=path)
    for key, entry in doc.get("files", {}).items():
        if V1_FILES.get(key) != entry["name"]:
            raise SurgtwinError(f"session.json names {entry['name']!r} for {key!r}; a schema-1 session only "
                                f"has {sorted(V1_FILES.values())}: refused", path=path)
        f = folder / entry["name"]
        if f.is_symlink() or not f.is_file():
            raise SurgtwinError(f"the session's {key} file is missing or a link", path=f)
        if sha256_file(f) != entry["sha256"]:
            raise SurgtwinError(f"the session's {key} file is damaged (checksum mismatch)", path=f)
    return doc


def _v1_image_path(folder: Path, recorded: str) -> Path:
    p = Path(recorded)
    if p.exists():
        return p
    beside = folder.parent / p.name
    if p.name and beside.exists():
        return beside
    raise SurgtwinError("the image this session refers to is not there (nor beside the session folder)",
                        path=recorded, hint="put the image back at that path or beside the session, then open again")


def case_from_session_v1(folder, *, progress=None, cancel=None):
    """A ``Case`` from a schema-1 session folder (nothing on disk changes)."""
    from surgtwin.core.case.model import Case, SourceRef
    from surgtwin.core.case.provenance import Provenance
    from surgtwin.core.io import is_itk_file, load_volume
    from surgtwin.core.labels_io import read_labelmap
    from surgtwin.core.measure import Measurement

    folder = Path(folder)
    doc = _v1_doc(folder)
    ref = doc["volume"]
    image = _v1_image_path(folder, ref["path"])
    volume = load_volume(image, series_uid=ref.get("series_uid"), progress=scaled(progress, 0, 0.7), cancel=cancel)
    if list(volume.shape) != list(ref["shape"]) or not np.allclose(volume.affine, ref["affine"], atol=1e-3):
        raise SurgtwinError(f"the image at this path is not the one the session was saved on (grid "
                            f"{list(volume.shape)} vs {ref['shape']})", path=image)
    kind = "image" if image.is_file() and is_itk_file(image) else "dicom"
    source = SourceRef(path=str(image.resolve()), kind=kind, series_uid=ref.get("series_uid") or
                       volume.metadata.get("series_uid"), study_uid=volume.metadata.get("study_uid"),
                       frame_of_reference_uid=volume.frame_of_reference_uid, modality=volume.modality)
    case = Case(volume, source, name=folder.name.removesuffix(".surgtwin"))
    files = doc.get("files", {})
    migrated = {"migrated_from": "session schema 1"}
    if "labels" in files:
        table = folder / V1_FILES["label_table"] if "label_table" in files else None
        labels = read_labelmap(folder / V1_FILES["labels"], reference=volume, table_path=table)
        case.set_labels(labels, Provenance("import", dict(migrated)))
    if "meshes" in files:
        from surgtwin.core.case.codecs import read_surfaces

        meshes = read_surfaces(folder / V1_FILES["meshes"], {})
        if case.labels is not None:
            for m in meshes.values():
                if m.label in case.labels.labels:
                    m.color = tuple(case.labels.labels[m.label].color)
        inputs = {"labels": case.current_hash("labels")} if case.labels is not None else {}
        case.set_item("meshes", meshes, Provenance("surfaces (display resolution)", dict(migrated), inputs))
    for m in doc.get("measurements", []):
        try:
            case.add_measurement(Measurement.from_json(m))
        except (SurgtwinError, KeyError, TypeError) as exc:
            raise SurgtwinError(f"session.json has a malformed measurement ({exc})", path=folder) from None
    view = dict(doc.get("view") or {})
    view["structures"] = [s for s in doc.get("structures", []) if isinstance(s, dict)]
    case.set_view(view)
    case.dirty = True  # not yet saved in the current format
    return case
