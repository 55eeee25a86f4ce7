"""`surgtwin case new|run|show|export` and `surgtwin mesh CASE`: the headless pipeline over a case."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from surgtwin.cli.main import main
from tests.core.test_case_model import SHAPE, SPACING


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    from surgtwin.services.demo import write_phantom

    return write_phantom(tmp_path_factory.mktemp("phantom"), shape=SHAPE, spacing_mm=SPACING)


def one_line_error(err: str) -> str:
    """The error line of stderr (progress lines aside): exactly one, no traceback."""
    lines = [ln for ln in err.splitlines() if ln.strip() and not re.match(r"^\w+ +\d+\.\d% ", ln)]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("surgtwin: error: ")
    return lines[0]


def test_case_new_run_show_export(image, tmp_path, capsys):
    case = tmp_path / "x.stwin"
    assert main(["case", "new", str(image), "--out", str(case), "--name", "demo"]) == 0
    out = capsys.readouterr().out
    assert "case 'demo'" in out and "[ok] labels (labelmap): import, file=labels.nii.gz" in out
    assert main(["case", "run", str(case), "--steps", "mesh", "--smoothing-iterations", "3"]) == 0
    out = capsys.readouterr().out
    assert "mesh: done" in out and "[ok] meshes (surfaces)" in out and "NOT FOR CLINICAL USE" in out
    assert main(["case", "show", str(case), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["name"] == "demo"
    assert list(s["items"]) == ["labels", "meshes"]
    assert s["items"]["labels"]["stale"] == [] and s["items"]["meshes"]["stale"] == []
    assert s["items"]["labels"]["edited_by_hand"] is False
    assert set(s["items"]["meshes"]["structures"]) == set(s["items"]["labels"]["structures"])
    assert s["source"]["kind"] == "image" and s["source"]["path"] == str(image.resolve())
    assert main(["case", "show", str(case)]) == 0
    assert "[ok] meshes (surfaces): surfaces, smoothing_iterations=3" in capsys.readouterr().out
    assert main(["case", "export", str(case), "--meshes", str(tmp_path / "stl")]) == 0
    out = capsys.readouterr().out
    names = sorted(s["items"]["meshes"]["structures"])
    assert sorted(p.name for p in (tmp_path / "stl").iterdir()) == sorted(f"{n}.stl" for n in names)
    assert f"{len(names)} surface(s) in LPS mm" in out
    # `surgtwin mesh` takes a case as its input (its label map, edits included)
    assert main(["mesh", str(case), "--out", str(tmp_path / "m"), "--structures", "liver,spleen",
                 "--smoothing-iterations", "0"]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["liver.stl", "meshes.json", "spleen.stl"]
    assert json.loads((tmp_path / "m" / "meshes.json").read_text())["labels"] == str(case)


def test_export_refuses_stale_meshes_unless_allowed(image, tmp_path, capsys):
    from surgtwin.core.case import open_case, save_case

    case = tmp_path / "x.stwin"
    assert main(["case", "new", str(image), "--out", str(case)]) == 0
    assert main(["case", "run", str(case), "--steps", "mesh", "--smoothing-iterations", "0"]) == 0
    c = open_case(case)
    lab = c.labels
    lab.array[lab.array == 2] = 1  # spleen painted into the liver
    c.notify_labels_edited()
    save_case(c, case)
    capsys.readouterr()
    assert main(["case", "show", str(case)]) == 0
    out = capsys.readouterr().out
    assert "[STALE] meshes" in out and "stale: the labels were edited or replaced since it was made" in out
    assert "(edited by hand)" in out
    assert main(["case", "export", str(case), "--meshes", str(tmp_path / "o")]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "exporting meshes would use stale meshes" in line and "--allow-stale" in line
    assert not (tmp_path / "o").exists()
    assert main(["case", "export", str(case), "--meshes", str(tmp_path / "o"), "--allow-stale"]) == 0
    assert (tmp_path / "o" / "spleen.stl").is_file()


def test_case_new_onto_an_existing_path_needs_force(image, tmp_path, capsys):
    case = tmp_path / "x.stwin"
    assert main(["case", "new", str(image), "--out", str(case)]) == 0
    first = (case / "manifest.json").read_bytes()
    capsys.readouterr()
    assert main(["case", "new", str(image), "--out", str(case)]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert f"{case}: already exists" in line and "--force" in line
    assert (case / "manifest.json").read_bytes() == first
    assert main(["case", "new", str(image), "--out", str(case), "--force"]) == 0
    assert json.loads((case / "manifest.json").read_text())["case_id"] != json.loads(first)["case_id"]
    other = tmp_path / "mine.stwin"
    other.mkdir()
    (other / "thesis.tex").write_text("x")
    capsys.readouterr()
    assert main(["case", "new", str(image), "--out", str(other), "--force"]) == 2  # never some other folder
    err = capsys.readouterr().err
    assert "mine.stwin: is not a surgtwin case (no manifest.json)" in one_line_error(err)
    assert "opening" not in err  # refused before the image is loaded
    assert (other / "thesis.tex").read_text() == "x"
    assert main(["case", "new", str(image), "--out", str(tmp_path / "noext")]) == 2
    assert "the case name must end in .stwin" in one_line_error(capsys.readouterr().err)


def test_case_run_unknown_step_and_tampered_case(image, tmp_path, capsys):
    case = tmp_path / "x.stwin"
    assert main(["case", "new", str(image), "--out", str(case)]) == 0
    before = (case / "manifest.json").read_bytes()
    capsys.readouterr()
    assert main(["case", "run", str(case), "--steps", "mesh,bogus"]) == 2
    err = capsys.readouterr().err
    assert "unknown step 'bogus' (steps: segment, mesh, tet" in one_line_error(err)
    assert "opening" not in err  # refused before the case is loaded
    assert (case / "manifest.json").read_bytes() == before  # nothing ran, nothing saved
    labels = next((case / "data").glob("labels-*"))
    labels.write_bytes(labels.read_bytes()[:-5])
    assert main(["case", "show", str(case)]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert str(labels) in line and "wrong size (damaged or truncated)" in line
    assert main(["case", "show", str(tmp_path / "none.stwin")]) == 2
    assert "none.stwin: is not a surgtwin case" in one_line_error(capsys.readouterr().err)


@pytest.mark.slow
def test_done_when_on_the_head_sample(tmp_path, capsys):
    """The issue's path: a sample case, the bundled model, meshes, and what the case holds."""
    from surgtwin import resources
    from surgtwin.services import pipeline

    head = resources.sample_root() / "head"
    if not (head / "dicom").is_dir() or not pipeline.bundled_model_available():
        pytest.skip("the head sample or the bundled model is not installed")
    case = tmp_path / "head.stwin"
    assert main(["case", "new", str(head), "--out", str(case)]) == 0
    assert main(["case", "run", str(case), "--steps", "segment,mesh", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "segment: done" in out and "mesh: done" in out
    assert main(["case", "show", str(case), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert list(s["items"]) == ["labels", "quality", "meshes"]  # quality: the segmentation gate
    labels, meshes = s["items"]["labels"], s["items"]["meshes"]
    assert labels["made_by"].startswith("segment:model (") and labels["stale"] == [] and meshes["stale"] == []
    assert labels["edited_by_hand"] is False
    assert len(meshes["structures"]) >= 3 and set(meshes["structures"]) <= set(labels["structures"])
    assert s["source"]["kind"] == "dicom" and s["source"]["modality"] == "CT"
