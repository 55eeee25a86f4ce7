"""Synthetic patients ("phantoms") with ground truth: anatomy from smooth implicit shapes, realistic
CT synthesis and known quantities, for the sample cases, tests and segmentation training.

Public API::

    case = generate_case("cardiac-cta", seed=7, pixel_mm=1.5, slice_mm=1.5)
    case.ct       # Volume, int16 HU, modality "CT"
    case.labels   # LabelMap on the same grid (global label values: surgtwin.core.phantom.labels)
    case.known    # known quantities (annulus_perimeter_mm, stenosis_percent, volume_ml[...], ...)
    write_case(case, "out/cardiac-cta")   # dicom/, labels.nii.gz, labels.json, PROVENANCE.md
"""

from surgtwin.core.phantom.case import (
    CASE_KINDS,
    GENERATOR_VERSION,
    PhantomCase,
    generate_case,
    provenance_text,
    write_case,
)
from surgtwin.core.phantom.labels import L as LABEL_VALUES
from surgtwin.core.phantom.labels import label_table

__all__ = ["CASE_KINDS", "GENERATOR_VERSION", "LABEL_VALUES", "PhantomCase", "generate_case", "label_table",
           "provenance_text", "write_case"]
