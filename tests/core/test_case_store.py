"""The .stwin case file: every item survives save -> open, saves are incremental, the source is only
referenced, and a tampered or damaged case is refused naming the problem, reading nothing outside
the case and changing nothing on disk."""

from __future__ import annotations

import builtins
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from surgtwin.core.case import SCHEMA_VERSION, Provenance, SourceRef, open_case, read_manifest, save_case
from surgtwin.core.case import codecs as case_codecs
from surgtwin.core.case.store import sha256_file
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.measure import Measurement
from tests.core.test_case_model import SHAPE, SPACING, voxel_with_other_value


# -- helpers ------------------------------------------------------------------------------------------
def tree_state(folder: Path) -> dict:
    """Every entry under ``folder``: bytes (or link target) and mtime, without following links."""
    out = {}
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            p = Path(root) / name
            st = p.lstat()
            if p.is_symlink():
                out[p.relative_to(folder).as_posix()] = ("link", os.readlink(p), st.st_mtime_ns)
            elif p.is_file():
                out[p.relative_to(folder).as_posix()] = ("file", p.read_bytes(), st.st_mtime_ns)
            else:
                out[p.relative_to(folder).as_posix()] = ("dir", None, None)
    return out


def data_files(folder: Path) -> dict[str, tuple[int, int]]:
    """{name: (inode, mtime_ns)} of the case's data folder."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (folder / "data").iterdir()}


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def write_manifest(folder: Path, doc) -> None:
    (folder / "manifest.json").write_text(json.dumps(doc) if not isinstance(doc, str) else doc)


def build_full_case(src_image: Path):
    """A case with every kind of item: labels (edited after meshing, so the meshes are stale), real
    surfaces, a tet mesh, a records slot and an arrays slot, measurements, notes and view."""
    from surgtwin.core.case import Case
    from surgtwin.core.mesh import surfaces_from_labels
    from surgtwin.core.mesh.tetra import tet_mesh
    from surgtwin.services.demo import phantom

    vol, lab = phantom(shape=SHAPE, spacing_mm=SPACING)
    case = Case(vol, SourceRef(path=str(src_image), kind="image", series_uid="1.2.3", modality="CT",
                               frame_of_reference_uid="2.25.1"), name="round trip")
    case.set_labels(lab, Provenance("import", {"file": "labels.nii.gz"}))
    meshes = surfaces_from_labels(case.labels, labels=["liver", "vertebrae"], smoothing_iterations=5)
    case.set_item("meshes", meshes, Provenance("surfaces", {"smoothing_iterations": 5},
                                               {"labels": case.current_hash("labels")}))
    idx = voxel_with_other_value(case.labels, 1)
    case.labels.array[idx] = 1  # painted after meshing: the meshes are stale
    case.notify_labels_edited()
    tm = tet_mesh(case.labels, ["liver"], size_mm=8.0, ct=case.volume)
    case.set_item("tet:liver", tm, Provenance("tetrahedra", {"structures": ["liver"], "size_mm": 8.0},
                                              {"labels": case.current_hash("labels"), "volume": case.volume_hash}))
    case.set_item("implants", [{"name": "stem", "size": 3, "pose": np.eye(4).tolist(), "ok": True, "note": None}],
                  Provenance("plan:implant", {"family": "hip"}, {"meshes": case.current_hash("meshes")}))
    case.set_item("fem:test", {"u": np.linspace(0, 1, 12).reshape(4, 3), "ids": np.arange(4, dtype=np.int32)},
                  Provenance("fem", {"E_mpa": 17000.0}, {"tet:liver": case.current_hash("tet:liver")}))
    case.add_measurement(Measurement("distance", [(0, 0, 0), (3, 4, 0)], "axial"))
    case.add_measurement(Measurement("angle", [(1, 0, 0), (0, 0, 0), (0, 1, 0)]))
    case.set_notes("left side — check ✓")
    case.set_view({"window": [400.0, 40.0], "crosshair_lps": [1.0, 2.0, 3.0], "layout": "2x2",
                   "structures": [{"value": 2, "visible": False, "color": [10, 20, 30]}]})
    return case


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(pristine case folder, the case in memory, its source image)."""
    from surgtwin.services.demo import write_phantom

    root = tmp_path_factory.mktemp("store")
    image = write_phantom(root / "src", shape=SHAPE, spacing_mm=SPACING)
    case = build_full_case(image)
    folder = save_case(case, root / "full.stwin")
    return folder, case, image


