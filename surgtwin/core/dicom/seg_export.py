"""Label maps as DICOM Segmentation (SEG) and snapshots as Secondary Capture, with highdicom.

Both reference the source series (``SourceSeries``): the SEG through its source images (study,
series, frame of reference and each slice's SOP instance), the Secondary Capture through the study and
a Source Image Sequence listing the series' instances. They return pydicom datasets; the caller
de-identifies (optionally) and saves them.

* SEG: one BINARY multi-segment object, empty frames omitted, Explicit VR Little Endian (what every
  receiver reads; dciodvfy cannot read the deflated syntax and JPEG 2000 needs a decoder on the
  receiving side). Segment ``n`` is the ``n``-th exported structure; its SegmentDescription records the
  surgtwin label value (``VALUE_TAG``) so a round trip keeps the values.
* Secondary Capture: an RGB uint8 (H, W, 3) image, no patient geometry (a rendering has none).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from surgtwin.core.dicom.structures import VALUE_TAG, coded_category, coded_type
from surgtwin.core.errors import SurgtwinError

MANUFACTURER = "surgtwin"
MODEL_NAME = "surgtwin"
DEVICE_SERIAL = "surgtwin"
SEG_SERIES_NUMBER = 9100
SC_SERIES_NUMBER = 9300


def software_version() -> str:
    from surgtwin import __version__

    return str(__version__)


@dataclass(frozen=True)
class SegAlgorithm:
    """How the labels were made: ``kind`` MANUAL, SEMIAUTOMATIC or AUTOMATIC (the last two name an
    algorithm: ``name`` and ``version``)."""

    kind: str = "MANUAL"
    name: str = ""
    version: str = ""


def _concept(triple):
    from highdicom.sr import CodedConcept

    value, scheme, meaning = triple
    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def segment_descriptions(labels, values: list[int], algorithm: SegAlgorithm) -> list:
    """highdicom SegmentDescriptions for the structures ``values`` (segment n = values[n-1])."""
    from highdicom import AlgorithmIdentificationSequence
    from highdicom.color import CIELabColor
    from highdicom.seg import SegmentDescription
    from pydicom.sr.codedict import codes

    ident = None
    if algorithm.kind != "MANUAL":
        ident = AlgorithmIdentificationSequence(name=(algorithm.name or MODEL_NAME)[:64],
                                                family=codes.cid7162.ArtificialIntelligence,
                                                version=(algorithm.version or software_version())[:64])
    out = []
    for n, value in enumerate(values, start=1):
        lab = labels.labels[value] if value in labels.labels else None
        name = lab.name if lab is not None else f"label_{value}"
        code = lab.code if lab is not None else None
        desc = SegmentDescription(
            segment_number=n, segment_label=name[:64],
            segmented_property_category=_concept(coded_category(name)),
            segmented_property_type=_concept(coded_type(name, code)),
            algorithm_type=algorithm.kind, algorithm_identification=ident,
            display_color=CIELabColor(*_lab_of(lab.color)) if lab is not None else None,
        )
        desc.SegmentDescription = f"{VALUE_TAG}{value}"
        out.append(desc)
    return out


def _lab_of(rgb) -> tuple[float, float, float]:
    from highdicom.color import CIELabColor

    c = CIELabColor.from_rgb(*(int(v) for v in rgb))
    return (c.l_star, c.a_star, c.b_star)


def exported_values(labels, structures=None) -> list[int]:
    """The label values to export: every table entry and every value present (``structures``: names to
    keep), in ascending order."""
    present = {int(v) for v in np.unique(labels.array) if v > 0}
    values = sorted(present | {lab.value for lab in labels.labels})
    if structures is None:
        return values
    wanted = []
    for name in structures:
        wanted.append(labels.labels.by_name(name).value)
    return sorted(set(wanted))


def build_seg(labels, source, *, values: list[int], algorithm: SegAlgorithm = SegAlgorithm(),
              series_uid: str | None = None, series_number: int = SEG_SERIES_NUMBER,
              series_description: str = "surgtwin segmentation"):
    """A highdicom ``Segmentation`` (a pydicom Dataset) of ``labels`` on ``source``'s images."""
    import highdicom as hd
    from highdicom.seg import Segmentation

    if not values:
        raise SurgtwinError("there are no structures to export", hint="check the structure names")
    top = max(int(labels.array.max(initial=0)), max(values))
    lut = np.zeros(top + 1, np.uint16 if len(values) > 255 else np.uint8)
    for n, v in enumerate(values, start=1):
        lut[v] = n
    pixels = lut[labels.array]
    seg = Segmentation(
        source_images=source.headers, pixel_array=pixels, segmentation_type="BINARY",
        segment_descriptions=segment_descriptions(labels, values, algorithm),
        series_instance_uid=series_uid or hd.UID(), series_number=int(series_number),
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL_NAME, software_versions=software_version(),
        device_serial_number=DEVICE_SERIAL, content_label="SURGTWIN", content_description="surgtwin label map",
        omit_empty_frames=True,
    )
    seg.SeriesDescription = series_description[:64]
    return seg


def build_secondary_capture(rgb, source, *, title: str, series_uid: str, instance_number: int,
                            series_number: int = SC_SERIES_NUMBER):
    """A Secondary Capture image of ``rgb`` (uint8 (H, W, 3)) in the source's study."""
    import highdicom as hd
    from highdicom.sc import SCImage
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian

    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or min(a.shape[:2]) < 1:
        raise SurgtwinError(f"snapshot {title!r}: need an RGB uint8 image (H, W, 3), got {a.dtype} {a.shape}")
    ref = source.headers[len(source.headers) // 2]
    sc = SCImage.from_ref_dataset(
        ref_dataset=ref, pixel_array=np.ascontiguousarray(a), photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", patient_orientation=("L", "P"), series_instance_uid=series_uid,
        sop_instance_uid=hd.UID(), series_number=int(series_number), instance_number=int(instance_number),
        manufacturer=MANUFACTURER, transfer_syntax_uid=ExplicitVRLittleEndian,
    )
    sc.PatientOrientation = None  # a rendering has no row/column patient directions (type 2C: empty)
    sc.SeriesDescription = "surgtwin snapshots"
    sc.ImageComments = title[:10240]
    sc.DerivationDescription = "surgtwin rendering of the source series (Source Image Sequence)"
    sc.BurnedInAnnotation = "NO"
    if ref.get("BodyPartExamined"):
        sc.BodyPartExamined = ref.BodyPartExamined
    elif "Laterality" not in sc:
        sc.Laterality = None  # type 2C in General Series: unknown body part, so laterality unknown
    items = []
    for cls_uid, uid in zip(source.sop_class_uids, source.sop_instance_uids, strict=True):
        it = Dataset()
        it.ReferencedSOPClassUID = cls_uid
        it.ReferencedSOPInstanceUID = uid
        items.append(it)
    sc.SourceImageSequence = Sequence(items)
    # Common Instance Reference: the series of the instances referenced above (the SC IOD has no
    # Frame of Reference module; the frame of reference is the source images')
    series = Dataset()
    series.SeriesInstanceUID = source.series_uid
    series.ReferencedInstanceSequence = Sequence([copy.deepcopy(it) for it in items])
    sc.ReferencedSeriesSequence = Sequence([series])
    return sc
