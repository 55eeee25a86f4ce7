"""Poses (JSON round trips, construction from an axis) and placed implants."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.plan import implants
from surgtwin.core.plan.pose import PlacedImplant, Pose, next_id, placements_from_json, placements_to_json


def test_pose_json_round_trip_is_exact():
    p = Pose.from_rotvec([12.5, -40.0, 73.0], [10.25, -3.5, 120.0])
    back = Pose.from_json(json.loads(json.dumps(p.to_json())))
    np.testing.assert_array_equal(back.matrix, p.matrix)
    d = p.to_json()
    via_rotvec = Pose.from_json({"rotation_vector_deg": d["rotation_vector_deg"], "translation_mm": d["translation_mm"]})
    np.testing.assert_allclose(via_rotvec.matrix, p.matrix, atol=1e-6)
    np.testing.assert_allclose(p.then(p.inverse()).matrix, np.eye(4), atol=1e-12)


def test_pose_from_axis():
    p = Pose.from_axis([1, 2, 3], [0, 0, -2], x_hint_lps=[1, 1, 0])
    np.testing.assert_allclose(p.axis_lps, [0, 0, -1])
    np.testing.assert_allclose(p.apply([0, 0, 10]), [1, 2, -7])
    np.testing.assert_allclose(p.rotation[:, 0], [np.sqrt(0.5), np.sqrt(0.5), 0])
    q = Pose.from_json({"origin_lps": [1, 2, 3], "axis_lps": [0, 0, -2], "x_hint_lps": [1, 1, 0]})
    np.testing.assert_allclose(q.matrix, p.matrix)
    moved = p.moved(translate_lps=[0, 0, 5], rotate_deg_local=[0, 0, 90])
    np.testing.assert_allclose(moved.translation_mm, [1, 2, 8])
    np.testing.assert_allclose(moved.axis_lps, [0, 0, -1], atol=1e-12)


@pytest.mark.parametrize("bad, reason", [
    ({"matrix": np.diag([2, 1, 1, 1]).tolist()}, "orthonormal"),
    ({"matrix": np.diag([-1, 1, 1, 1]).tolist()}, "orthonormal"),
    ({"axis_lps": [0, 0, 0], "origin_lps": [0, 0, 0]}, "non-zero"),
    ({"translation_mm": [0, "x", 0]}, "malformed"),
    ({"foo": 1}, "has none of"),
    ([1, 2], "JSON object"),
])
def test_bad_poses_are_refused(bad, reason):
    with pytest.raises(SurgtwinError, match=reason):
        Pose.from_json(bad)


def test_placed_implant_round_trip_and_world_mesh():
    imp = implants.family("pedicle-screw").implant("6.5x45")
    pose = Pose.from_rotvec([0, 90, 0], [10, 20, 30])
    placed = PlacedImplant("1", "L4 left screw", imp, pose, {"vertebra": "L4", "side": "left"}, "auto")
    data = json.loads(json.dumps(placements_to_json([placed])))
    (back,) = placements_from_json(data)
    assert (back.id, back.name, back.target, back.method) == ("1", "L4 left screw", {"vertebra": "L4", "side": "left"},
                                                             "auto")
    np.testing.assert_array_equal(back.pose.matrix, pose.matrix)
    wm = back.world_mesh()
    tip_local = imp.mesh().vertices[np.argmax(imp.mesh().vertices[:, 2])]
    np.testing.assert_allclose(tip_local, [0, 0, 45])
    assert np.isclose(np.linalg.norm(wm.vertices - [10, 20, 30], axis=1).max(), np.linalg.norm(
        imp.mesh().vertices, axis=1).max())
    np.testing.assert_allclose(wm.vertices[np.argmax(imp.mesh().vertices[:, 2])], [55, 20, 30], atol=1e-9)
    assert wm.quality.watertight and wm.name == "implant_1"
    assert next_id([placed]) == "2"
    with pytest.raises(SurgtwinError, match="id twice"):
        placements_from_json(data + data)
