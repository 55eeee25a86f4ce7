"""FE benchmark (issue 13): a ~200k-tet P1 elasticity problem from the sample patient.

The femur_left of the abdomen-pelvis sample at ``--size-mm`` (1.95 mm: ~204k tetrahedra), bone moduli
from its CT (``BoneMaterial`` defaults: rho = 0.001 HU, E = 6850 rho^1.49 MPa), the hip joint force
for walking (2.5 x 75 kg) on the femoral head and the distal femur fixed. Timed:

* assembly: ``surgtwin.core.sim.assemble_stiffness`` (3x3 blocks, as ``solve_static`` uses it; median of
  ``--repeats``) vs scikit-fem's ``asm``
  of ``linear_elasticity`` with per-element Lame parameters (once; the matrices are compared);
* solve: pyamg smoothed aggregation + CG to a true relative residual of 1e-9 (median of ``--repeats``)
  vs SuperLU ``spsolve`` on the same eliminated system (once: minutes), and the relative difference
  of the two displacement fields;
* peak memory: tracemalloc peak of the assembly and of the AMG solve, and the process's maximum
  resident set size after the fast parts and at the end (``resource.getrusage``);
* also: the same mesh with a titanium hip stem (the implant engineer's automatic pose, size 4):
  AMG-CG only (iterations, time), to show the solver with a 110 GPa / 5 MPa contrast.

Wall times on a shared machine vary; the CPU time of this process and the load average are printed
beside them.

    .venv/bin/python scripts/bench/fem_bench.py [--size-mm 1.95] [--repeats 3] [--skip-direct] [--skip-skfem]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
import tracemalloc

import numpy as np


def timed(fn, repeats: int):
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return out, statistics.median(walls), statistics.median(cpus), walls


def peak_traced(fn):
    tracemalloc.start()
    out = fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, peak / 2**20


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mm", type=float, default=1.95)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-direct", action="store_true", help="no SuperLU solve (it takes minutes)")
    ap.add_argument("--skip-skfem", action="store_true", help="no scikit-fem assembly")
    ap.add_argument("--skip-implant", action="store_true", help="no implanted solve")
    args = ap.parse_args()

    from surgtwin import resources
    from surgtwin.core.mesh.tetra import tet_mesh
    from surgtwin.core.sim import BoneMaterial, assemble_stiffness, hip_loading, solve_elasticity
    from surgtwin.core.sim.elasticity import skfem_stiffness
    from surgtwin.services.pipeline import new_case

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores)")
    case = new_case(resources.sample_root() / "abdomen-pelvis")
    t = time.perf_counter()
    mesh = tet_mesh(case.labels, ["femur_left"], size_mm=args.size_mm, ct=case.volume)
    print(f"mesh: femur_left at {args.size_mm} mm: {len(mesh.elements)} tetrahedra, {len(mesh.nodes)} nodes, "
          f"{3 * len(mesh.nodes)} dofs ({time.perf_counter() - t:.1f} s to mesh)")
    e = BoneMaterial().modulus_mpa(mesh.mean_hu)
    load = hip_loading(mesh, load="walking", body_weight_kg=75.0, side="left")
    print(f"bone E {e.min():.0f}..{e.max():.0f} MPa (median {np.median(e):.0f}); {load.description}")
    f = load.force_n.ravel()

    def asm():
        return assemble_stiffness(mesh.nodes, mesh.elements, e, 0.3, fmt="bsr")  # as solve_static does

    k, asm_peak = peak_traced(asm)
    k, asm_wall, asm_cpu, asm_all = timed(asm, args.repeats)
    print(f"assembly (vectorised P1): median {asm_wall:.2f} s wall, {asm_cpu:.2f} s CPU "
          f"(runs {', '.join(f'{x:.2f}' for x in asm_all)}); nnz {k.nnz}; tracemalloc peak {asm_peak:.0f} MiB")

    def amg():
        return solve_elasticity(k, f, load.fixed_dofs, mesh.nodes, rtol=1e-9)

    _, amg_peak = peak_traced(amg)
    (u_amg, info), amg_wall, amg_cpu, amg_all = timed(amg, args.repeats)
    print(f"AMG-CG solve: median {amg_wall:.2f} s wall, {amg_cpu:.2f} s CPU (runs {', '.join(f'{x:.2f}' for x in amg_all)}); "
          f"setup {info.setup_s:.2f} s + CG {info.solve_s:.2f} s, {info.iterations} iterations, true relative "
          f"residual {info.residual:.2e}; tracemalloc peak {amg_peak:.0f} MiB")
    total = asm_wall + amg_wall
    print(f"assembly + solve: {total:.2f} s wall ({asm_cpu + amg_cpu:.2f} s CPU); target <= 10 s: "
          f"{'met' if total <= 10 else 'NOT met'}")
    print(f"max RSS after the fast parts: {maxrss_mb():.0f} MiB")

    if not args.skip_skfem:
        w, c = time.perf_counter(), time.process_time()
        ks = skfem_stiffness(mesh.nodes, mesh.elements, e, 0.3)
        sk_wall, sk_cpu = time.perf_counter() - w, time.process_time() - c
        rel = float(abs(k.tocsr() - ks).max() / abs(ks).max())
        print(f"scikit-fem asm: {sk_wall:.2f} s wall, {sk_cpu:.2f} s CPU; max |K - K_skfem| / max |K_skfem| = {rel:.1e}; "
              f"vectorised assembly {sk_wall / asm_wall:.1f}x faster")
        del ks

    if not args.skip_direct:
        w, c = time.perf_counter(), time.process_time()
        u_lu, info_lu = solve_elasticity(k, f, load.fixed_dofs, mesh.nodes, method="direct")
        lu_wall, lu_cpu = time.perf_counter() - w, time.process_time() - c
        diff = float(np.linalg.norm(u_amg - u_lu) / np.linalg.norm(u_lu))
        print(f"SuperLU spsolve: {lu_wall:.1f} s wall, {lu_cpu:.1f} s CPU, residual {info_lu.residual:.1e}")
        print(f"|u_amg - u_direct| / |u_direct| = {diff:.2e} (target <= 1e-6: {'met' if diff <= 1e-6 else 'NOT met'}); "
              f"max displacement {np.abs(u_lu).max():.4f} mm")
        print(f"spsolve / AMG-CG solve = {lu_wall / amg_wall:.0f}x; spsolve / (assembly + AMG-CG) = "
              f"{lu_wall / total:.0f}x (target >= 30x)")

    if not args.skip_implant:
        from surgtwin.core.plan.voxelise import implant_labels
        from surgtwin.core.sim.materials import implant_material
        from surgtwin.core.sim.scenarios import setup_for
        from surgtwin.core.sim.study import stress_shielding
        from surgtwin.services import pipeline
        from surgtwin.services.implants import placements

        pipeline.run_step(case, "implant", family="hip-stem", size="4", femur="left")
        placed = placements(case)[0]
        lab = implant_labels(case.labels, [placed])
        m2 = tet_mesh(lab, ["femur_left", "implant_1"], size_mm=args.size_mm, ct=case.volume)
        region = lab.labels.by_name("implant_1").value
        setup = setup_for(m2, placed, region)
        w = time.perf_counter()
        res = stress_shielding(m2, implant_regions=[region], bone=BoneMaterial(), implant=implant_material("ti6al4v"),
                               intact_loading=setup.intact_loading, implanted_loading=setup.implanted_loading,
                               zones=setup.zones, zone_names=setup.zone_names, resected=setup.resected)
        im = res.implanted
        print(f"with a Ti hip stem (size 4): {len(m2.elements)} tetrahedra; intact + implanted (2 assemblies + 2 "
              f"solves) {time.perf_counter() - w:.1f} s wall; implanted AMG-CG {im.info.iterations} iterations "
              f"({im.info.setup_s + im.info.solve_s:.2f} s), residual {im.info.residual:.1e}")
    print(f"max RSS at the end: {maxrss_mb():.0f} MiB; load average at the end: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
