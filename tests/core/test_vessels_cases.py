"""Centerlines on cases with known truth: the abdomen-pelvis sample's designed stenosis, another
phantom seed, and a real abdomen CT segmented by TotalSegmentator (its sdist's test files)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from surgtwin.core.vessels import extract_centerlines

TREE = ("aorta", "iliac_artery_left", "iliac_artery_right")


def known_of(folder: Path) -> dict:
    text = (folder / "PROVENANCE.md").read_text()
    return json.loads(text[text.index("```json") + 7:text.index("```", text.index("```json") + 7)])


def aorta_stenosis(labels, known):
    vals = [labels.labels.by_name(n).value for n in TREE]
    g = extract_centerlines(np.isin(labels.array, vals), labels.affine, labels=labels.array)
    aorta = labels.labels.by_name("aorta").value
    on_aorta = [s for s in g.stenoses if g.branches[s.branch].label == aorta]
    assert len(on_aorta) == 1, [s.as_dict() for s in g.stenoses]
    s = on_aorta[0]
    assert s.diameter_percent == pytest.approx(known["stenosis_percent"], abs=5.0)
    assert np.linalg.norm(s.position_lps - np.asarray(known["stenosis_centre_lps"])) < 6.0
    return g, s


@pytest.mark.slow
def test_abdomen_sample_stenosis_within_5_points():
    from surgtwin.services import pipeline

    case = pipeline.new_case(pipeline.sample_root() / "abdomen-pelvis")
    known = known_of(pipeline.sample_root() / "abdomen-pelvis")
    g, s = aorta_stenosis(case.labels, known)
    assert s.reference_diameter_mm == pytest.approx(known["stenosis_reference_diameter_mm"], rel=0.08)
    assert s.min_diameter_mm == pytest.approx(known["stenosis_min_diameter_mm"], abs=1.0)
    assert g.branches[0].label == case.labels.labels.by_name("aorta").value  # rooted at the aorta's top
    assert len(g.branches) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 8])
def test_other_phantom_seeds(seed):
    from surgtwin.core.phantom import generate_case

    pc = generate_case("abdomen-pelvis", seed, pixel_mm=1.5, slice_mm=3.0)
    aorta_stenosis(pc.labels, pc.known)


@pytest.mark.network
def test_real_ct_totalsegmentator_aorta_iliacs(totalseg_reference):
    from surgtwin.services import pipeline

    ct = pipeline.load_volume(totalseg_reference / "example_ct.nii.gz")
    lab = pipeline.load_labels(totalseg_reference / "example_seg_fast_force_split.nii.gz", ct)
    mask = np.isin(lab.array, [52, 65, 66])  # TotalSegmentator v2: aorta, iliac_artery_left/right
    g = extract_centerlines(mask, lab.affine, labels=lab.array)
    labels = {b.label for b in g.branches}
    assert {52, 65, 66} <= labels
    root = g.branches[0]
    assert root.label == 52 and root.parent == -1
    # an adult abdominal aorta: 15-30 mm across; iliac arteries 6-14 mm
    assert 7.5 < root.mean_radius_mm < 15.0 and root.length_mm > 80.0
    for b in g.branches:
        if b.label in (65, 66):
            assert 3.0 < b.mean_radius_mm < 7.0
    # the iliacs leave the aorta at its distal end (the tree is rooted at the proximal, widest end)
    assert root.points_lps[0][2] > root.points_lps[-1][2]
