"""The "fem" pipeline step over a case: items, provenance, staleness, round trip, what-if, screws."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surgtwin.core.case import Case
from surgtwin.core.errors import SurgtwinError
from surgtwin.services import pipeline


@pytest.fixture(scope="module")
def femur_case():
    from tests.core.sim.synthetic import femur

    labels, ct = femur(spacing=2.0)
    case = Case(ct, name="synthetic femur")
    case.set_labels(labels)
    pipeline.run_step(case, "implant", family="hip-stem", size="2", femur="left")
    out = pipeline.run_step(case, "fem", size_mm=4.0, load="walking", body_weight_kg=80.0)
    return case, out


def test_the_step_is_registered_and_needs_an_implant():
    steps = pipeline.steps()
    assert steps["fem"].inputs == ("labels", "volume", "implants")
    from tests.core.sim.synthetic import femur

    labels, ct = femur(spacing=2.5)
    case = Case(ct)
    case.set_labels(labels)
    with pytest.raises(SurgtwinError, match="needs 'implants'"):
        pipeline.run_step(case, "fem")


def test_items_arrays_and_provenance(femur_case):
    case, out = femur_case
    assert {"tet:femur_left,implant_1", "fem:1"} <= set(case.keys())
    mesh = case.item("tet:femur_left,implant_1").value
    a = case.item("fem:1").value
    n, m = len(mesh.nodes), len(mesh.elements)
    for name in ("intact", "implanted"):
        assert a[f"displacement_{name}_mm"].shape == (n, 3)
        for field in ("von_mises", "sed", "modulus"):
            assert a[f"{field}_{name}_mpa"].shape == (m,)
    assert a["zones"].shape == (m,) and set(np.unique(a["zones"])) <= set(range(8))
    assert np.all(a["zones"][a["implant_elements"] == 1] == 0)
    assert np.all(a["modulus_implanted_mpa"][a["implant_elements"] == 1] == 110_000.0)
    assert float(a["safety_factor"]) == pytest.approx(880.0 / float(a["implant_peak_von_mises_mpa"]), rel=1e-6)
    assert a["zone_ids"].tolist() == sorted(a["zone_ids"].tolist()) and len(a["zone_ids"]) >= 5
    prov = case.item("fem:1").provenance
    assert set(prov.inputs) == {"labels", "volume", "implants", "tet:femur_left,implant_1"}
    p = prov.parameters
    assert p["implant"]["family"] == "hip-stem" and p["implant"]["size"] == "2" and p["mesh"]["size_mm"] == 4.0
    assert p["loads"]["intact"]["body_weight_kg"] == 80.0 and p["bone_material"]["relation"]["site"] == "femoral_neck"
    assert p["zone_names"]["7"] == "7 medial proximal (calcar)" and p["solver"]["implanted"]["relative_residual"] < 1e-8
    json.dumps(prov.to_json(), allow_nan=False)  # the manifest is strict JSON
    s = out.summary["fem:1"]
    assert "safety factor" in s["table"] and s["implant"]["yield_mpa"] == 880.0
    assert s["bone_sed_change_percent"] < 0  # the stem shields the bone
    assert not case.stale_items()


def test_label_edits_make_the_results_stale_and_they_round_trip(femur_case, tmp_path):
    case, _ = femur_case
    path = pipeline.save_case(case, tmp_path / "femur.stwin")
    back = pipeline.load_case(path)
    for k, v in case.item("fem:1").value.items():
        assert np.array_equal(back.item("fem:1").value[k], v, equal_nan=True), k
    assert back.item("fem:1").provenance.parameters["zone_scheme"] == "gruen"
    back.labels.array[0, 0, 0] = 1
    back.notify_labels_edited()
    assert "fem:1" in back.stale_items() and "tet:femur_left,implant_1" in back.stale_items()
    with pytest.raises(SurgtwinError, match="stale"):
        pipeline.run_step(back, "fem", size_mm=4.0)


def test_what_if_another_size(femur_case):
    from surgtwin.services.simulate import what_if

    case, _ = femur_case
    res = what_if(case, "1", size_b="4", size_mm=4.0)
    assert res["labels"] == ["size 2", "size 4"] and res["keys"] == ["fem:1", "fem:1:size-4"]
    assert "fem:1:size-4" in case.keys() and "tet:femur_left,implant_1:size-4" in case.keys()
    assert "percentage points" in res["sentence"] and "size 4" in res["sentence"]
    assert res["a"]["implant"]["size"] == "2" and res["b"]["implant"]["size"] == "4"
    # the case's placement itself is unchanged
    assert case.item("implants").value[0]["implant"]["size"] == "2"
    with pytest.raises(SurgtwinError, match="another size or another pose"):
        what_if(case, "1")


def test_find_placement_rules():
    from surgtwin.services.simulate import find_placement

    with pytest.raises(SurgtwinError, match="no implant is placed"):
        find_placement([])

    class P:  # the fields find_placement reads
        def __init__(self, pid, name, family):
            self.id, self.name = pid, name
            self.implant = type("I", (), {"family": family})()

    ps = [P("1", "stem", "hip-stem"), P("2", "screw", "pedicle-screw"), P("3", "screw b", "pedicle-screw")]
    assert find_placement(ps, "hip-stem").id == "1" and find_placement(ps, "screw b").id == "3"
    with pytest.raises(SurgtwinError, match="several implants match"):
        find_placement(ps, "pedicle-screw")
    with pytest.raises(SurgtwinError, match="several implants are placed"):
        find_placement(ps)
    with pytest.raises(SurgtwinError, match="no implant 'x'"):
        find_placement(ps, "x")


def test_screw_pullout_in_a_bone_block():
    from surgtwin.core.plan.pose import Pose
    from tests.core.plan.synthetic import COARSE, spine_block

    labels, ct, centre = spine_block(**COARSE)
    case = Case(ct)
    case.set_labels(labels)
    pose = Pose.from_axis(centre + [8.0, 0, -20.0], [0, 0, 1.0])
    pipeline.run_step(case, "implant", family="pedicle-screw", size="6.5x40", pose=pose)
    out = pipeline.run_step(case, "fem", structure="vertebrae", size_mm=3.0, force_n=400.0)
    s = out.summary["fem:1"]
    assert s["study"] == "pedicle_screw_pullout" and s["zone_scheme"] == "screw thirds"
    assert "screw pull-out 400 N" in s["loads"]["implanted"]
    a = case.item("fem:1").value
    assert float(a["implant_yield_mpa"]) == 880.0 and float(a["safety_factor"]) > 1.0
    # the pull-out force pulls the screw out: its head moves against the insertion axis (-z here)
    mesh = case.item("tet:vertebrae,implant_1").value
    head = mesh.nodes[a["load_nodes_implanted"]]
    assert np.all(a["displacement_implanted_mm"][a["load_nodes_implanted"], 2] < 0) and len(head) >= 4
