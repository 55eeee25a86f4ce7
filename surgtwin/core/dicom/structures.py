"""Structures as DICOM objects describe them: codes, colours, and per-structure masks into one label map.

* ``coded_type(label)`` / ``code_text(value, scheme)``: a ``Label.code`` (``"SCT:10200004"``) as a DICOM
  coded concept and back. A structure without a code is written as SNOMED "Anatomical structure"
  (``GENERIC_TYPE``) and read back without a code.
* ``StructureMasks``: the masks of the structures an imported SEG or RTSTRUCT holds (each a bounding
  box and a boolean sub-array, so a few hundred structures fit in memory), combined into one label
  array where **the smaller structure wins an overlap** (an organ inside a body outline keeps its
  voxels whatever the order of the file); overlaps are reported as warnings.

No pydicom/highdicom import at module level: callers import this from the CLI's import path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from surgtwin.core.errors import SurgtwinError

#: (value, scheme, meaning) used as the type of a structure that has no code
GENERIC_TYPE = ("91723000", "SCT", "Anatomical Structure")
#: SEG segmented property category of organs/tissues, and of lesions (by structure name)
CATEGORY_ANATOMY = ("91723000", "SCT", "Anatomical Structure")
CATEGORY_LESION = ("49755003", "SCT", "Morphologically Abnormal Structure")
LESION_WORDS = ("tumour", "tumor", "lesion", "calcification", "nodule", "metasta", "cyst")
#: prefix of the SegmentDescription surgtwin writes so that a round trip keeps the label values
VALUE_TAG = "surgtwin label value "
#: largest label value a label map may hold
MAX_VALUE = 65535


def split_code(code: str | None) -> tuple[str, str] | None:
    """``"SCT:10200004"`` -> ``("SCT", "10200004")``; None when there is no usable code."""
    if not code or ":" not in code:
        return None
    scheme, value = code.split(":", 1)
    scheme, value = scheme.strip(), value.strip()
    return (scheme, value) if scheme and value else None


def coded_type(name: str, code: str | None) -> tuple[str, str, str]:
    """(value, scheme, meaning) of a structure's property type."""
    parts = split_code(code)
    if parts is None:
        return GENERIC_TYPE
    scheme, value = parts
    return (value, scheme, name[:64] or value)


def coded_category(name: str) -> tuple[str, str, str]:
    """(value, scheme, meaning) of a structure's property category, guessed from its name."""
    low = name.lower()
    return CATEGORY_LESION if any(w in low for w in LESION_WORDS) else CATEGORY_ANATOMY


def code_text(value: str | None, scheme: str | None) -> str | None:
    """A coded concept read from a file as a ``Label.code`` (None for the generic type)."""
    if not value or not scheme:
        return None
    value, scheme = str(value).strip(), str(scheme).strip()
    if (value, scheme) == GENERIC_TYPE[:2]:
        return None
    return f"{scheme}:{value}"[:64]


def clean_name(text, fallback: str) -> str:
    """A structure name from a file: printable, stripped, at most 64 characters."""
    s = "".join(ch for ch in str(text or "") if ch.isprintable()).strip()
    return s[:64] or fallback


def rgb_from_cielab(value) -> tuple[int, int, int] | None:
    """RecommendedDisplayCIELabValue (three 0..65535 integers) as 8-bit RGB, None if unusable."""
    try:
        from highdicom.color import CIELabColor

        rgb = CIELabColor.from_dicom_value([int(v) for v in value]).to_rgb()
        return tuple(int(min(255, max(0, c))) for c in rgb)  # type: ignore[return-value]
    except Exception:  # noqa: BLE001 - a bad colour only loses the colour
        return None


@dataclass
class StructureMask:
    value: int
    name: str
    color: tuple[int, int, int] | None
    code: str | None
    box: tuple[slice, slice, slice] | None  # None: an empty structure
    mask: np.ndarray | None

    @property
    def n_voxels(self) -> int:
        return 0 if self.mask is None else int(np.count_nonzero(self.mask))


@dataclass
class StructureMasks:
    """Per-structure masks on one grid, combined into one label array by ``to_array``."""

    shape: tuple[int, int, int]
    items: list[StructureMask] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, value: int, name: str, mask: np.ndarray | None, *, color=None, code=None) -> None:
        """Add a structure; ``mask`` is a full-grid boolean array (stored cropped to its box)."""
        if not 0 < int(value) <= MAX_VALUE:
            raise SurgtwinError(f"structure {name!r}: label value {value} is outside 1..{MAX_VALUE}")
        if any(it.value == value for it in self.items):
            raise SurgtwinError(f"structure {name!r}: label value {value} is used twice")
        box, sub = None, None
        if mask is not None and mask.any():
            idx = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
            box = tuple(slice(int(i[0]), int(i[-1]) + 1) for i in idx)
            sub = np.ascontiguousarray(mask[box])
        self.items.append(StructureMask(int(value), name, color, code, box, sub))

    def to_array(self) -> np.ndarray:
        """The label array (uint8, or uint16 for values over 255): smaller structures painted last."""
        top = max((it.value for it in self.items), default=0)
        out = np.zeros(self.shape, np.uint8 if top < 256 else np.uint16)
        order = sorted((it for it in self.items if it.box is not None), key=lambda it: -it.n_voxels)
        for it in order:
            region = out[it.box]
            hit = region[it.mask]
            taken = np.unique(hit[hit > 0])
            if taken.size:
                names = {o.value: o.name for o in self.items}
                over = ", ".join(names.get(int(v), str(v)) for v in taken[:4])
                self.warnings.append(f"{it.name} overlaps {over} in {int(np.count_nonzero(hit > 0))} voxels "
                                     "(an overlap voxel keeps the smaller structure)")
            region[it.mask] = it.value
        return out

    def empty_names(self) -> list[str]:
        return [it.name for it in self.items if it.box is None]

    def to_labelmap(self, grid, *, path, source: str, notes=()):
        """The label map on ``grid`` (a ``Volume``) with its table; ``metadata``: ``warnings`` (``notes``
        first, then overlaps, losses and empty structures), ``path`` and ``source`` (the format read)."""
        from surgtwin.core.labels_io import default_color
        from surgtwin.core.types import Label, LabelMap, LabelTable

        array = self.to_array()
        warnings = [*notes, *self.warnings]
        if self.empty_names():
            warnings.append(f"empty in this image: {', '.join(self.empty_names())}")
        table = LabelTable(Label(it.value, it.name, it.color or default_color(it.value), it.code) for it in self.items)
        meta = {"warnings": warnings, "path": str(path), "source": source}
        return LabelMap(array, grid.affine.copy(), grid.frame_of_reference_uid, None, meta, labels=table)
