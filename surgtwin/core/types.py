"""Core data types: ``Volume`` and ``LabelMap``.

Conventions (fixed here, never guessed elsewhere)
-------------------------------------------------
* **Array axis order is (slice, row, column)**, i.e. ``array[k, j, i]``:
  ``k`` runs along the slice stacking direction, ``j`` down the rows of a DICOM image (along the
  column direction cosine), ``i`` along a row (along the row direction cosine). This is the order
  of ``SimpleITK.GetArrayFromImage`` and of a stack of DICOM ``pixel_array`` frames.
* **The affine maps array indices, in that same order, to patient LPS millimetres**::

      [x_L, y_P, z_S, 1]^T = affine @ [k, j, i, 1]^T

  so ``affine[:3, 0]`` is the step between slices, ``affine[:3, 1]`` the step between rows
  (``PixelSpacing[0]`` times the column cosine), ``affine[:3, 2]`` the step between columns
  (``PixelSpacing[1]`` times the row cosine) and ``affine[:3, 3]`` the centre of voxel (0, 0, 0).
  Conversions to RAS or to SimpleITK's (x, y, z) index order live in ``surgtwin.core.geometry``.
* CT intensities are Hounsfield units (after RescaleSlope/Intercept).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from surgtwin.core.errors import SurgtwinError


def _check_affine(affine: np.ndarray) -> np.ndarray:
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4):
        raise SurgtwinError(f"affine must be 4x4, got shape {a.shape}")
    if not np.allclose(a[3], [0, 0, 0, 1]):
        raise SurgtwinError("affine's last row must be [0, 0, 0, 1]")
    if abs(np.linalg.det(a[:3, :3])) < 1e-12:
        raise SurgtwinError("affine is singular (zero spacing or degenerate directions)")
    return a


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D image on a regular grid in patient LPS space.

    ``array`` has axes (slice, row, column); ``affine`` maps (k, j, i, 1) to LPS mm.
    """

    array: np.ndarray
    affine: np.ndarray
    frame_of_reference_uid: str | None = None
    modality: str | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim != 3:
            raise SurgtwinError(f"a Volume needs a 3D array, got {arr.ndim} dimensions")
        object.__setattr__(self, "array", arr)
        object.__setattr__(self, "affine", _check_affine(self.affine))

    # -- geometry ---------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing_mm(self) -> np.ndarray:
        """Voxel size along (slice, row, column) in mm."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def origin_lps(self) -> np.ndarray:
        """LPS position (mm) of the centre of voxel (0, 0, 0)."""
        return self.affine[:3, 3].copy()

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix whose columns are unit vectors of the (slice, row, column) axes in LPS."""
        return self.affine[:3, :3] / self.spacing_mm

    @property
    def voxel_volume_ml(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3])) / 1000.0)

    def index_to_world(self, index_kji) -> np.ndarray:
        """(N, 3) or (3,) array indices (k, j, i) -> LPS mm."""
        from surgtwin.core.geometry import apply_affine

        return apply_affine(self.affine, index_kji)

    def world_to_index(self, points_lps) -> np.ndarray:
        """(N, 3) or (3,) LPS mm -> continuous array indices (k, j, i)."""
        from surgtwin.core.geometry import apply_affine

        return apply_affine(np.linalg.inv(self.affine), points_lps)

    def with_array(self, array: np.ndarray) -> Volume:
        """Same geometry and metadata, new voxel data (shape must match)."""
        if tuple(array.shape) != self.shape:
            raise SurgtwinError(f"new array shape {array.shape} differs from {self.shape}")
        return replace(self, array=array)

    def same_geometry(self, other: Volume, *, atol_mm: float = 1e-3) -> bool:
        return self.shape == other.shape and bool(np.allclose(self.affine, other.affine, atol=atol_mm))

    def __repr__(self) -> str:
        sp = ", ".join(f"{s:.3g}" for s in self.spacing_mm)
        return (
            f"Volume(shape={self.shape}, dtype={self.array.dtype}, spacing_mm=({sp}), "
            f"modality={self.modality!r})"
        )


@dataclass(frozen=True)
class Label:
    """One structure of a label map. ``code`` is e.g. ``"SCT:10200004"`` (SNOMED) where known."""

    value: int
    name: str
    color: tuple[int, int, int] = (255, 0, 0)
    code: str | None = None


class LabelTable:
    """Ordered mapping of integer label values to ``Label`` (0 is always background)."""

    def __init__(self, labels=()):
        self._by_value: dict[int, Label] = {}
        for lab in labels:
            self.add(lab)

    def add(self, label: Label) -> None:
        if label.value <= 0:
            raise SurgtwinError(f"label {label.name!r}: value must be a positive integer, got {label.value}")
        if label.value in self._by_value:
            raise SurgtwinError(f"label value {label.value} is used twice in the label table")
        self._by_value[label.value] = label

    def __iter__(self):
        return iter(sorted(self._by_value.values(), key=lambda lab: lab.value))

    def __len__(self) -> int:
        return len(self._by_value)

    def __contains__(self, value: int) -> bool:
        return value in self._by_value

    def __getitem__(self, value: int) -> Label:
        return self._by_value[value]

    def by_name(self, name: str) -> Label:
        for lab in self._by_value.values():
            if lab.name == name:
                return lab
        raise SurgtwinError(f"no structure named {name!r} in the label table", hint=f"known: {self.names()}")

    def names(self) -> list[str]:
        return [lab.name for lab in self]

    def to_json(self) -> list[dict]:
        return [
            {"value": lab.value, "name": lab.name, "color": list(lab.color), "code": lab.code}
            for lab in self
        ]

    @classmethod
    def from_json(cls, items, *, source: str | Path = "label table") -> LabelTable:
        table = cls()
        try:
            for it in items:
                table.add(
                    Label(
                        value=int(it["value"]),
                        name=str(it["name"]),
                        color=tuple(int(c) for c in it.get("color", (255, 0, 0)))[:3],  # type: ignore[arg-type]
                        code=it.get("code"),
                    )
                )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise SurgtwinError(f"malformed label table entry ({type(exc).__name__}: {str(exc)[:80]})",
                                path=source, hint="each entry needs an integer value, a name and an RGB colour") from None
        for lab in table:
            if not all(0 <= c <= 255 for c in lab.color) or len(lab.color) != 3:
                raise SurgtwinError(f"label {lab.value}: colour must be three integers 0-255", path=source)
        return table

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"labels": self.to_json()}, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> LabelTable:
        try:
            p = Path(path)
            if p.stat().st_size > 16 * 1024 * 1024:
                raise SurgtwinError("the label table is implausibly large (over 16 MB)", path=path)
            data = json.loads(p.read_text())
        except (OSError, ValueError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else f"{type(exc).__name__}: {str(exc)[:80]}"
            raise SurgtwinError(f"cannot read the label table ({reason})", path=path) from None
        items = data.get("labels", data) if isinstance(data, dict) else data
        return cls.from_json(items, source=path)


@dataclass(frozen=True, eq=False)
class LabelMap(Volume):
    """A Volume of integer labels plus its label table."""

    labels: LabelTable = field(default_factory=LabelTable)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not np.issubdtype(self.array.dtype, np.integer):
            raise SurgtwinError(f"a LabelMap needs an integer array, got {self.array.dtype}")

    def mask(self, name_or_value) -> np.ndarray:
        value = name_or_value if isinstance(name_or_value, int) else self.labels.by_name(name_or_value).value
        return self.array == value

    def volume_ml(self, name_or_value) -> float:
        return float(self.mask(name_or_value).sum()) * self.voxel_volume_ml
