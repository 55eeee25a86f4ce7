"""The pipeline over a case: new_case imports labels with provenance, steps put current items in,
stale inputs are refused unless allowed, a label edit during a job is never overwritten, and the
label-reading rules of surgtwin.core.labels_io."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from surgtwin.core.case import LabelsEditedError
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.labels_io import read_labelmap, table_path_for
from surgtwin.core.types import Label, LabelTable, Volume
from surgtwin.services import pipeline
from tests.core.test_case_model import SHAPE, SPACING


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory) -> Path:
    from surgtwin.services.demo import write_phantom

    return write_phantom(tmp_path_factory.mktemp("phantom"), shape=SHAPE, spacing_mm=SPACING).parent


@pytest.fixture()
def case(phantom_dir):
    return pipeline.new_case(phantom_dir / "image.nii.gz")


def edit_one_voxel(case, value: int) -> tuple[int, int, int]:
    lab = case.labels
    idx = tuple(int(i) for i in np.argwhere(lab.array != value)[0])
    lab.array[idx] = value
    case.notify_labels_edited()
    return idx


# -- new_case -------------------------------------------------------------------------------------------
def test_new_case_imports_the_labels_beside_the_image(case, phantom_dir):
    assert case.name == "image"
    assert case.source.kind == "image" and case.source.path == str((phantom_dir / "image.nii.gz").resolve())
    assert case.keys() == ["labels"]
    prov = case.item("labels").provenance
    assert prov.method == "import" and prov.parameters == {"file": "labels.nii.gz"}
    assert prov.inputs == {"volume": case.volume_hash}
    assert case.labels.labels.names()[:2] == ["liver", "spleen"]  # labels.json beside it
    assert case.labels.shape == case.volume.shape
    assert not case.dirty and not case.labels_edited_by_hand()


def test_new_case_on_a_sample_folder_imports_its_reference_labels():
    from surgtwin import resources

    head = resources.sample_root() / "head"
    if not (head / "dicom").is_dir():
        pytest.skip("the head sample case is not installed")
    case = pipeline.new_case(head)
    assert case.name == "head" and case.source.kind == "dicom" and case.source.modality == "CT"
    assert case.source.path == str((head / "dicom").resolve())
    assert case.item("labels").provenance.method == "import"
    assert "skull" in case.labels.labels.names()


def test_new_case_with_explicit_labels_and_missing_input(phantom_dir, tmp_path):
    case = pipeline.new_case(phantom_dir / "image.nii.gz", labels=phantom_dir / "labels.nii.gz")
    assert case.item("labels").provenance.parameters == {"file": "labels.nii.gz"}
    with pytest.raises(SurgtwinError, match="nope.nii.gz: does not exist"):
        pipeline.new_case(tmp_path / "nope.nii.gz")


# -- steps ----------------------------------------------------------------------------------------------
def test_mesh_step_makes_current_meshes_and_export_refuses_them_once_stale(case, tmp_path):
    out = pipeline.run_step(case, "mesh", smoothing_iterations=5)
    assert set(case.meshes) == set(case.labels.labels.names())
    it = case.item("meshes")
    assert it.provenance.method == "surfaces"
    assert it.provenance.inputs == {"labels": case.current_hash("labels")}
    assert it.provenance.parameters["smoothing_iterations"] == 5
    assert not case.is_stale("meshes")
    assert out.summary["structures"]["liver"]["triangles"] == len(case.meshes["liver"].faces)
    written = pipeline.export_meshes(case, tmp_path / "ok")
    assert sorted(p.name for p in (tmp_path / "ok").iterdir()) == sorted(f"{n}.stl" for n in case.meshes)
    assert set(written) == set(case.meshes)
    edit_one_voxel(case, 2)
    with pytest.raises(SurgtwinError) as e:
        pipeline.export_meshes(case, tmp_path / "stale")
    assert "exporting meshes would use stale meshes" in str(e.value)
    assert not (tmp_path / "stale").exists()
    pipeline.export_meshes(case, tmp_path / "stale", allow_stale=True, fmt="ply")
    assert len(list((tmp_path / "stale").glob("*.ply"))) == len(case.meshes)


def test_tet_step_records_labels_and_volume(case):
    out = pipeline.run_step(case, "tet", structures=["liver"], size_mm=8.0)
    it = case.item("tet:liver")
    assert it.kind == "tetmesh" and it.provenance.method == "tetrahedra"
    assert it.provenance.inputs == {"labels": case.current_hash("labels"), "volume": case.volume_hash}
    assert out.summary["tet:liver"]["elements"] == len(it.value.elements) > 0
    edit_one_voxel(case, 1)
    assert case.stale_reasons("tet:liver") == ["the labels were edited or replaced since it was made"]
    with pytest.raises(SurgtwinError, match="the tet step needs the structures to mesh"):
        pipeline.run_step(case, "tet")


def test_classical_segmentation_replaces_labels_with_its_provenance(phantom_dir):
    from surgtwin.core.case import Case
    from surgtwin.core.io import load_volume

    case = Case(load_volume(phantom_dir / "image.nii.gz"))
    assert case.volume.modality is None  # NIfTI carries none; the step treats it as CT
    out = pipeline.run_step(case, "segment", method="classical")
    prov = case.item("labels").provenance
    assert prov.method == "segment:classical" and prov.parameters == {"method": "classical"}
    assert prov.model is None and prov.inputs == {"volume": case.volume_hash}
    assert case.labels.labels.names() == ["bone", "vessels"]
    bone = case.labels.array == case.labels.labels.by_name("bone").value
    from surgtwin.services.demo import phantom

    _, truth = phantom(shape=SHAPE, spacing_mm=SPACING)
    vertebrae = truth.array == 6
    assert (bone & vertebrae).sum() / vertebrae.sum() > 0.9  # the phantom's only bone
    assert out.summary["structures"]["bone"]["volume_ml"] > 0
    with pytest.raises(SurgtwinError, match="unknown segmentation method 'magic'"):
        pipeline.run_step(case, "segment", method="magic")


def test_segment_result_is_not_applied_over_a_label_edit(case):
    job = pipeline.prepare_step(case, "segment", method="classical")
    out = job.compute()
    idx = edit_one_voxel(case, 5)  # the user paints while the job runs
    painted = case.labels.array.copy()
    with pytest.raises(LabelsEditedError, match="the labels were edited while this job ran"):
        out.apply_to(case)
    np.testing.assert_array_equal(case.labels.array, painted)
    assert int(case.labels.array[idx]) == 5 and case.item("labels").provenance.method == "import"
    # prepared after the edit it applies
    pipeline.prepare_step(case, "segment", method="classical").compute().apply_to(case)
    assert case.item("labels").provenance.method == "segment:classical"


def test_mesh_job_works_on_a_snapshot(case):
    job = pipeline.prepare_step(case, "mesh", structures=["spleen"])
    case.labels.array[case.labels.array == 2] = 0  # spleen painted away after the job started
    case.notify_labels_edited()
    out = job.compute()
    assert set(out.items["meshes"][0]) == {"spleen"}  # the snapshot still had it
    out.apply_to(case)
    assert case.stale_reasons("meshes") == ["the labels were edited or replaced since it was made"]


def test_merged_mesh_refresh_keeps_the_other_structures(case):
    pipeline.run_step(case, "mesh", smoothing_iterations=0)
    before = dict(case.meshes)
    lab = case.labels
    liver = lab.labels.by_name("liver").value
    grow = np.argwhere(lab.array == 0)[:1]
    lab.array[tuple(grow.T)] = liver
    case.notify_labels_edited()
    assert case.is_stale("meshes")
    pipeline.run_step(case, "mesh", structures=["liver"], merge=True, smoothing_iterations=0)
    assert list(case.meshes) == list(before)
    for name, m in before.items():
        if name != "liver":
            assert case.meshes[name] is m
    assert len(case.meshes["liver"].vertices) != len(before["liver"].vertices)
    prov = case.item("meshes").provenance
    assert prov.parameters["updated_structures"] == ["liver"]
    assert prov.parameters["smoothing_iterations"] == 0
    assert not case.is_stale("meshes")
    # a structure painted away disappears from the merged meshes
    lab.array[lab.array == lab.labels.by_name("spleen").value] = 0
    case.notify_labels_edited()
    pipeline.run_step(case, "mesh", structures=["spleen"], merge=True, smoothing_iterations=0)
    assert "spleen" not in case.meshes and "liver" in case.meshes
    with pytest.raises(SurgtwinError, match="no structure named 'pancreas' in the label map"):
        pipeline.run_step(case, "mesh", structures=["pancreas"])


def test_unknown_step_and_missing_inputs(case):
    with pytest.raises(SurgtwinError, match="unknown step 'bogus'"):
        pipeline.prepare_step(case, "bogus")
    with pytest.raises(SurgtwinError, match="unknown step 'bogus'"):
        pipeline.run_steps(case, ["mesh", "bogus"])
    assert "meshes" not in case.keys()  # nothing ran
    case.set_labels(None)
    with pytest.raises(SurgtwinError, match="the mesh step needs 'labels', which the case does not have yet"):
        pipeline.run_step(case, "mesh")


def test_saved_and_loaded_through_the_pipeline(case, tmp_path):
    path = pipeline.save_case(case, tmp_path / "x")
    assert path.name == "x.stwin" and pipeline.is_case_path(path)
    back = pipeline.load_case(path)
    np.testing.assert_array_equal(back.labels.array, case.labels.array)


# -- labels_io -------------------------------------------------------------------------------------------
def write_image(path: Path, array, affine=None) -> Path:
    import SimpleITK as sitk

    from surgtwin.core.geometry import volume_to_sitk

    aff = np.diag([2.0, 3.0, 4.0, 1.0]) if affine is None else affine
    sitk.WriteImage(volume_to_sitk(Volume(np.asarray(array), aff)), str(path))
    return path


def blob(dtype=np.uint8) -> np.ndarray:
    a = np.zeros((6, 8, 10), dtype)
    a[1:4, 2:5, 3:7] = 1
    a[4:6, 5:8, 6:9] = 3
    return a


def test_table_search_order(tmp_path):
    seg = write_image(tmp_path / "seg.nii.gz", blob())
    LabelTable([Label(1, "from_labels_json")]).save(tmp_path / "labels.json")
    assert table_path_for(seg) == tmp_path / "labels.json"
    assert read_labelmap(seg).labels[1].name == "from_labels_json"
    LabelTable([Label(1, "from_stem_json")]).save(tmp_path / "seg.json")
    assert table_path_for(seg) == tmp_path / "seg.json"  # <stem>.json before labels.json
    assert read_labelmap(seg).labels[1].name == "from_stem_json"
    LabelTable([Label(1, "explicit")]).save(tmp_path / "mine.json")
    assert read_labelmap(seg, table_path=tmp_path / "mine.json").labels[1].name == "explicit"
    (tmp_path / "seg.json").unlink()
    (tmp_path / "labels.json").unlink()
    assert table_path_for(seg) is None


def test_unnamed_values_get_names_and_empty_entries_are_kept(tmp_path):
    from surgtwin.core.labels_io import default_color

    seg = write_image(tmp_path / "seg.nii.gz", blob())
    LabelTable([Label(1, "liver", (1, 2, 3)), Label(9, "absent")]).save(tmp_path / "seg.json")
    lm = read_labelmap(seg)
    assert [(x.value, x.name) for x in lm.labels] == [(1, "liver"), (3, "label_3"), (9, "absent")]
    assert lm.labels[3].color == default_color(3) and lm.labels[1].color == (1, 2, 3)
    assert lm.metadata["warnings"] == []


def test_fractional_and_negative_values_are_refused_whole_floats_accepted(tmp_path):
    frac = blob(np.float32)
    frac[0, 0, 0] = 0.5
    p = write_image(tmp_path / "ct.nii.gz", frac)
    with pytest.raises(SurgtwinError) as e:
        read_labelmap(p)
    assert e.value.path == str(p) and "the label image has non-integer values" in e.value.reason
    neg = blob(np.int16)
    neg[0, 0, 0] = -1
    p = write_image(tmp_path / "neg.nii.gz", neg)
    with pytest.raises(SurgtwinError, match=r"neg.nii.gz: label values must lie in 0..65535, found -1..3"):
        read_labelmap(p)
    p = write_image(tmp_path / "whole.nii.gz", blob(np.float32))
    lm = read_labelmap(p)
    assert lm.array.dtype == np.uint8
    np.testing.assert_array_equal(lm.array, blob())


def test_labels_on_another_grid_are_resampled_with_a_warning(tmp_path):
    ref = Volume(np.zeros((6, 8, 10), np.int16), np.diag([2.0, 3.0, 4.0, 1.0]))
    fine = np.repeat(blob(), 2, axis=0)  # half the slice spacing, same extent
    aff = np.diag([1.0, 3.0, 4.0, 1.0])
    aff[0, 3] = -0.5  # voxel centres of the 2x finer slices
    p = write_image(tmp_path / "fine.nii.gz", fine, aff)
    lm = read_labelmap(p, reference=ref)
    assert lm.shape == ref.shape and np.array_equal(lm.affine, ref.affine)
    assert lm.metadata["warnings"] == ["fine.nii.gz was on another grid and was resampled onto the image "
                                       "(nearest neighbour)"]
    assert (lm.array == blob()).mean() > 0.95
    same = read_labelmap(write_image(tmp_path / "same.nii.gz", blob()), reference=ref)
    assert same.metadata["warnings"] == []
    np.testing.assert_array_equal(same.array, blob())


def test_pipeline_load_labels_uses_the_same_rules(tmp_path):
    ref = Volume(np.zeros((6, 8, 10), np.int16), np.diag([2.0, 3.0, 4.0, 1.0]))
    frac = blob(np.float32) * 0.5
    with pytest.raises(SurgtwinError, match="non-integer values"):
        pipeline.load_labels(write_image(tmp_path / "x.nii.gz", frac), ref)
