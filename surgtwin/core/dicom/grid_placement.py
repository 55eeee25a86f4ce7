"""Put an array that lives on another grid of the same frame of reference onto a case's grid.

``GridPlacement.between(affine, shape, grid)`` looks at how the source grid's indices map onto the
grid's. When that map is a signed permutation of the axes plus a whole-voxel shift (a SEG written on
the same slices, maybe in another slice order or covering only some of them), ``place`` copies voxels
exactly; otherwise it resamples (nearest neighbour) and says so. Voxels that fall outside the grid are
counted, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: how far (in voxels) the maps may be from an axis permutation with whole-voxel shifts
EXACT_TOL_VOX = 1e-3


@dataclass
class GridPlacement:
    affine: np.ndarray  # the source grid's (array index -> LPS mm)
    grid: object  # the target Volume
    axes: tuple[int, int, int] | None  # for target axis q, the source axis that runs along it
    signs: tuple[int, int, int] | None
    starts: tuple[int, int, int] | None

    @classmethod
    def between(cls, affine, shape, grid) -> GridPlacement:
        affine = np.asarray(affine, float)
        T = np.linalg.inv(grid.affine) @ affine  # source index -> target index
        R, t = T[:3, :3], T[:3, 3]
        rounded = np.rint(R)
        exact = (np.allclose(R, rounded, atol=EXACT_TOL_VOX) and np.allclose(np.abs(rounded).sum(axis=0), 1)
                 and np.allclose(np.abs(rounded).sum(axis=1), 1) and np.allclose(t, np.rint(t), atol=EXACT_TOL_VOX))
        if not exact:
            return cls(affine, grid, None, None, None)
        axes, signs, starts = [], [], []
        for q in range(3):
            a = int(np.argmax(np.abs(rounded[q])))
            s = int(rounded[q, a])
            axes.append(a)
            signs.append(s)
            starts.append(int(np.rint(t[q])) - (shape[a] - 1 if s < 0 else 0))
        return cls(affine, grid, tuple(axes), tuple(signs), tuple(starts))  # type: ignore[arg-type]

    @property
    def exact(self) -> bool:
        return self.axes is not None

    def place(self, mask: np.ndarray) -> tuple[np.ndarray, int]:
        """``(target_mask, n_lost)``: ``mask`` (bool, on the source grid) on the target grid, and how many
        of its voxels fell outside the target grid."""
        mask = np.asarray(mask, bool)
        if not self.exact:
            return self._resample(mask)
        arr = np.transpose(mask, self.axes)
        flips = tuple(q for q in range(3) if self.signs[q] < 0)  # type: ignore[index]
        if flips:
            arr = np.flip(arr, flips)
        out = np.zeros(self.grid.shape, bool)
        src, dst = [], []
        for q in range(3):
            lo, n = self.starts[q], arr.shape[q]  # type: ignore[index]
            a, b = max(lo, 0), min(lo + n, self.grid.shape[q])
            if b <= a:
                return out, int(np.count_nonzero(mask))
            dst.append(slice(a, b))
            src.append(slice(a - lo, b - lo))
        inside = arr[tuple(src)]
        out[tuple(dst)] = inside
        return out, int(np.count_nonzero(arr)) - int(np.count_nonzero(inside))

    def _resample(self, mask: np.ndarray) -> tuple[np.ndarray, int]:
        from surgtwin.core.geometry import resample_to
        from surgtwin.core.types import Volume

        src = Volume(mask.astype(np.uint8), self.affine)
        out = resample_to(src, self.grid, interpolation="nearest").array > 0
        idx = np.argwhere(mask).astype(float)  # voxels whose centres map outside the grid are lost
        T = np.linalg.inv(self.grid.affine) @ self.affine
        kji = idx @ T[:3, :3].T + T[:3, 3]
        shape = np.asarray(self.grid.shape, float)
        outside = np.any((kji < -0.5) | (kji >= shape - 0.5), axis=1)
        return out, int(np.count_nonzero(outside))
