"""Classical fallback: bone by threshold + components, contrast vessel grown from a seed."""

from __future__ import annotations

import numpy as np
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.segmentation import segment
from surgtwin.core.types import Volume


def _synthetic(rng_seed=0):
    """Soft tissue with: a contrast tube (aorta, 350 HU) next to a vertebra-like bone block (cortex 900,
    marrow 200 HU), a separate small contrast blob (not connected), a bright speck of noise."""
    rng = np.random.default_rng(rng_seed)
    shape = (50, 60, 60)
    hu = rng.normal(40, 12, shape)
    k, j, i = np.indices(shape)
    tube = (j - 20) ** 2 + (i - 30) ** 2 <= 6**2
    hu[tube] = 350 + rng.normal(0, 12, tube.sum())
    bone = (np.abs(j - 40) <= 8) & (np.abs(i - 30) <= 8) & (k >= 5) & (k < 45)
    marrow = (np.abs(j - 40) <= 6) & (np.abs(i - 30) <= 6) & (k >= 7) & (k < 43)
    hu[bone] = 900
    hu[marrow] = 200
    blob = (k - 25) ** 2 + (j - 10) ** 2 + (i - 52) ** 2 <= 3**2
    hu[blob] = 330
    hu[25, 55, 5] = 1200  # one-voxel speck
    vol = Volume(hu.astype(np.int16), np.diag([1.0, 1.0, 1.0, 1.0]), modality="CT")
    return vol, tube, bone, blob


def _dice(a, b):
    return 2 * np.sum(a & b) / (a.sum() + b.sum())


def test_bone_and_vessel_from_seed():
    vol, tube, bone, blob = _synthetic()
    seed = vol.index_to_world([25, 20, 30])
    res = segment(vol, method="classical", seed_lps=seed)
    lab = res.labels
    assert lab.same_geometry(vol)
    v = lab.mask("vessels")
    b = lab.mask("bone")
    assert _dice(v, tube) > 0.95
    assert not (v & blob).any()  # not connected to the seed
    assert _dice(b, bone) > 0.97  # marrow filled, speck dropped
    assert lab.array[25, 55, 5] == 0
    assert res.structure("bone").volume_ml == pytest.approx(bone.sum() / 1000.0, rel=0.05)


def test_seed_outside_or_in_soft_tissue_is_refused():
    vol, *_ = _synthetic()
    with pytest.raises(SurgtwinError, match="outside the volume"):
        segment(vol, method="classical", seed_lps=[500.0, 0.0, 0.0])
    with pytest.raises(SurgtwinError, match="no contrast-filled voxels"):
        segment(vol, method="classical", seed_lps=vol.index_to_world([25, 5, 5]))


@pytest.mark.slow
def test_classical_on_a_phantom():
    phantom = pytest.importorskip("surgtwin.core.phantom")
    case = phantom.generate_case("abdomen-pelvis", 9101, pixel_mm=2.0, slice_mm=2.5)
    L = phantom.LABEL_VALUES
    aorta = case.labels.array == L["aorta"]
    seed = case.ct.index_to_world(np.argwhere(aorta)[len(np.argwhere(aorta)) // 2])
    res = segment(case.ct, method="classical", seed_lps=seed)
    truth_bone = np.isin(case.labels.array, [L[n] for n in ("vertebrae", "pelvis", "femur_left", "femur_right",
                                                           "medullary_canal", "ribs", "sternum")])
    d_bone = _dice(res.labels.mask("bone"), truth_bone)
    d_aorta = _dice(res.labels.mask("vessels") & aorta, aorta)  # recall-like: aorta found from the seed
    assert d_bone > 0.8, d_bone
    assert d_aorta > 0.8, d_aorta


def test_classical_keeps_the_brain_out_of_the_skull_bone():
    """Marrow filling takes narrow cavities only: the cranium must not be filled with 'bone'."""
    import surgtwin
    from surgtwin.core.segmentation.classical import segment_classical
    from surgtwin.core.types import LabelTable
    from surgtwin.resources import sample_root

    case = sample_root() / "head"
    if not (case / "labels.nii.gz").exists():
        pytest.skip("sample case 'head' not generated")
    ct = surgtwin.load_volume(case / "dicom")
    gt = surgtwin.load_volume(case / "labels.nii.gz")
    table = LabelTable.load(case / "labels.json")
    bone = segment_classical(ct, vessels=False).array == 1
    skull = gt.array == table.by_name("skull").value
    white = gt.array == table.by_name("brain_white_matter").value
    assert (bone & skull).sum() / skull.sum() > 0.95
    assert (bone & white).sum() / white.sum() < 0.05