@pytest.fixture()
def copy(saved, tmp_path):
    """A fresh copy of the saved case (and its source beside it) for a test to change."""
    folder, _, image = saved
    shutil.copytree(image.parent, tmp_path / "src")
    return Path(shutil.copytree(folder, tmp_path / "full.stwin", symlinks=True))


# -- round trip ---------------------------------------------------------------------------------------
def test_every_item_survives_save_and_open(saved):
    folder, case, image = saved
    back = open_case(folder)
    assert back.case_id == case.case_id and back.name == "round trip" and back.created == case.created
    assert back.keys() == ["labels", "meshes", "tet:liver", "implants", "fem:test"]
    # volume
    np.testing.assert_array_equal(back.volume.array, case.volume.array)
    assert back.volume.array.dtype == case.volume.array.dtype
    np.testing.assert_array_equal(back.volume.affine, case.volume.affine)
    assert back.volume.modality == "CT" and back.volume.frame_of_reference_uid == "2.25.1"
    assert back.volume_hash == case.volume_hash
    # labels (with the edit) and table
    np.testing.assert_array_equal(back.labels.array, case.labels.array)
    assert back.labels.array.dtype == np.uint8
    assert [(x.value, x.name, x.color) for x in back.labels.labels] == \
        [(x.value, x.name, x.color) for x in case.labels.labels]
    assert back.current_hash("labels") == case.current_hash("labels")
    # surfaces: float32 on disk, so within 1e-4 mm
    assert list(back.meshes) == ["liver", "vertebrae"]
    for name, m in case.meshes.items():
        b = back.meshes[name]
        assert (b.label, b.color) == (m.label, m.color)
        assert np.max(np.abs(b.vertices - m.vertices)) < 1e-4
        np.testing.assert_array_equal(b.faces, m.faces)
        assert b.quality.as_dict() == m.quality.as_dict()
    # tet mesh
    tm, bt = case.item("tet:liver").value, back.item("tet:liver").value
    np.testing.assert_array_equal(bt.nodes, tm.nodes)
    np.testing.assert_array_equal(bt.elements, tm.elements)
    np.testing.assert_array_equal(bt.regions, tm.regions)
    assert bt.region_names == {1: "liver"} and bt.size_mm == 8.0
    np.testing.assert_allclose(bt.mean_hu, tm.mean_hu, rtol=1e-6)
    assert bt.quality.as_dict() == tm.quality.as_dict()
    # slots
    assert back.item("implants").value == case.item("implants").value
    fem = back.item("fem:test").value
    np.testing.assert_array_equal(fem["u"], case.item("fem:test").value["u"])
    assert fem["ids"].dtype == np.int32
    # measurements, notes, view
    assert [(m.kind, m.points_lps, m.plane, m.id) for m in back.measurements] == \
        [("distance", [(0, 0, 0), (3, 4, 0)], "axial", 1), ("angle", [(1, 0, 0), (0, 0, 0), (0, 1, 0)], None, 2)]
    assert back.notes == "left side — check ✓"
    assert back.view == case.view
    # provenance and staleness
    for key in case.keys():
        assert back.item(key).provenance.to_json() == case.item(key).provenance.to_json()
        assert back.item(key).produced_hash == case.item(key).produced_hash
    assert back.stale_items() == case.stale_items()
    assert set(back.stale_items()) == {"meshes", "implants"}
    assert back.labels_edited_by_hand()
    assert back.source.path == str(image) and back.source.series_uid == "1.2.3"
    assert not back.dirty


