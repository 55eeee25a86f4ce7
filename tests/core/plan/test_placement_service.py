"""The planning service over a case (``surgtwin.services.implants``): the "implant" pipeline step,
provenance and staleness, live pose updates, checks of all implants, save/open round trip."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from surgtwin.core.case import Case
from surgtwin.core.case.model import labels_content_hash
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.plan.pose import Pose
from surgtwin.services import implants as svc
from surgtwin.services import pipeline
from tests.core.plan.synthetic import CANAL_R, CANAL_X, COARSE, spine_block


@pytest.fixture(scope="module")
def anatomy():
    return spine_block(**COARSE)


@pytest.fixture
def case(anatomy):
    labels, ct, centre = anatomy
    c = Case(ct, name="block")
    c.set_labels(replace(labels, array=labels.array.copy()))  # tests edit it
    return c


def screw_pose(centre, x):
    return {"origin_lps": list(centre + [x, 0.0, -20.0]), "axis_lps": [0, 0, 1]}


def test_the_step_is_registered():
    assert "implant" in pipeline.steps() and pipeline.steps()["implant"].inputs == ("labels",)


def test_place_check_replace_and_provenance(case, anatomy):
    _, _, centre = anatomy
    out = pipeline.run_step(case, "implant", family="pedicle-screw", size="6.5x40", pose=screw_pose(centre, 8.0),
                            placement_name="test screw")
    assert out.summary["passed"] and out.result.breach.grade == "A"
    item = case.item("implants")
    (rec,) = item.value
    assert (rec["id"], rec["name"], rec["method"]) == ("1", "test screw", "manual")
    assert rec["checks"]["passed"] and rec["provenance"]["inputs"]["labels"] == labels_content_hash(case.labels)
    prov = item.provenance
    assert prov.method == "implant-placement" and prov.inputs == {"labels": case.current_hash("labels")}
    assert (prov.parameters["family"], prov.parameters["size"], prov.parameters["pose_method"]) == \
        ("pedicle-screw", "6.5x40", "manual")
    assert prov.parameters["pose"]["translation_mm"] == pytest.approx(list(centre + [8, 0, -20]), abs=0.01)
    # a second implant, then the first one replaced in place: ids and order kept
    pipeline.run_step(case, "implant", family="pedicle-screw", size="5x35", pose=screw_pose(centre, 14.0))
    out = pipeline.run_step(case, "implant", family="pedicle-screw", size="6.5x40", id="1",
                            pose=screw_pose(centre, CANAL_X + CANAL_R + 1.0 + 5.5))
    assert [p.id for p in svc.placements(case)] == ["1", "2"]
    assert not out.summary["passed"]  # 1 mm from the canal: the 2 mm margin fails
    failed = [d for d in out.result.distances if not d.passed]
    assert [d.structure for d in failed] == ["spinal_canal"]
    # editing the labels makes the placements (and their checks) stale
    case.labels.array[0, 0, 0] = 2
    case.notify_labels_edited()
    assert case.stale_reasons("implants") == ["the labels were edited or replaced since it was made"]


def test_live_updates_commit_only_when_asked(case, anatomy):
    _, _, centre = anatomy
    pipeline.run_step(case, "implant", family="pedicle-screw", size="6.5x40", pose=screw_pose(centre, 8.0))
    planner = svc.ImplantPlanner(case)
    before = case.change_count
    pose = svc.placement(case, "1").pose
    times = []
    for k in range(40):
        t = time.perf_counter()
        r = svc.update_pose(case, "1", pose.moved(translate_lps=[0.1 * k, 0, 0]), planner=planner, commit=False)
        times.append(time.perf_counter() - t)
    assert case.change_count == before and r.passed
    assert np.median(times[1:]) < 0.05  # the first call prepared the fields
    out_pose = pose.moved(translate_lps=[20 - 3.25 + 3 - 8, 0, 0])  # its side 3 mm out of the block
    r = svc.update_pose(case, "1", out_pose, planner=planner)
    assert not r.passed and r.breach.grade == "C"
    rec = case.item("implants").value[0]
    assert rec["method"] == "manual" and rec["checks"]["breach"]["grade"] == "C"
    np.testing.assert_allclose(rec["pose"]["matrix"], out_pose.matrix)
    assert case.item("implants").provenance.parameters["pose_method"] == "manual"


def test_check_all_remove_and_round_trip(case, anatomy, tmp_path):
    _, _, centre = anatomy
    for x in (8.0, 14.0):
        pipeline.run_step(case, "implant", family="pedicle-screw", size="6.5x40", pose=screw_pose(centre, x))
    res = svc.check_all(case)
    assert set(res) == {"1", "2"} and all(r.passed for r in res.values())
    path = pipeline.save_case(case, tmp_path / "c.stwin")
    back = pipeline.load_case(path)
    a, b = svc.placements(case), svc.placements(back)
    assert [p.id for p in b] == ["1", "2"]
    np.testing.assert_array_equal(a[1].pose.matrix, b[1].pose.matrix)
    assert back.stale_reasons("implants") == []
    svc.remove_implant(back, "1")
    assert [p.id for p in svc.placements(back)] == ["2"]
    svc.remove_implant(back, "2")
    assert back.item("implants") is None
    with pytest.raises(SurgtwinError, match="no implant with id '7'"):
        svc.placement(case, "7")


@pytest.mark.parametrize("opts, reason", [
    ({"family": "pedicle-screw", "size": "6.5x40"}, "needs a pose or a target"),
    ({"family": "nail", "size": "1", "pose": {"translation_mm": [0, 0, 0]}}, "unknown implant family 'nail'"),
    ({"family": "pedicle-screw", "size": "6.5x40", "vertebra": "L4"}, "needs a side"),
    ({"family": "pedicle-screw", "size": "6.5x40", "femur": "left"}, "for hip stems"),
    ({"family": "pedicle-screw", "size": "6.5x40", "pose": {"axis_lps": [0, 0, 0], "origin_lps": [0, 0, 0]}},
     "non-zero"),
])
def test_refusals(case, opts, reason):
    with pytest.raises(SurgtwinError, match=reason):
        pipeline.run_step(case, "implant", **opts)
    assert case.item("implants") is None


def test_auto_screw_on_a_pose_given_as_pose_object(case, anatomy):
    _, _, centre = anatomy
    pose = Pose.from_axis(centre + [8.0, 0, -20.0], [0, 0, 1])
    out = pipeline.run_step(case, "implant", family="pedicle-screw", size="6.5x40", pose=pose)
    assert out.summary["placement"]["pose"]["matrix"] == pose.to_json()["matrix"]
