"""SynthSeg-style re-synthesis of a CT from its label map (scripts/seg_data.synth_ct; a training option)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import seg_data  # noqa: E402


def _labels():
    ch = np.zeros((24, 20, 16), np.uint8)
    ch[4:12, 4:10, 3:9] = 1
    ch[12:20, 8:16, 6:14] = 5
    ch[2:6, 12:18, 10:15] = 17
    return ch


def test_synth_ct_deterministic_shape_dtype_labels_unchanged():
    ch = _labels()
    before = ch.copy()
    a = seg_data.synth_ct(ch, np.random.default_rng(3))
    b = seg_data.synth_ct(ch, np.random.default_rng(3))
    c = seg_data.synth_ct(ch, np.random.default_rng(4))
    assert a.shape == ch.shape and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    assert np.array_equal(ch, before)
    assert np.isfinite(a).all()


def test_synth_ct_intensity_differs_per_label():
    ch = _labels()
    hu = seg_data.synth_ct(ch, np.random.default_rng(0), blur_max=0.0, noise_max=0.0, bias_max=0.0)
    med = [float(np.median(hu[ch == v])) for v in (0, 1, 5, 17)]
    assert len({round(m) for m in med}) == 4  # each structure its own level
    assert min(abs(x - y) for i, x in enumerate(med) for y in med[i + 1:]) > 1.0
    # a different draw moves the levels
    hu2 = seg_data.synth_ct(ch, np.random.default_rng(1), blur_max=0.0, noise_max=0.0, bias_max=0.0)
    assert abs(float(np.median(hu2[ch == 1])) - med[1]) > 1.0
