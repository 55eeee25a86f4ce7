"""A real CT whose aorta leaves the top of the scan: TAVR must refuse, not measure nonsense.

TotalSegmentator 2.18.0's test CT (abdomen, 3 mm) and its segmentation (aorta = label 52): the
aorta's proximal part is cut by the top of the scan, its other end is the iliac bifurcation."""

from __future__ import annotations

import numpy as np
import pytest

from surgtwin.cli.main import main
from tests.cli.test_cli_case import one_line_error

pytestmark = pytest.mark.network


def test_aorta_cut_by_the_scan_top_is_refused(totalseg_reference, tmp_path, capsys):
    import nibabel as nib

    seg = nib.load(str(totalseg_reference / "example_seg_fast_force_split.nii.gz"))
    aorta = (np.asarray(seg.dataobj) == 52).astype(np.uint8)
    assert aorta.sum() > 1000
    mask = tmp_path / "aorta.nii.gz"
    nib.save(nib.Nifti1Image(aorta, seg.affine), str(mask))
    ct = totalseg_reference / "example_ct.nii.gz"
    assert main(["plan", "tavr", str(ct), "--labels", str(mask), "--json", str(tmp_path / "o.json")]) == 2
    err = one_line_error(capsys.readouterr().err)
    assert "aortic root is not in the field of view" in err and "superior end" in err
    assert not (tmp_path / "o.json").exists()