def test_second_save_after_a_label_edit_rewrites_only_the_label_file(copy):
    case = open_case(copy)
    before = data_files(copy)
    save_case(case, copy)  # nothing changed: no data file written
    assert data_files(copy) == before
    lab = case.labels
    lab.array[voxel_with_other_value(lab, 3)] = 3
    case.notify_labels_edited()
    save_case(case, copy)
    after = data_files(copy)
    old_labels = [n for n in before if n.startswith("labels-")]
    new_labels = [n for n in after if n.startswith("labels-")]
    assert len(old_labels) == len(new_labels) == 1 and old_labels != new_labels
    assert new_labels[0] == f"labels-{case.current_hash('labels')[:16]}.nii.gz"
    assert {n: v for n, v in after.items() if n not in new_labels} == \
        {n: v for n, v in before.items() if n not in old_labels}  # same inode and mtime: untouched
    assert sorted(p.name for p in copy.iterdir()) == ["data", "manifest.json"]  # no leftover
    doc = manifest(copy)
    assert sorted(Path(e["file"]["name"]).name for e in [doc["volume"], *doc["items"].values()]) == sorted(after)
    assert doc["items"]["labels"]["file"]["sha256"] == sha256_file(copy / "data" / new_labels[0])


def test_colour_change_reuses_the_label_file_and_keeps_the_new_table(copy):
    from surgtwin.core.types import Label, LabelTable

    case = open_case(copy)
    before = data_files(copy)
    table = LabelTable(Label(x.value, x.name, (1, 2, 3) if x.value == 1 else x.color) for x in case.labels.labels)
    case.replace_label_table(table)
    save_case(case, copy)
    assert data_files(copy) == before
    assert open_case(copy).labels.labels[1].color == (1, 2, 3)


def test_source_is_stored_relative_and_never_read_when_opening(copy, tmp_path):
    doc = manifest(copy)
    assert doc["source"]["path"] == "../src/image.nii.gz"
    assert doc["schema_version"] == SCHEMA_VERSION and doc["format"] == "surgtwin-case"
    shutil.rmtree(tmp_path / "src")  # the source is gone: the case has its own copy of the image
    case = open_case(copy)
    assert case.source.path == str(tmp_path / "src" / "image.nii.gz")
    assert case.volume.shape == SHAPE
    # moved together with its source, the case follows it
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(str(copy), moved / "full.stwin")
    assert open_case(moved / "full.stwin").source.path == str(moved / "src" / "image.nii.gz")


def test_source_path_is_text_only(copy, tmp_path):
    doc = manifest(copy)
    doc["source"]["path"] = "../../../../etc"
    write_manifest(copy, doc)
    case = open_case(copy)
    assert case.source.path == os.path.normpath(os.path.join(str(copy), "../../../../etc"))


def test_a_case_without_source_path_saves_and_opens(tmp_path):
    from tests.core.test_case_model import small_case

    case = small_case()
    assert case.source.path is None
    save_case(case, tmp_path / "nosrc.stwin")
    assert manifest(tmp_path / "nosrc.stwin")["source"]["path"] is None
    assert open_case(tmp_path / "nosrc.stwin").source.path is None


def test_tet_of_a_structure_named_with_spaces_is_saved(tmp_path):
    from tests.core.test_case_model import one_tet, small_case

    case = small_case()
    case.set_item("tet:Left femur,Implant (stem)", one_tet(), Provenance("tetrahedra"))
    save_case(case, tmp_path / "t.stwin")
    assert open_case(tmp_path / "t.stwin").keys() == ["labels", "tet:Left femur,Implant (stem)"]


def test_save_refuses_a_file_and_a_foreign_folder(tmp_path):
    from tests.core.test_case_model import small_case

    case = small_case()
    (tmp_path / "f.stwin").write_text("x")
    with pytest.raises(SurgtwinError, match="f.stwin: exists and is not a case folder"):
        save_case(case, tmp_path / "f.stwin")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.tex").write_text("x")
    with pytest.raises(SurgtwinError, match="docs: is a folder that is not a surgtwin case"):
        save_case(case, tmp_path / "docs")
    assert sorted(p.name for p in (tmp_path / "docs").iterdir()) == ["thesis.tex"]


# -- tampered and damaged cases ---------------------------------------------------------------------
class ReadLog:
    """Records the real path of every file opened through Python or handed to the image reader."""

    def __init__(self, monkeypatch):
        self.paths: list[str] = []
        real_open, real_read_image = builtins.open, case_codecs.read_image

        def logged_open(file, *a, **kw):
            if isinstance(file, str | bytes | os.PathLike):
                self.paths.append(os.path.realpath(file))
            return real_open(file, *a, **kw)

        def logged_read_image(path, *a, **kw):
            self.paths.append(os.path.realpath(path))
            return real_read_image(path, *a, **kw)

        monkeypatch.setattr(builtins, "open", logged_open)
        monkeypatch.setattr(io, "open", logged_open)
        monkeypatch.setattr(case_codecs, "read_image", logged_read_image)
        monkeypatch.setattr("surgtwin.core.case.store.read_image", logged_read_image)

    def assert_not_read(self, *roots) -> None:
        for root in roots:
            root = os.path.realpath(root)
            bad = [p for p in self.paths if p == root or p.startswith(root + os.sep)]
            assert not bad, f"read outside the case: {bad}"


