"""The bundled model on phantoms it never saw in training (seed 9100; training used 1000-1007,
validation 500, the benchmark 9000-9004).

The floors are regression floors, NOT the product goals (0.90/0.95): model 0.1.0 is under-trained
(see assets/models/surgtwin_ct_multiorgan/docs/README.md). Measured on seed 9100 at 3 mm with the stage-2
weights when the floors were set (stage 3 only raised them): abdomen liver 0.43, pelvis 0.56, lungs 0.91/0.83; head skull 0.89, brain 0.89;
cardiac left ventricle 0.83, lungs 0.88/0.90. A broken model, preprocessing or geometry drops these
to ~0 and fails. Only structures the model does segment are checked."""

from __future__ import annotations

import numpy as np
import pytest

from surgtwin.core.segmentation import default_bundle_dir, load_bundle, segment

pytestmark = pytest.mark.skipif(not (default_bundle_dir() / "models" / "model.pt").exists(),
                                reason="bundled model not installed")


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(default_bundle_dir())


def _dice(a, b):
    return 2.0 * np.sum(a & b) / max(1, a.sum() + b.sum())


def _case(kind, seed):
    phantom = pytest.importorskip("surgtwin.core.phantom")
    from surgtwin.core.segmentation.classes import phantom_to_channels

    case = phantom.generate_case(kind, seed, pixel_mm=3.0, slice_mm=3.0)
    return case, phantom_to_channels(case.labels.array, case.labels.labels)


# structure -> minimum Dice on a small unseen phantom (3 mm grid)
ABDOMEN_MIN = {"liver": 0.25, "pelvis": 0.35, "lung_left": 0.75, "lung_right": 0.65}
HEAD_MIN = {"skull": 0.75, "brain": 0.75}
CARDIAC_MIN = {"left_ventricle": 0.65, "lung_left": 0.70, "lung_right": 0.70}


@pytest.mark.parametrize("kind,minimum", [
    pytest.param("abdomen-pelvis", ABDOMEN_MIN, marks=pytest.mark.slow),
    ("head", HEAD_MIN),  # small and quick (~5 s)
    ("cardiac-cta", CARDIAC_MIN),  # ~2 s
])
def test_dice_on_unseen_phantom(bundle, kind, minimum):
    case, truth = _case(kind, 9100)
    res = segment(case.ct, bundle=bundle)
    assert res.labels.same_geometry(case.ct)
    names = bundle.channel_names
    values = bundle.channel_values
    low = {}
    for name, lo in minimum.items():
        c = names.index(name)
        d = _dice(res.labels.array == values[c], truth == c)
        if d < lo:
            low[name] = round(float(d), 3)
    assert not low, f"Dice below the floor: {low}"
    # report: volumes and confidences are there for every structure found
    for s in res.structures:
        assert s.volume_ml > 0 and 0.0 < s.confidence <= 1.0
