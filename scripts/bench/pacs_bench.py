#!/usr/bin/env python
"""PACS retrieve figures: one synthetic 300-slice CT series from a local Orthanc, by surgtwin's C-GET and
C-MOVE against DCMTK's ``getscu`` and ``movescu`` on the same series in the same run.

    python scripts/bench/pacs_bench.py [--slices 300] [--size 512] [--repeats 3] [--nagle] [--json OUT.json]

Orthanc is started like the tests start it (tests/pacs/conftest.py: loopback, free ports, a throw-away
configuration and storage folder) and seeded over its REST API with a series written by
``write_ct_series`` (PHANTOM^ patient, uncompressed, so no tool makes Orthanc transcode). Each repeat runs
the four retrieves in turn into fresh folders; figures are medians of ``--repeats`` runs: seconds and
MB/s of DICOM files received. surgtwin's time is what ``services.pacs.retrieve`` costs end to end: its
series-level C-FIND, the transfer, and the verification (every file read back with pydicom) before the
series is moved into the cache; DCMTK's tools only write the files.

Debian's DCMTK (in Orthanc and in the tools) leaves Nagle's algorithm on unless ``TCP_NODELAY=1`` is in
the environment; on loopback every message written in two parts then waits for a delayed ACK. By default
Orthanc and the DCMTK tools run with ``TCP_NODELAY=1`` (surgtwin switches Nagle off on its own sockets);
``--nagle`` runs both with DCMTK's default instead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def write_series(folder: Path, slices: int, size: int) -> list[Path]:
    import numpy as np

    from surgtwin.core.dicom.write import write_ct_series
    from surgtwin.core.types import Volume

    k, j, i = np.ogrid[:slices, :size, :size]
    body = ((j - size / 2) ** 2 + (i - size / 2) ** 2) < (0.42 * size) ** 2
    rng = np.random.default_rng(18)
    hu = np.where(body, 40 + 15 * np.sin(k / 9.0), -1000) + rng.normal(0, 12, (slices, size, size))
    vol = Volume(hu.astype(np.int16), np.diag([1.0, 0.7, 0.7, 1.0]))
    return write_ct_series(vol, folder, patient_name="PHANTOM^PACSBENCH", patient_id="PHANTOM-PACSBENCH",
                           study_description="PACS bench (synthetic)", series_description=f"{slices} slices",
                           uid_seed="pacs-bench", compress=False)


def timed_dir(fn, out: Path) -> tuple[float, int, int]:
    """(seconds, files, bytes) of one retrieve into ``out``."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    fn(out)
    dt = time.perf_counter() - t0
    files = [p for p in out.rglob("*") if p.is_file() and p.suffix != ".json"]
    return dt, len(files), sum(p.stat().st_size for p in files)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--size", type=int, default=512, help="rows = columns of each slice")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--nagle", action="store_true", help="Orthanc and the DCMTK tools with Nagle on (their default)")
    ap.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    args = ap.parse_args()
    for tool in ("Orthanc", "getscu", "movescu"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (apt-get install orthanc dcmtk)", file=sys.stderr)
            return 2

    from surgtwin.services import pacs
    from tests.pacs.conftest import start_orthanc

    work = Path(tempfile.mkdtemp(prefix="pacs-bench-"))
    server = start_orthanc(work / "orthanc", nodelay=not args.nagle)
    tool_env = {**os.environ, "TCP_NODELAY": "0" if args.nagle else "1"}
    try:
        files = write_series(work / "series", args.slices, args.size)
        t0 = time.perf_counter()
        server.upload(files)
        t_seed = time.perf_counter() - t0
        import pydicom

        ds = pydicom.dcmread(files[0], stop_before_pixels=True)
        study, series = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)
        node = server.node
        keys = ["-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={study}", "-k", f"SeriesInstanceUID={series}"]
        common = ["-aet", node.calling_ae, "-aec", node.ae_title, "-S", *keys]

        def surgtwin(method):
            def run(out: Path) -> None:
                os.environ["SURGTWIN_PACS_CACHE"] = str(out)
                pacs.retrieve(node, study, series, method=method)
            return run

        def dcmtk(tool):
            def run(out: Path) -> None:
                extra = ["-aem", node.calling_ae, "--port", str(node.store_port)] if tool == "movescu" else []
                subprocess.run([tool, *common, *extra, "-od", str(out), node.host, str(node.port)], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=tool_env)
            return run

        runs = {"surgtwin C-GET": surgtwin("get"), "DCMTK getscu": dcmtk("getscu"),
                "surgtwin C-MOVE": surgtwin("move"), "DCMTK movescu": dcmtk("movescu")}
        times: dict[str, list[float]] = {k: [] for k in runs}
        sizes: dict[str, tuple[int, int]] = {}
        for _ in range(args.repeats):
            for name, fn in runs.items():
                dt, n, nbytes = timed_dir(fn, work / "out" / name.replace(" ", "_"))
                if n != args.slices:
                    raise SystemExit(f"{name}: {n} of {args.slices} files arrived")
                times[name].append(dt)
                sizes[name] = (n, nbytes)
        med = {k: statistics.median(v) for k, v in times.items()}
        mb = sizes["surgtwin C-GET"][1] / 1e6
        print(f"series: {args.slices} slices of {args.size}x{args.size} CT, uncompressed, {mb:.1f} MB "
              f"(seeded over REST in {t_seed:.1f} s); Orthanc {server.rest('GET', '/system')['Version']}, "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; DCMTK TCP_NODELAY={tool_env['TCP_NODELAY']}; "
              f"medians of {args.repeats}")
        print(f"{'retrieve':<18} {'seconds':>8} {'MB/s':>8}   runs")
        for name in runs:
            print(f"{name:<18} {med[name]:8.2f} {sizes[name][1] / 1e6 / med[name]:8.1f}   "
                  + " ".join(f"{t:.2f}" for t in times[name]))
        print(f"surgtwin C-GET / getscu:   {med['surgtwin C-GET'] / med['DCMTK getscu']:.2f}x time")
        print(f"surgtwin C-MOVE / movescu: {med['surgtwin C-MOVE'] / med['DCMTK movescu']:.2f}x time")
        if args.json:
            Path(args.json).write_text(json.dumps({"slices": args.slices, "size": args.size, "mb": mb,
                                                   "nagle": args.nagle,
                                                   "seconds": times, "median_s": med}, indent=1))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
