"""The ``Case``: one patient's twin as an evented model (no Qt, no VTK).

A case holds the source reference, the image volume, and **items** derived from it, each with its
``Provenance``: the label map (``"labels"``), the structure surfaces (``"meshes"``), tetrahedral
meshes (``"tet:<structures>"``) and the typed slots later capabilities fill (``SLOTS``: implants,
trajectories, rehearsals, simulation results). It also holds measurements, notes and the app's
saved view settings (opaque to the case).

Staleness: an item records the content hash of each input it was made from; when an input's current
hash differs (a label edit after meshing, a rebuilt mesh under an FE result) the item is stale, and
``require_current`` refuses it until it is rebuilt or the caller explicitly allows stale inputs.

Every change emits a ``Signal`` (``surgtwin.core.events``); the app's views subscribe. Changes
happen on one thread (the GUI thread in the app; jobs compute off it and hand results back).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np

from surgtwin.core.case.provenance import Provenance, content_hash, now_iso
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.events import Signal
from surgtwin.core.measure import Measurement
from surgtwin.core.types import LabelMap, LabelTable, Volume

#: item kinds the case file knows how to store (``surgtwin.core.case.codecs``)
ITEM_KINDS = ("labelmap", "surfaces", "tetmesh", "records", "arrays")


@dataclass(frozen=True)
class SlotSpec:
    """A typed slot a planning capability fills: items whose key is ``name`` or ``name:<sub>``."""

    name: str
    kind: str
    description: str


#: the slots of later capabilities; a capability may register more with ``register_slot``
SLOTS: dict[str, SlotSpec] = {}


def register_slot(name: str, kind: str, description: str) -> SlotSpec:
    if kind not in ITEM_KINDS:
        raise SurgtwinError(f"slot {name!r}: unknown item kind {kind!r}", hint=f"use one of {ITEM_KINDS}")
    spec = SLOTS.setdefault(name, SlotSpec(name, kind, description))
    if spec.kind != kind:
        raise SurgtwinError(f"slot {name!r} is already registered with kind {spec.kind!r}")
    return spec


for _name, _kind, _text in (
    ("implants", "records", "implants with their 6-DOF poses (LPS mm) and placement checks"),
    ("trajectories", "records", "planned instrument trajectories (entry/target in LPS mm) and metrics"),
    ("rehearsals", "records", "recorded rehearsals of a trajectory and their scores"),
    ("trajectory_risk", "arrays", "a suggested trajectory's risk map: score and risk per candidate entry (LPS mm)"),
    ("fem", "arrays", "finite-element inputs and results (per-node/element fields)"),
    ("centerlines", "arrays", "vessel centerlines (LPS mm) with radius, as a graph of segments"),
    ("flow", "arrays", "reduced-order blood-flow results (per-segment pressure and flow)"),
    ("tavr", "records", "TAVR annulus measurements and device sizing"),
    ("quality", "records", "segmentation quality gate: field of view, per-structure status, reasons, confidence"),
):
    register_slot(_name, _kind, _text)

#: fixed item keys and their kinds (``tet:<structures>`` keys are tetmesh items)
FIXED_KINDS = {"labels": "labelmap", "meshes": "surfaces"}


def kind_for_key(key: str) -> str:
    """The item kind a key must have (``labels``, ``meshes``, ``tet:...``, a slot)."""
    if key in FIXED_KINDS:
        return FIXED_KINDS[key]
    head = key.split(":", 1)[0]
    if head == "tet" and ":" in key:
        return "tetmesh"
    if head in SLOTS:
        return SLOTS[head].kind
    raise SurgtwinError(f"unknown case item {key!r}",
                        hint="use labels, meshes, tet:<structures> or a slot: " + ", ".join(sorted(SLOTS)))


@dataclass
class SourceRef:
    """Where the case's image came from. ``path`` is absolute in memory and stored relative to the
    case; ``content_hash`` is the hash of the volume as loaded. Opening a case never reads it."""

    path: str | None = None
    kind: str | None = None  # "dicom" (folder or file) or "image" (NIfTI/NRRD/MHA)
    series_uid: str | None = None
    study_uid: str | None = None
    frame_of_reference_uid: str | None = None
    modality: str | None = None
    content_hash: str | None = None


@dataclass
class Item:
    """One derived item: its value, provenance and content hash (``produced_hash`` when made)."""

    key: str
    kind: str
    value: object
    provenance: Provenance
    hash: str
    produced_hash: str = ""

    def __post_init__(self) -> None:
        self.produced_hash = self.produced_hash or self.hash


class LabelsEditedError(SurgtwinError):
    """The label map was edited (or replaced) after a job that replaces it had started."""


def labels_content_hash(labels: LabelMap) -> str:
    """Hash of a label map's voxels and (value, name) table; the grid is the case volume's."""
    return content_hash(labels.array, [(lab.value, lab.name) for lab in labels.labels])


def item_content_hash(kind: str, value) -> str:
    """Content hash of an item value of ``kind`` (labels: see ``labels_content_hash``)."""
    if kind == "labelmap":
        return labels_content_hash(value)
    if kind == "surfaces":
        return content_hash([(name, int(m.label), m.vertices, m.faces) for name, m in value.items()])
    if kind == "tetmesh":
        return content_hash(value.nodes, value.elements, value.regions,
                            {int(k): v for k, v in value.region_names.items()}, float(value.size_mm),
                            value.mean_hu if value.mean_hu is not None else "none")
    if kind == "records":
        return content_hash(value)
    if kind == "arrays":
        return content_hash({k: np.asarray(v) for k, v in value.items()})
    raise SurgtwinError(f"unknown item kind {kind!r}")


class Case:
    """A patient's twin. Create with ``Case(volume, source)``; fill with ``set_labels``/``set_item``
    (usually through ``surgtwin.services.pipeline``), save with ``surgtwin.core.case.save_case``."""

    def __init__(self, volume: Volume, source: SourceRef | None = None, *, name: str = "",
                 case_id: str | None = None, created: str | None = None, volume_hash: str | None = None) -> None:
        if not isinstance(volume, Volume) or isinstance(volume, LabelMap):
            raise SurgtwinError("a case needs an image volume")
        self.volume = volume
        self.source = source or SourceRef()
        self.name = name
        self.case_id = case_id or uuid.uuid4().hex
        self.created = created or now_iso()
        self.volume_hash = volume_hash or content_hash(volume.array, np.round(volume.affine, 6))
        if self.source.content_hash is None:
            self.source.content_hash = self.volume_hash
        self.measurements: list[Measurement] = []
        self.notes = ""
        self.view: dict = {}
        self.labels_revision = 0
        self._items: dict[str, Item] = {}
        self._labels_hash_rev = -1
        self._next_measurement = 1
        self.labels_changed = Signal("labels_changed")  # arg: bbox (tuple of slices) or None = all
        self.labels_replaced = Signal("labels_replaced")  # a new label map (undo history ends)
        self.items_changed = Signal("items_changed")  # arg: item key
        self.measurements_changed = Signal("measurements_changed")
        self.notes_changed = Signal("notes_changed")
        self.modified = Signal("modified")  # any change (dirty flag, autosave)
        self.dirty = False
        self.change_count = 0  # grows with every change (a save knows whether the case moved on)
        for sig in (self.labels_changed, self.labels_replaced, self.items_changed, self.measurements_changed,
                    self.notes_changed):
            sig.connect(self._mark_dirty)

    def _mark_dirty(self, *_) -> None:
        self.dirty = True
        self.change_count += 1
        self.modified.emit()

    def mark_saved(self) -> None:
        self.dirty = False

    # -- items ----------------------------------------------------------------------------------
    def item(self, key: str) -> Item | None:
        return self._items.get(key)

    def keys(self) -> list[str]:
        return list(self._items)

    def set_item(self, key: str, value, provenance: Provenance, *, item_hash: str | None = None,
                 produced_hash: str | None = None) -> Item:
        """Put a derived item into the case (replacing one with the same key)."""
        kind = kind_for_key(key)
        if key == "labels":
            raise SurgtwinError("use Case.set_labels for the label map")
        it = Item(key, kind, value, provenance, item_hash or item_content_hash(kind, value), produced_hash or "")
        self._items[key] = it
        self.items_changed.emit(key)
        return it

    def remove_item(self, key: str) -> None:
        if key == "labels":
            self.set_labels(None)
        elif self._items.pop(key, None) is not None:
            self.items_changed.emit(key)

    @property
    def labels(self) -> LabelMap | None:
        it = self._items.get("labels")
        return None if it is None else it.value  # type: ignore[return-value]

    @property
    def meshes(self) -> dict:
        it = self._items.get("meshes")
        return {} if it is None else it.value  # type: ignore[return-value]

    @property
    def tet_meshes(self) -> dict:
        """``{"tet:<structures>": TetMesh}``."""
        return {k: it.value for k, it in self._items.items() if it.kind == "tetmesh"}

    # -- labels ---------------------------------------------------------------------------------
    def check_grid(self, labels: Volume, what: str = "label map") -> None:
        """Refuse a ``what`` whose grid (shape, spacing, orientation, origin) is not the image's."""
        v = self.volume
        if labels.shape != v.shape:
            raise SurgtwinError(f"the {what}'s shape {labels.shape} does not match the image {v.shape}",
                                hint="resample it onto the image grid (open it with Open labels, which resamples)")
        if not np.allclose(labels.affine, v.affine, atol=1e-3 * float(np.min(v.spacing_mm)) + 1e-6):
            diff = float(np.max(np.abs(labels.affine - v.affine)))
            raise SurgtwinError(f"the {what} lies on another grid than the image (geometry differs by up to "
                                f"{diff:.3g} mm in spacing/orientation/origin)",
                                hint="resample it onto the image grid (open it with Open labels, which resamples)")

    def set_labels(self, labels: LabelMap | None, provenance: Provenance | None = None, *,
                   expected_revision: int | None = None, item_hash: str | None = None,
                   produced_hash: str | None = None) -> None:
        """Replace the label map (None removes it). ``expected_revision``: the ``labels_revision`` a
        job started from; if the labels were edited since, ``LabelsEditedError`` is raised and
        nothing changes, so the caller can ask the user instead of overwriting their edits."""
        if expected_revision is not None and expected_revision != self.labels_revision:
            raise LabelsEditedError("the labels were edited while this job ran",
                                    hint="keep your edits, or run it again to replace them")
        if labels is None:
            self._items.pop("labels", None)
        else:
            if not isinstance(labels, LabelMap):
                raise SurgtwinError("set_labels needs a LabelMap")
            self.check_grid(labels)
            arr = labels.array
            if not arr.flags.writeable or arr.dtype.itemsize > 2 or arr.dtype.kind != "u":
                top = int(arr.max(initial=0))
                if int(arr.min(initial=0)) < 0 or top > 65535:
                    raise SurgtwinError(f"label values must lie in 0..65535 (found {int(arr.min())}..{top})")
                arr = np.array(arr, dtype=np.uint8 if top < 256 else np.uint16)
            labels = LabelMap(arr, self.volume.affine.copy(), self.volume.frame_of_reference_uid, None,
                              dict(labels.metadata), labels=labels.labels)
            prov = provenance or Provenance("import")
            prov.inputs.setdefault("volume", self.volume_hash)
            h = item_hash or labels_content_hash(labels)
            self._items["labels"] = Item("labels", "labelmap", labels, prov, h, produced_hash or "")
        self.labels_revision += 1
        self._labels_hash_rev = self.labels_revision
        self.labels_replaced.emit()
        self.labels_changed.emit(None)
        self.items_changed.emit("labels")

    def ensure_labels(self) -> LabelMap:
        """The label map, creating an empty one (to paint by hand) when there is none."""
        if self.labels is None:
            v = self.volume
            self.set_labels(LabelMap(np.zeros(v.shape, np.uint8), v.affine.copy(), v.frame_of_reference_uid,
                                     None, {}, labels=LabelTable()), Provenance("manual"))
        return self.labels  # type: ignore[return-value]

    def notify_labels_edited(self, bbox=None) -> None:
        """Call after changing ``labels.array`` in place (label edits, undo/redo)."""
        self.labels_revision += 1
        self.labels_changed.emit(bbox)

    def replace_label_table(self, table: LabelTable) -> None:
        """New names/colours for the current label map (voxels unchanged)."""
        lab = self.labels
        if lab is None:
            raise SurgtwinError("there is no label map to rename")
        self._items["labels"].value = LabelMap(lab.array, lab.affine, lab.frame_of_reference_uid, None,
                                               dict(lab.metadata), labels=table)
        self.notify_labels_edited(None)
        self.items_changed.emit("labels")

    # -- hashes and staleness -------------------------------------------------------------------
    def current_hash(self, key: str) -> str | None:
        """The content hash of input ``key`` now (None when the case has no such item)."""
        if key == "volume":
            return self.volume_hash
        it = self._items.get(key)
        if it is None:
            return None
        if key == "labels" and self._labels_hash_rev != self.labels_revision:
            it.hash = labels_content_hash(it.value)  # type: ignore[arg-type]
            self._labels_hash_rev = self.labels_revision
        return it.hash

    def labels_edited_by_hand(self) -> bool:
        """True when the label map differs from what its producer made (edits since)."""
        it = self._items.get("labels")
        return it is not None and self.current_hash("labels") != it.produced_hash

    def stale_reasons(self, key: str, _seen: frozenset = frozenset()) -> list[str]:
        """Why item ``key`` is stale (empty when it is current)."""
        it = self._items.get(key)
        if it is None or key in _seen:
            return []
        reasons = []
        for dep, recorded in it.provenance.inputs.items():
            now = self.current_hash(dep)
            if now is None:
                reasons.append(f"its input {dep!r} is no longer in the case")
            elif now != recorded:
                reasons.append(f"{dep} changed since it was made" if dep != "labels"
                               else "the labels were edited or replaced since it was made")
            elif dep != "volume" and self.stale_reasons(dep, _seen | {key}):
                reasons.append(f"its input {dep!r} is itself stale")
        return reasons

    def is_stale(self, key: str) -> bool:
        return bool(self.stale_reasons(key))

    def stale_items(self) -> dict[str, list[str]]:
        return {k: r for k in self._items if (r := self.stale_reasons(k))}

    def require_current(self, keys, *, allow_stale: bool = False, purpose: str = "this step") -> None:
        """Refuse to go on when an input in ``keys`` is missing or stale (unless ``allow_stale``)."""
        for key in keys:
            if key != "volume" and key not in self._items:
                raise SurgtwinError(f"{purpose} needs {key!r}, which the case does not have yet",
                                    hint=f"run the step that makes {key} first")
            reasons = self.stale_reasons(key)
            if reasons and not allow_stale:
                raise SurgtwinError(f"{purpose} would use stale {key}: {'; '.join(reasons)}",
                                    hint=f"rebuild {key} first, or confirm that stale inputs are acceptable "
                                         "(--allow-stale on the command line)")

    # -- measurements and notes -----------------------------------------------------------------
    def add_measurement(self, m: Measurement) -> Measurement:
        m.id = self._next_measurement
        self._next_measurement += 1
        self.measurements.append(m)
        self.measurements_changed.emit()
        return m

    def remove_measurement(self, mid: int) -> None:
        self.measurements = [m for m in self.measurements if m.id != mid]
        self.measurements_changed.emit()

    def clear_measurements(self) -> None:
        self.measurements = []
        self.measurements_changed.emit()

    def set_notes(self, text: str) -> None:
        if text != self.notes:
            self.notes = str(text)
            self.notes_changed.emit()

    def set_view(self, view: dict) -> None:
        """The app's view settings saved with the case (crosshair, window, layout, display)."""
        self.view = dict(view)

    # -- summary --------------------------------------------------------------------------------
    def summary(self) -> dict:
        """A patient-free description (``surgtwin case show``)."""
        v = self.volume
        out = {
            "name": self.name, "case_id": self.case_id, "created": self.created,
            "source": {"kind": self.source.kind, "path": self.source.path, "modality": self.source.modality,
                       "series_uid": self.source.series_uid, "study_uid": self.source.study_uid,
                       "frame_of_reference_uid": self.source.frame_of_reference_uid},
            "volume": {"shape_slices_rows_cols": list(v.shape),
                       "spacing_mm_slice_row_col": [round(float(s), 4) for s in v.spacing_mm]},
            "items": {},
            "measurements": [{**m.to_json(), "value": round(m.value, 3)} for m in self.measurements],
            "notes": self.notes,
        }
        stale = self.stale_items()
        for key, it in self._items.items():
            entry = {"kind": it.kind, "made_by": it.provenance.describe(), "stale": stale.get(key, [])}
            if it.kind == "labelmap":
                lab = it.value
                counts = np.bincount(lab.array.ravel(), minlength=max([*(x.value for x in lab.labels), 0]) + 1)
                entry["structures"] = {x.name: round(float(counts[x.value]) * lab.voxel_volume_ml, 2)
                                       for x in lab.labels}
                entry["edited_by_hand"] = self.labels_edited_by_hand()
            elif it.kind == "surfaces":
                entry["structures"] = {n: int(len(m.faces)) for n, m in it.value.items()}
            elif it.kind == "tetmesh":
                entry["nodes"], entry["elements"] = int(len(it.value.nodes)), int(len(it.value.elements))
            out["items"][key] = entry
        return out
