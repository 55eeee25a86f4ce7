"""The centerline and flow steps over a case: items, arrays, provenance, stent, save/load, staleness."""

from __future__ import annotations

import numpy as np
import pytest

from surgtwin.core.case import Case
from surgtwin.core.errors import SurgtwinError
from surgtwin.core.types import Label, LabelMap, LabelTable, Volume
from surgtwin.services import pipeline


def tube(pts, a, b, radius_fn):
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = b - a
    t = np.clip(((pts - a) @ d) / (d @ d), 0, 1)
    return np.linalg.norm(pts - (a + t[..., None] * d), axis=-1) <= radius_fn(t)


def y_case(*, renal_gap=False):
    """An aorta (label 1, with a 60 % stenosis) forking into two iliac arteries (2, 3); a renal
    artery (4) that does not touch the aorta."""
    shape, sp = (70, 60, 80), np.array([3.0, 1.5, 1.5])
    aff = np.eye(4)
    aff[:3, :3] = np.diag(sp)
    pts = np.indices(shape).transpose(1, 2, 3, 0) * sp
    fork = np.array([120, 45, 60])
    arr = np.zeros(shape, np.uint8)
    arr[tube(pts, fork, (200, 45, 20), lambda t: 5.0 + 0 * t)] = 2
    arr[tube(pts, fork, (200, 45, 100), lambda t: 5.0 + 0 * t)] = 3
    arr[tube(pts, (5, 45, 60), fork, lambda t: 9.0 * (1 - 0.6 * np.exp(-0.5 * ((t - 0.45) * 115 / 7) ** 2)))] = 1
    arr[tube(pts, (40, 45, 80), (40, 45, 110), lambda t: 2.5 + 0 * t)] = 4
    names = [Label(1, "aorta"), Label(2, "iliac_artery_left"), Label(3, "iliac_artery_right"),
             Label(4, "renal_artery_left")]
    ct = Volume(np.where(arr > 0, 300, 40).astype(np.int16), aff, modality="CT")
    case = Case(ct, name="y")
    case.set_labels(LabelMap(arr, aff, labels=LabelTable(names)))
    return case


@pytest.fixture(scope="module")
def flow_case():
    case = y_case()
    out = pipeline.run_step(case, "flow", stent={"s0": 18.0}, pulsatile=True, cycles=3, steps_per_cycle=200)
    return case, out


def test_steps_are_registered():
    assert {"centerline", "flow"} <= set(pipeline.steps())


def test_centerline_step_items_and_default_tree():
    case = y_case()
    out = pipeline.run_step(case, "centerline")
    item = case.item("centerlines:aorta")
    assert item is not None and "points_lps" in item.value and "stenosis_diameter_percent" in item.value
    prov = item.provenance
    assert prov.parameters["structures"] == ["aorta", "iliac_artery_left", "iliac_artery_right"]
    assert any("renal_artery_left does not touch the aorta" in w for w in prov.parameters["warnings"])
    assert prov.parameters["branch_names"][0] == "aorta" and "labels" in prov.inputs
    assert out.summary["stenoses"][0]["diameter_percent"] == pytest.approx(60.0, abs=5.0)


def test_flow_items_arrays_and_stent(flow_case):
    case, out = flow_case
    assert {"centerlines:aorta", "flow:aorta", "flow:aorta:stent"} <= set(case.keys())
    a = case.item("flow:aorta").value
    n = len(case.item("flow:aorta").provenance.parameters["segment_names"])
    for k in ("mean_flow_ml_s", "min_flow_ml_s", "max_flow_ml_s", "pressure_drop_mmhg", "pressure_ratio",
              "segment_length_mm", "segment_branch", "segment_parent"):
        assert a[k].shape == (n,), k
    assert a["mean_pressure_mmhg"].shape == (n, 2)
    assert a["time_s"].shape == (200,) and a["outlet_flow_ml_s"].shape == (200, 2)
    assert int(a["pulsatile"]) == 1
    k = int(a["stenosis_segment"][0])
    assert 0 < a["stenosis_pressure_ratio"][0] < 1 and a["pressure_drop_mmhg"][k] > 0
    b = case.item("flow:aorta:stent").value
    assert b["pressure_drop_mmhg"][k] < a["pressure_drop_mmhg"][k]
    assert b["stent_diameter_mm"].tolist() == [18.0]
    assert "<- stent 18 mm" in out.summary["stent"]["text"]
    assert out.summary["rows"][0]["vessel"] == "aorta"


def test_round_trip_and_staleness(flow_case, tmp_path):
    case, _ = flow_case
    path = pipeline.save_case(case, tmp_path / "y.stwin")
    back = pipeline.load_case(path)
    for key in ("centerlines:aorta", "flow:aorta", "flow:aorta:stent"):
        assert not back.is_stale(key)
        for name, arr in case.item(key).value.items():
            np.testing.assert_array_equal(back.item(key).value[name], arr)
    # the flow step reuses the current centerlines item
    again = pipeline.run_step(back, "flow")
    assert set(again.items) == {"flow:aorta"}
    lab = back.labels
    arr = lab.array.copy()
    arr[arr == 3] = 0
    back.set_labels(LabelMap(arr, lab.affine, labels=lab.labels))
    assert back.is_stale("centerlines:aorta") and back.is_stale("flow:aorta")


def test_refusals():
    case = y_case()
    with pytest.raises(SurgtwinError, match="no structure 'nope'"):
        pipeline.run_step(case, "centerline", structures=["nope"])
    with pytest.raises(SurgtwinError, match="2 disconnected pieces"):
        pipeline.run_step(case, "centerline", structures=["aorta", "renal_artery_left"])
    with pytest.raises(SurgtwinError, match="no segment or stenosis 'x9'"):
        pipeline.run_step(case, "flow", stent={"x9": 10})
    out = pipeline.run_step(case, "centerline", structures=["1", "2", "3"], tree="values")
    assert case.item("centerlines:values") is not None and out.summary["key"] == "centerlines:values"
