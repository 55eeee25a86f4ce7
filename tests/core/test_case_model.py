"""The Case model: provenance, content-hash staleness (direct and transitive), require_current,
the label map's grid and revision guards. Everything in memory on a 16x24x24 phantom (no VTK)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from surgtwin.core.case import Case, LabelsEditedError, Provenance, SourceRef, content_hash
from surgtwin.core.case.model import kind_for_key, labels_content_hash, register_slot
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.measure import Measurement
from surgtwin.core.mesh import StructureMesh
from surgtwin.core.mesh.tetra import TetMesh
from surgtwin.core.types import LabelMap

SHAPE, SPACING = (16, 24, 24), (6, 8, 8)


# -- helpers shared by the case tests (tests/core/test_case_*.py, tests/services, tests/cli) --------
def small_case(shape=SHAPE, spacing_mm=SPACING, **kw) -> Case:
    """A case of the synthetic phantom with its labels imported (8 structures)."""
    from surgtwin.services.demo import phantom

    vol, lab = phantom(shape=shape, spacing_mm=spacing_mm)
    case = Case(vol, SourceRef(kind="image"), name="phantom", **kw)
    case.set_labels(lab, Provenance("import", {"file": "labels.nii.gz"}))
    return case


def tetra_surface(name="liver", label=1, offset=0.0) -> StructureMesh:
    """A closed tetrahedron surface (4 vertices, 4 outward faces) in LPS mm."""
    v = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], float) + offset
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    return StructureMesh(name, label, (200, 100, 50), v, f)


def one_tet(region=1, name="liver") -> TetMesh:
    nodes = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    return TetMesh(nodes, np.array([[0, 1, 2, 3]]), np.array([region]), {region: name}, 1.0)


def add_meshes(case: Case) -> None:
    """A hand-made 'meshes' item made from the current labels."""
    case.set_item("meshes", {"liver": tetra_surface()},
                  Provenance("surfaces", {"smoothing_iterations": 0}, {"labels": case.current_hash("labels")}))


def voxel_with_other_value(labels: LabelMap, value: int) -> tuple[int, int, int]:
    return tuple(int(i) for i in np.argwhere(labels.array != value)[0])


# -- provenance ---------------------------------------------------------------------------------------
def test_provenance_records_inputs_and_describes_itself():
    case = small_case()
    lab = case.item("labels")
    assert lab.provenance.method == "import"
    assert lab.provenance.inputs == {"volume": case.volume_hash}
    assert lab.hash == lab.produced_hash == labels_content_hash(case.labels)
    add_meshes(case)
    m = case.item("meshes")
    assert m.kind == "surfaces"
    assert m.provenance.inputs == {"labels": lab.hash}
    text = m.provenance.describe()
    assert text.startswith("surfaces, smoothing_iterations=0; surgtwin ")
    again = Provenance.from_json(m.provenance.to_json())
    assert again.to_json() == m.provenance.to_json()


def test_content_hash_is_by_content_dtype_and_shape():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert content_hash(a) == content_hash(a.copy())
    assert content_hash(a) == content_hash(np.asfortranarray(a))  # layout is not content
    assert content_hash(a) != content_hash(a.astype(np.uint16))
    assert content_hash(a) != content_hash(a.reshape(4, 3))
    assert content_hash({"b": 1, "a": [1, 2]}) == content_hash({"a": [1, 2], "b": 1})
    assert content_hash([1, 2]) != content_hash([2, 1])


# -- staleness ------------------------------------------------------------------------------------------
def test_label_edit_in_place_makes_meshes_stale_and_reverting_makes_them_current():
    case = small_case()
    add_meshes(case)
    assert case.stale_items() == {}
    assert not case.labels_edited_by_hand()
    lab = case.labels
    idx = voxel_with_other_value(lab, 5)
    old = int(lab.array[idx])
    rev = case.labels_revision
    lab.array[idx] = 5
    case.notify_labels_edited((slice(idx[0], idx[0] + 1),) * 3)
    assert case.labels_revision == rev + 1
    assert case.stale_reasons("meshes") == ["the labels were edited or replaced since it was made"]
    assert case.stale_items() == {"meshes": ["the labels were edited or replaced since it was made"]}
    assert case.labels_edited_by_hand()
    assert case.summary()["items"]["meshes"]["stale"]
    lab.array[idx] = old
    case.notify_labels_edited()
    assert not case.is_stale("meshes")
    assert not case.labels_edited_by_hand()


def test_edit_without_notify_is_not_seen_but_notify_is():
    """The hash is cached per revision: the case only learns of an in-place edit by the notify."""
    case = small_case()
    add_meshes(case)
    idx = voxel_with_other_value(case.labels, 3)
    case.labels.array[idx] = 3
    assert not case.is_stale("meshes")
    case.notify_labels_edited()
    assert case.is_stale("meshes")


def test_set_labels_replacing_the_map_makes_meshes_stale_unless_content_is_equal():
    case = small_case()
    add_meshes(case)
    same = replace(case.labels, array=case.labels.array.copy())
    case.set_labels(same, Provenance("import"))
    assert not case.is_stale("meshes")  # equal content, equal hash
    arr = case.labels.array.copy()
    arr[voxel_with_other_value(case.labels, 2)] = 2
    case.set_labels(replace(case.labels, array=arr), Provenance("segment:classical"))
    assert case.stale_reasons("meshes") == ["the labels were edited or replaced since it was made"]
    assert case.item("labels").provenance.method == "segment:classical"
    assert not case.labels_edited_by_hand()  # a producer's output, not a hand edit
    case.set_labels(None)
    assert case.labels is None
    assert case.stale_reasons("meshes") == ["its input 'labels' is no longer in the case"]


def test_staleness_is_transitive_through_a_tet_mesh():
    case = small_case()
    add_meshes(case)
    tet_prov = Provenance("tetrahedra", {"structures": ["liver"], "size_mm": 1.0},
                          {"labels": case.current_hash("labels"), "volume": case.volume_hash})
    case.set_item("tet:liver", one_tet(), tet_prov)
    case.set_item("fem:liver", {"u": np.zeros((4, 3))},
                  Provenance("fem", {}, {"tet:liver": case.current_hash("tet:liver")}))
    assert case.stale_items() == {}
    assert case.tet_meshes.keys() == {"tet:liver"}
    lab = case.labels
    idx = voxel_with_other_value(lab, 1)
    lab.array[idx] = 1
    case.notify_labels_edited()
    stale = case.stale_items()
    assert set(stale) == {"meshes", "tet:liver", "fem:liver"}
    assert stale["tet:liver"] == ["the labels were edited or replaced since it was made"]
    assert stale["fem:liver"] == ["its input 'tet:liver' is itself stale"]
    assert not case.is_stale("labels")  # its input, the volume, did not change
    # a rebuilt tet mesh makes the FE result stale by its own hash, no longer transitively
    case.set_item("tet:liver", one_tet(region=1, name="liver2"),
                  replace(tet_prov, inputs={"labels": case.current_hash("labels"), "volume": case.volume_hash}))
    assert not case.is_stale("tet:liver")
    assert case.stale_reasons("fem:liver") == ["tet:liver changed since it was made"]
    case.remove_item("tet:liver")
    assert case.stale_reasons("fem:liver") == ["its input 'tet:liver' is no longer in the case"]


def test_require_current_refuses_stale_and_missing_inputs_naming_them():
    case = small_case()
    with pytest.raises(SurgtwinError, match=r"exporting needs 'meshes', which the case does not have yet"):
        case.require_current(["meshes"], purpose="exporting")
    add_meshes(case)
    case.require_current(["labels", "meshes", "volume"], purpose="exporting")
    lab = case.labels
    lab.array[voxel_with_other_value(lab, 4)] = 4
    case.notify_labels_edited()
    with pytest.raises(SurgtwinError) as e:
        case.require_current(["labels", "meshes"], purpose="exporting")
    assert "exporting would use stale meshes: the labels were edited or replaced" in str(e.value)
    assert "--allow-stale" in e.value.hint
    case.require_current(["meshes"], allow_stale=True, purpose="exporting")
    with pytest.raises(SurgtwinError, match="does not have yet"):  # missing is refused even when allowing stale
        case.require_current(["tet:liver"], allow_stale=True)


# -- label map guards --------------------------------------------------------------------------------
@pytest.mark.parametrize("change, words", [
    ("origin", "lies on another grid than the image"),
    ("spacing", "lies on another grid than the image"),
    ("shape", "shape (16, 24, 23) does not match the image (16, 24, 24)"),
])
def test_set_labels_refuses_another_grid_and_keeps_the_labels(change, words):
    case = small_case()
    before, rev, h = case.labels, case.labels_revision, case.current_hash("labels")
    aff = before.affine.copy()
    arr = before.array
    if change == "origin":
        aff[:3, 3] += (0.0, 0.0, 4.0)
    elif change == "spacing":
        aff[:3, :3] *= 1.01
    else:
        arr = arr[:, :, :-1]
    other = LabelMap(arr.copy(), aff, labels=before.labels)
    with pytest.raises(SurgtwinError, match=words.replace("(", r"\(").replace(")", r"\)")):
        case.set_labels(other)
    assert case.labels is before and case.labels_revision == rev and case.current_hash("labels") == h


def test_set_labels_after_an_edit_raises_labels_edited_and_changes_nothing():
    case = small_case()
    started = case.labels_revision  # a segmentation job starts from here
    lab = case.labels
    idx = voxel_with_other_value(lab, 6)
    lab.array[idx] = 6
    case.notify_labels_edited()
    painted = lab.array.copy()
    result = LabelMap(np.zeros(SHAPE, np.uint8), lab.affine.copy(), labels=lab.labels)
    with pytest.raises(LabelsEditedError, match="the labels were edited while this job ran"):
        case.set_labels(result, Provenance("segment:model"), expected_revision=started)
    assert case.labels is lab
    np.testing.assert_array_equal(case.labels.array, painted)
    assert case.item("labels").provenance.method == "import"
    case.set_labels(result, Provenance("segment:model"), expected_revision=case.labels_revision)
    assert int(case.labels.array.max()) == 0


def test_set_labels_converts_wide_integers_and_refuses_out_of_range():
    case = small_case()
    lab = case.labels
    wide = LabelMap(lab.array.astype(np.int32), lab.affine.copy(), labels=lab.labels)
    case.set_labels(wide)
    assert case.labels.array.dtype == np.uint8
    np.testing.assert_array_equal(case.labels.array, lab.array)
    neg = wide.array.copy()
    neg[0, 0, 0] = -1
    with pytest.raises(SurgtwinError, match=r"label values must lie in 0..65535 \(found -1..8\)"):
        case.set_labels(LabelMap(neg, lab.affine.copy(), labels=lab.labels))


def test_labels_edited_by_hand_follows_the_producer():
    case = small_case()
    assert not case.labels_edited_by_hand()
    lab = case.labels
    idx = voxel_with_other_value(lab, 7)
    lab.array[idx] = 7
    case.notify_labels_edited()
    assert case.labels_edited_by_hand()
    assert case.summary()["items"]["labels"]["edited_by_hand"] is True
    case.set_labels(replace(lab, array=lab.array.copy()), Provenance("segment:classical"))
    assert not case.labels_edited_by_hand()  # the new producer made exactly these voxels


def test_ensure_labels_creates_an_empty_manual_map_on_the_image_grid():
    from surgtwin.services.demo import phantom

    vol, _ = phantom(shape=SHAPE, spacing_mm=SPACING)
    case = Case(vol)
    lab = case.ensure_labels()
    assert lab.shape == vol.shape and int(lab.array.max()) == 0
    assert np.array_equal(lab.affine, vol.affine)
    assert case.item("labels").provenance.method == "manual"
    assert case.ensure_labels() is lab


# -- items, slots, events -------------------------------------------------------------------------------
def test_item_keys_and_slots():
    assert kind_for_key("labels") == "labelmap"
    assert kind_for_key("meshes") == "surfaces"
    assert kind_for_key("tet:femur,implant") == "tetmesh"
    assert kind_for_key("implants") == "records"
    assert kind_for_key("fem:stem") == "arrays"
    with pytest.raises(SurgtwinError, match="unknown case item 'tet'"):
        kind_for_key("tet")
    with pytest.raises(SurgtwinError, match="unknown case item 'bogus'"):
        kind_for_key("bogus")
    with pytest.raises(SurgtwinError, match="slot 'fem' is already registered with kind 'arrays'"):
        register_slot("fem", "records", "x")
    with pytest.raises(SurgtwinError, match="unknown item kind 'blob'"):
        register_slot("blobs", "blob", "x")
    case = small_case()
    with pytest.raises(SurgtwinError, match="use Case.set_labels"):
        case.set_item("labels", case.labels, Provenance("x"))


def test_changes_emit_signals_and_mark_the_case_dirty():
    case = small_case()
    case.mark_saved()
    seen = []
    case.modified.connect(lambda: seen.append("modified"))
    case.items_changed.connect(lambda key: seen.append(key))
    add_meshes(case)
    assert case.dirty and sorted(seen) == ["meshes", "modified"]
    case.mark_saved()
    case.set_notes("left side")
    case.set_notes("left side")  # no change, no signal
    m = case.add_measurement(Measurement("distance", [(0, 0, 0), (3, 4, 0)]))
    assert case.dirty and m.id == 1 and m.value == pytest.approx(5.0)
    assert case.add_measurement(Measurement("angle", [(1, 0, 0), (0, 0, 0), (0, 1, 0)])).id == 2
    case.remove_measurement(1)
    assert [x.id for x in case.measurements] == [2]
    assert case.change_count >= 5


def test_a_case_needs_an_image_volume():
    case = small_case()
    with pytest.raises(SurgtwinError, match="a case needs an image volume"):
        Case(case.labels)