def item_file(folder: Path, key: str) -> Path:
    doc = manifest(folder)
    entry = doc["volume"] if key == "volume" else doc["items"][key]
    return folder / entry["file"]["name"]


def match_manifest(folder: Path, key: str, target: Path) -> None:
    """Rewrite the manifest's sha256 and size of ``key``'s file to those of ``target`` (so only the
    content, or the file's nature, is wrong)."""
    doc = manifest(folder)
    entry = doc["volume"] if key == "volume" else doc["items"][key]
    entry["file"]["sha256"] = sha256_file(target)
    entry["file"]["size"] = target.stat().st_size
    write_manifest(folder, doc)


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _edit(**changes):
    def apply(folder, outside):
        doc = manifest(folder)
        for path, value in changes.items():
            *head, last = path.split(".")
            d = doc
            for part in head:
                d = d[int(part)] if isinstance(d, list) else d[part]
            if value is _DELETE:
                del d[last]
            else:
                d[last] = value
        write_manifest(folder, doc)
    return apply


_DELETE = object()


def _labels_name(value):
    return _edit(**{"items.labels.file.name": value})


def _link_data_file(folder, outside):
    p = item_file(folder, "labels")
    target = outside / "secret.nii.gz"
    shutil.copy(p, target)  # a valid label image, but outside the case
    p.unlink()
    p.symlink_to(target)
    match_manifest(folder, "labels", target)


def _link_data_folder(folder, outside):
    shutil.move(str(folder / "data"), outside / "data")
    (folder / "data").symlink_to(outside / "data")


