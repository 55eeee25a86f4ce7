"""Schema-1 session folders (tests/fixtures/session_v1, kept byte-for-byte) open as a Case."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from surgtwin.core.case import open_case, save_case
from surgtwin.core.errors import SurgtwinError
from tests.core.test_case_store import tree_state

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "session_v1"


@pytest.fixture()
def v1(tmp_path) -> Path:
    """A copy of the fixture whose recorded absolute image path does not exist."""
    shutil.copy(FIXTURE / "image.nii.gz", tmp_path / "image.nii.gz")
    folder = Path(shutil.copytree(FIXTURE / "phantom.surgtwin", tmp_path / "phantom.surgtwin"))
    set_json(folder, ("volume", "path"), "/nonexistent/image.nii.gz")
    return folder


def set_json(folder: Path, where: tuple, value) -> None:
    p = folder / "session.json"
    doc = json.loads(p.read_text())
    d = doc
    for k in where[:-1]:
        d = d[k]
    d[where[-1]] = value
    p.write_text(json.dumps(doc, indent=2))


def fixture_labels() -> np.ndarray:
    import SimpleITK as sitk

    from surgtwin.core.geometry import volume_from_sitk

    return volume_from_sitk(sitk.ReadImage(str(FIXTURE / "phantom.surgtwin" / "labels.nii.gz"))).array


def test_fixture_is_unchanged():
    """The migration must keep reading exactly what schema 1 wrote."""
    doc = json.loads((FIXTURE / "phantom.surgtwin" / "session.json").read_text())
    assert doc["schema_version"] == 1
    for entry in doc["files"].values():
        data = (FIXTURE / "phantom.surgtwin" / entry["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]


def test_v1_session_opens_as_a_case(v1, tmp_path):
    before = tree_state(tmp_path)
    case = open_case(v1)
    assert tree_state(tmp_path) == before  # nothing on disk changed
    assert case.name == "phantom"
    assert case.volume.shape == (16, 24, 24)
    assert case.source.path == str((tmp_path / "image.nii.gz").resolve())  # found beside the session
    assert case.source.kind == "image"
    np.testing.assert_array_equal(case.labels.array, fixture_labels())
    assert case.labels.labels[1].name == "liver"
    assert case.item("labels").provenance.method == "import"
    assert case.item("labels").provenance.parameters == {"migrated_from": "session schema 1"}
    assert set(case.meshes) == {lab.name for lab in case.labels.labels if np.any(case.labels.array == lab.value)}
    assert case.meshes["liver"].color == (221, 130, 101)  # from the label table
    assert case.stale_items() == {}
    [m] = case.measurements
    assert m.kind == "distance" and m.value == pytest.approx(5.0) and m.plane == "axial"
    assert case.view["window"] == [1800.0, 400.0]
    assert case.view["layout"] == "1x3"
    spleen = [s for s in case.view["structures"] if s["value"] == 2][0]
    assert spleen["visible"] is False and spleen["color"] == [10, 20, 30]
    assert case.dirty  # not yet saved in the current format


def test_migrated_case_saves_and_reopens(v1, tmp_path):
    case = open_case(v1)
    out = save_case(case, tmp_path / "phantom.stwin")
    assert json.loads((out / "manifest.json").read_text())["source"]["path"] == "../image.nii.gz"
    back = open_case(out)
    np.testing.assert_array_equal(back.labels.array, fixture_labels())
    assert set(back.meshes) == set(case.meshes)
    for name, m in case.meshes.items():
        assert np.max(np.abs(back.meshes[name].vertices - m.vertices)) < 1e-4
    assert back.measurements[0].value == pytest.approx(5.0)
    assert back.view == case.view
    assert back.item("labels").provenance.to_json() == case.item("labels").provenance.to_json()
    assert back.stale_items() == {}


def test_missing_image_is_refused_naming_the_recorded_path(v1, tmp_path):
    (tmp_path / "image.nii.gz").unlink()
    with pytest.raises(SurgtwinError) as e:
        open_case(v1)
    assert e.value.path == "/nonexistent/image.nii.gz"
    assert "the image this session refers to is not there" in e.value.reason


def test_v1_session_on_another_image_grid_is_refused(v1, tmp_path):
    from surgtwin.services.demo import write_phantom

    write_phantom(tmp_path / "other", shape=(16, 24, 24), spacing_mm=(6, 8, 7))
    shutil.copy(tmp_path / "other" / "image.nii.gz", tmp_path / "image.nii.gz")
    with pytest.raises(SurgtwinError) as e:
        open_case(v1)
    assert e.value.path == str(tmp_path / "image.nii.gz")
    assert "is not the one the session was saved on" in e.value.reason
    write_phantom(tmp_path / "other2", shape=(16, 24, 20), spacing_mm=(6, 8, 8))
    shutil.copy(tmp_path / "other2" / "image.nii.gz", tmp_path / "image.nii.gz")
    with pytest.raises(SurgtwinError, match=r"grid \[16, 24, 20\] vs \[16, 24, 24\]"):
        open_case(v1)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "meshes.npz"])
def test_v1_session_naming_another_labels_file_is_refused(v1, name):
    set_json(v1, ("files", "labels", "name"), name)
    with pytest.raises(SurgtwinError) as e:
        open_case(v1)
    assert e.value.path == str(v1 / "session.json")
    assert f"session.json names {name!r} for 'labels'" in e.value.reason


def test_v1_damaged_labels_file_is_refused(v1):
    p = v1 / "labels.nii.gz"
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(SurgtwinError, match=r"labels.nii.gz: the session's labels file is damaged"):
        open_case(v1)


def test_v1_malformed_session_json_is_refused_naming_the_field(v1):
    set_json(v1, ("view", "window"), ["wide"])
    with pytest.raises(SurgtwinError, match=r"session.json: session.json field view.window"):
        open_case(v1)
    (v1 / "session.json").write_text("{")
    with pytest.raises(SurgtwinError, match="session.json is not valid JSON"):
        open_case(v1)
