"""Mesh benchmark (issue 5): all surfaces of a 512x512x400 label map with 12 labels vs scikit-image
marching cubes label by label, and a femur tet mesh at 2 mm.

    .venv/bin/python scripts/bench/mesh_bench.py [--repeats 3] [--skip-skimage]

scikit-image is only needed for the baseline (dev extra); without it the ratio is not printed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def label_map_512(n_labels: int = 12):
    """512x512x400 uint8 label map of 12 smooth, partly touching ellipsoids (0.7x0.7x1.0 mm)."""
    from surgtwin.core.types import Label, LabelMap, LabelTable

    shape = (400, 512, 512)
    arr = np.zeros(shape, np.uint8)
    rng = np.random.default_rng(5)
    table = []
    for v in range(1, n_labels + 1):
        c = rng.uniform([80, 120, 120], [320, 392, 392])
        r = rng.uniform([25, 30, 30], [60, 70, 70])
        lo = np.maximum(np.floor(c - r).astype(int), 0)
        hi = np.minimum(np.ceil(c + r).astype(int) + 1, shape)
        k, j, i = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        inside = ((k - c[0]) / r[0]) ** 2 + ((j - c[1]) / r[1]) ** 2 + ((i - c[2]) / r[2]) ** 2 < 1
        arr[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]][inside] = v
        table.append(Label(v, f"organ_{v:02d}", tuple(int(x) for x in rng.integers(50, 255, 3))))
    affine = np.diag([1.0, 0.7, 0.7, 1.0])
    affine[:3, 3] = [-150.0, -180.0, -180.0]
    return LabelMap(arr, affine, labels=LabelTable(table))


def femur_labelmap():
    """A femur-like bone (shaft + head + condyles, ~0.8 mm voxels, ~420 mm long)."""
    from surgtwin.core.types import Label, LabelMap, LabelTable

    sp = np.array([1.0, 0.8, 0.8])
    shape = (440, 130, 130)
    k, j, i = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij")
    z, y, x = k * sp[0], (j - 65) * sp[1], (i - 65) * sp[2]
    shaft = (z > 40) & (z < 400) & (x**2 + y**2 < (13 + 0.02 * np.abs(z - 220)) ** 2)
    head = (z - 410) ** 2 + (x - 20) ** 2 + y**2 < 24**2
    neck = (z > 370) & (z < 415) & ((x - 0.5 * (z - 370)) ** 2 + y**2 < 14**2)
    condyles = ((z - 30) ** 2 / 30**2 + (x - 18) ** 2 / 20**2 + y**2 / 30**2 < 1) | (
        (z - 30) ** 2 / 30**2 + (x + 18) ** 2 / 20**2 + y**2 / 30**2 < 1)
    arr = (shaft | head | neck | condyles).astype(np.uint8)
    affine = np.diag([*sp, 1.0])
    return LabelMap(arr, affine, labels=LabelTable([Label(1, "femur", (230, 220, 200))]))


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-skimage", action="store_true")
    args = ap.parse_args()

    from surgtwin.core.mesh.surfaces import surfaces_from_labels
    from surgtwin.core.mesh.tetra import tet_mesh

    lm = label_map_512()
    print(f"label map {lm.shape} ({lm.array.size / 1e6:.0f} M voxels), {len(lm.labels)} labels")
    surfaces_from_labels(lm, labels=[1], smoothing_iterations=0, compute_quality=False)  # warm-up (imports)

    t_nets, meshes = timed(lambda: surfaces_from_labels(lm, smoothing_iterations=0, repair=False,
                                                        compute_quality=False), args.repeats)
    tris = sum(m.n_triangles for m in meshes.values())
    print(f"surface nets, all labels at once, no smoothing:      {t_nets:6.2f} s  ({tris} triangles)")
    t_full, meshes = timed(lambda: surfaces_from_labels(lm), args.repeats)
    tris = sum(m.n_triangles for m in meshes.values())
    closed = sum(m.quality.watertight for m in meshes.values())
    err = max(abs(m.quality.volume_error) for m in meshes.values())
    print(f"full pipeline (smoothing + repair + checks):         {t_full:6.2f} s  ({tris} triangles, "
          f"{closed}/{len(meshes)} watertight, max volume error {err * 100:.2f} %)")

    if not args.skip_skimage:
        try:
            from skimage.measure import marching_cubes
        except ImportError:
            print("scikit-image not installed: no baseline")
        else:
            def skimage_all():
                out = {}
                for lab in lm.labels:
                    mask = lm.array == lab.value
                    v, f, _, _ = marching_cubes(mask.astype(np.uint8), 0.5, spacing=tuple(lm.spacing_mm))
                    out[lab.name] = (v, f)
                return out

            t_sk, sk = timed(skimage_all, args.repeats)
            sk_tris = sum(len(f) for _, f in sk.values())
            print(f"scikit-image marching_cubes, label by label:        {t_sk:6.2f} s  ({sk_tris} triangles)")
            print(f"speed-up surface nets vs marching_cubes: {t_sk / t_nets:5.1f}x ; "
                  f"full pipeline vs marching_cubes: {t_sk / t_full:5.1f}x")

    fem = femur_labelmap()
    ct_arr = np.where(fem.array > 0, 900, 0).astype(np.int16)
    from surgtwin.core.types import Volume

    ct = Volume(ct_arr, fem.affine)
    t_tet, tm = timed(lambda: tet_mesh(fem, "femur", size_mm=2.0, ct=ct), max(1, args.repeats))
    q = tm.quality
    print(f"femur tet mesh at 2 mm: {t_tet:.2f} s, {q.elements} elements, {q.nodes} nodes, "
          f"volume {q.volume_ml['femur']:.1f} ml (voxels {q.voxel_volume_ml['femur']:.1f} ml), "
          f"inverted {q.inverted}, min dihedral {q.min_dihedral_deg:.1f} deg "
          f"(mean of per-element min {q.mean_min_dihedral_deg:.1f}), scaled Jacobian min "
          f"{q.min_scaled_jacobian:.3f} mean {q.mean_scaled_jacobian:.3f}")


if __name__ == "__main__":
    main()