def _flip_a_byte(folder, outside):
    p = item_file(folder, "labels")
    b = bytearray(p.read_bytes())
    b[len(b) // 2] ^= 0xFF
    p.write_bytes(bytes(b))


def _truncate(folder, outside):
    p = item_file(folder, "meshes")
    p.write_bytes(p.read_bytes()[:100])


def _manifest_text(text):
    return lambda folder, outside: write_manifest(folder, text)


def _bad_npz(content: bytes, key="meshes"):
    def apply(folder, outside):
        p = item_file(folder, key)
        p.write_bytes(content)
        match_manifest(folder, key, p)
    return apply


def _manifest_link(folder, outside):
    target = outside / "manifest.json"
    shutil.move(str(folder / "manifest.json"), target)
    (folder / "manifest.json").symlink_to(target)


def _surfaces_without_v0():
    return npz_bytes(names=np.array(["liver", "vertebrae"]), labels=np.array([1, 6], np.int32),
                     colors=np.zeros((2, 3), np.uint8), f0=np.zeros((1, 3), np.int32),
                     v1=np.zeros((3, 3), np.float32), f1=np.array([[0, 1, 2]], np.int32))


def _faces_out_of_range():
    return npz_bytes(names=np.array(["liver"]), labels=np.array([1], np.int32), colors=np.zeros((1, 3), np.uint8),
                     v0=np.zeros((3, 3), np.float32), f0=np.array([[0, 1, 7]], np.int32))


TAMPERED = {
    "dotdot-passwd": (_labels_name("../../../../etc/passwd"), "field items.labels.file.name"),
    "absolute-passwd": (_labels_name("/etc/passwd"), "field items.labels.file.name"),
    "data-dotdot": (_labels_name("data/../../x"), "field items.labels.file.name"),
    "data-link-to-outside": (_link_data_file, "labels file is a link: refused"),
    "data-folder-link": (_link_data_folder, "data folder is a link or missing: refused"),
    "bad-checksum": (_flip_a_byte, "labels file is damaged (checksum mismatch)"),
    "truncated-data": (_truncate, "meshes file has the wrong size (damaged or truncated)"),
    "truncated-manifest": (lambda f, o: write_manifest(f, (f / "manifest.json").read_text()[:200]),
                           "manifest.json is not valid JSON"),
    "top-level-list": (_manifest_text("[1, 2]"), "manifest.json must hold a JSON object"),
    "items-as-list": (_edit(items=[]), "field items: [] is not of type 'object'"),
    "files-as-list": (_edit(**{"items.labels.file": []}), "field items.labels.file: [] is not of type 'object'"),
    "missing-sha256": (_edit(**{"items.meshes.file.sha256": _DELETE}), "'sha256' is a required property"),
    "missing-volume": (_edit(volume=_DELETE), "field (top level): 'volume' is a required property"),
    "measurement-without-kind": (_edit(**{"measurements.0.kind": _DELETE}),
                                 "field measurements.0: 'kind' is a required property"),
    "colour-red": (_edit(**{"view.structures.0.color": "red"}), "field view.structures.0.color: 'red'"),
    "window-wide": (_edit(**{"view.window": ["wide"]}), "field view.window"),
    "newer-schema": (_edit(schema_version=99), "saved by a newer surgtwin (case schema 99"),
    "garbage-npz": (_bad_npz(b"PK\x03\x04 this is not a zip archive at all" * 10),
                    "meshes-", ),
    "object-array-npz": (_bad_npz(npz_bytes(names=np.array(["liver"]), labels=np.array([1], np.int32),
                                            colors=np.zeros((1, 3), np.uint8),
                                            v0=np.array([{"boom": 1}], dtype=object), f0=np.zeros((1, 3), np.int32))),
                         "not a readable array archive (ValueError: Object arrays cannot be loaded"),
    "npz-missing-v0": (_bad_npz(_surfaces_without_v0()), "the case file is damaged: array 'v0' is missing"),
    "npz-faces-out-of-range": (_bad_npz(_faces_out_of_range()), "array 'f0' indexes points that do not exist"),
    "fem-object-array": (_bad_npz(npz_bytes(u=np.array([None, 1], dtype=object)), key="fem:test"),
                         "not a readable array archive (ValueError: Object arrays"),
    "manifest-link": (_manifest_link, "manifest.json is a link or not a regular file: refused"),
    "unknown-item-key": (_edit(**{"items.labels.kind": "records"}), "item 'labels' must be a labelmap, not records"),
}


@pytest.mark.parametrize("name", list(TAMPERED))
def test_tampered_case_is_refused_without_reading_outside_or_changing_anything(name, copy, tmp_path, monkeypatch):
    tamper, words = TAMPERED[name]
    outside = tmp_path / "outside"
    outside.mkdir()
    tamper(copy, outside)
    before, before_outside = tree_state(copy), tree_state(outside)
    log = ReadLog(monkeypatch)
    with pytest.raises(SurgtwinError) as e:
        open_case(copy)
    monkeypatch.undo()
    assert words in str(e.value)
    assert e.value.path is not None and Path(e.value.path).is_relative_to(copy)  # names the file at fault
    log.assert_not_read(outside, "/etc")
    assert tree_state(copy) == before
    assert tree_state(outside) == before_outside


def test_garbage_npz_names_the_meshes_file(copy, tmp_path):
    _bad_npz(b"\x00garbage" * 50)(copy, tmp_path)
    with pytest.raises(SurgtwinError) as e:
        open_case(copy)
    assert e.value.path == str(item_file(copy, "meshes"))
    assert "the case file is damaged: not a readable array archive" in e.value.reason


def test_read_manifest_checks_without_reading_data(copy):
    doc = read_manifest(copy)
    assert set(doc["items"]) == {"labels", "meshes", "tet:liver", "implants", "fem:test"}
    (item_file(copy, "labels")).unlink()  # read_manifest does not look at data files
    assert read_manifest(copy)["case_id"] == doc["case_id"]
    with pytest.raises(SurgtwinError, match="the case's labels file is missing"):
        open_case(copy)


def test_not_a_case(tmp_path):
    with pytest.raises(SurgtwinError, match=r"nothing.stwin: is not a surgtwin case \(not a folder\)"):
        open_case(tmp_path / "nothing.stwin")
    (tmp_path / "empty.stwin").mkdir()
    with pytest.raises(SurgtwinError, match=r"empty.stwin: is not a surgtwin case \(no manifest.json\)"):
        open_case(tmp_path / "empty.stwin")
