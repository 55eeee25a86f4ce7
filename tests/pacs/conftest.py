"""A real Orthanc for the PACS tests: started on loopback with free ports and a throw-away configuration
and storage folder, seeded with the sample cases (synthetic PHANTOM^ patients) through its REST API.

    def test_x(orthanc):
        orthanc.node            # PacsNode for it (calling AE "SURGTWIN", short timeout, store_port set)
        orthanc.rest_url        # http://127.0.0.1:PORT
        orthanc.samples         # {"head": SeededSeries(study_uid, series_uid, n_instances, folder), ...}
        orthanc.rest("GET", "/studies")      # JSON from its REST API
        orthanc.pause(); orthanc.resume()    # SIGSTOP / SIGCONT the server process
        orthanc.stop()                       # kill it (later tests in the session would then fail:
                                             # use the function-scoped ``orthanc_factory`` instead)

``write_series(folder, n_series=, n_slices=)`` writes small synthetic PHANTOM^ CT series to seed or send.
``orthanc_factory(**config)`` starts a further, private server (killed when the test ends) with extra
configuration keys, for tests that kill it or need other settings. Skips with a reason where the
``Orthanc`` program is missing (Debian/Ubuntu: ``apt-get install orthanc``; ``.ci/run`` installs it).
The Debian package's system service is not used.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from surgtwin.core.pacs.node import PacsNode

ORTHANC = shutil.which("Orthanc")
SAMPLES = Path(__file__).resolve().parents[2] / "surgtwin" / "data" / "samples"
AET = "ORTHANC"
CALLING_AE = "SURGTWIN"
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SeededSeries:
    study_uid: str
    series_uid: str
    n_instances: int
    folder: Path


@dataclass
class OrthancServer:
    """A running Orthanc process and what it was seeded with."""

    proc: subprocess.Popen
    dicom_port: int
    http_port: int
    store_port: int
    workdir: Path
    samples: dict[str, SeededSeries] = field(default_factory=dict)

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def node(self) -> PacsNode:
        return PacsNode(name="orthanc-test", ae_title=AET, host="127.0.0.1", port=self.dicom_port,
                        calling_ae=CALLING_AE, timeout_s=10.0, retries=0, store_port=self.store_port)

    def rest(self, method: str, path: str, data: bytes | dict | list | None = None, timeout: float = 30.0):
        body = data if isinstance(data, bytes | None) else json.dumps(data).encode()
        req = urllib.request.Request(self.rest_url + path, data=body, method=method)
        if isinstance(data, bytes):
            req.add_header("Content-Type", "application/dicom")
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read()
        return json.loads(text) if text else None

    def upload(self, paths) -> list[dict]:
        """POST each DICOM file to /instances; returns Orthanc's answers."""
        return [self.rest("POST", "/instances", Path(p).read_bytes()) for p in paths]

    def find_series(self, series_uid: str) -> list[str]:
        """Orthanc's ids of the series with this SeriesInstanceUID (empty when it has none)."""
        return [r["ID"] for r in self.rest("POST", "/tools/lookup", series_uid.encode()) if r["Type"] == "Series"]

    def delete_series(self, series_uid: str) -> None:
        for sid in self.find_series(series_uid):
            self.rest("DELETE", f"/series/{sid}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)


def _die_with_parent() -> None:
    """In the child: ask Linux to kill it when pytest dies, so no Orthanc outlives a crashed run."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start_orthanc(workdir: Path, *, nodelay: bool = True, **config) -> OrthancServer:
    """Start Orthanc with a private configuration in ``workdir`` (``config`` adds or overrides keys);
    wait until its REST API answers. ``nodelay=False`` leaves DCMTK's default (Nagle on)."""
    if ORTHANC is None:
        pytest.skip("Orthanc is not installed (apt-get install orthanc); the PACS tests need a real server")
    workdir.mkdir(parents=True, exist_ok=True)
    dicom_port, http_port, store_port = free_port(), free_port(), free_port()
    cfg = {
        "Name": "surgtwin-test",
        "StorageDirectory": str(workdir / "db"),
        "IndexDirectory": str(workdir / "db"),
        "Plugins": [],
        "HttpServerEnabled": True,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": True,
        "DicomAet": AET,
        "DicomPort": dicom_port,
        "DicomCheckCalledAet": True,
        "DicomModalities": {"surgtwin": [CALLING_AE, "127.0.0.1", store_port]},
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowFind": True,
        "DicomAlwaysAllowGet": True,
        "DicomAlwaysAllowMove": True,
        "DicomScuTimeout": 10,
        "DicomScpTimeout": 30,
        "DicomAssociationCloseDelay": 0,
        "SaveJobs": False,
        "LimitFindResults": 0,
        "LimitFindInstances": 0,
        "StorageAccessOnFind": "Never",
        "MaximumStorageCacheSize": 0,  # read instances from disk on each retrieve (no hidden copy)
        "HttpThreadsCount": 8,
        "DicomThreadsCount": 4,
    }
    cfg.update(config)
    cfg_path = workdir / "orthanc.json"
    cfg_path.write_text(json.dumps(cfg, indent=1))
    log = open(workdir / "orthanc.log", "wb")  # noqa: SIM115 - kept open for the process's life
    # TCP_NODELAY=1: DCMTK (in Debian's Orthanc) leaves Nagle's algorithm on unless told; on loopback that
    # costs a delayed ACK (40-90 ms) per DIMSE message it sends, 10-40x the whole transfer time
    env = {**os.environ, "TCP_NODELAY": "1" if nodelay else "0"}
    proc = subprocess.Popen([ORTHANC, str(cfg_path)], cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env, preexec_fn=_die_with_parent)
    log.close()
    server = OrthancServer(proc, dicom_port, http_port, store_port, workdir)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited ({proc.returncode}): {(workdir / 'orthanc.log').read_text()[-2000:]}")
        try:
            server.rest("GET", "/system", timeout=2)
            return server
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError("Orthanc did not answer within "
                                   f"{START_TIMEOUT_S:.0f} s: {(workdir / 'orthanc.log').read_text()[-2000:]}") from None
            time.sleep(0.1)


def seed_samples(server: OrthancServer) -> None:
    """Upload the sample cases' DICOM series (synthetic PHANTOM^ patients)."""
    import pydicom

    for case in sorted(p for p in SAMPLES.iterdir() if (p / "dicom").is_dir()):
        files = sorted((case / "dicom").glob("*.dcm"))
        server.upload(files)
        ds = pydicom.dcmread(files[0], stop_before_pixels=True)
        server.samples[case.name] = SeededSeries(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
                                                 len(files), case / "dicom")


def write_series(folder: Path, *, n_series: int = 1, n_slices: int = 1, size: int = 4, seed: str = "tiny",
                 patient: str = "PHANTOM^TINY", description: str = "tiny synthetic series") -> list[Path]:
    """Synthetic CT series (PHANTOM^ patient) of one study: ``n_series`` series of ``n_slices`` slices of
    ``size`` x ``size`` pixels, one sub-folder per series; deterministic UIDs from ``seed``."""
    import numpy as np

    from surgtwin.core.dicom.write import write_ct_series
    from surgtwin.core.types import Volume

    rng = np.random.default_rng(zlib.crc32(seed.encode()))
    vol = Volume(rng.integers(-1000, 1000, (n_slices, size, size)).astype(np.int16), np.diag([2.0, 0.7, 0.7, 1.0]))
    out = []
    for k in range(1, n_series + 1):
        out.append(folder / f"s{k:04d}")
        write_ct_series(vol, out[-1], patient_name=patient, patient_id=f"{patient.replace('^', '-')}-{seed}",
                        study_description=description, series_description=f"{description} {k}", uid_seed=seed,
                        series_number=k, compress=False)
    return out


#: the session's server, shared by every module that imports the ``orthanc`` fixture (tests/cli too)
_SHARED: dict[str, OrthancServer] = {}


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    """The session's seeded Orthanc (see the module docstring); one per session even where another test
    package imports this fixture."""
    server = _SHARED.get("server")
    if server is None or not server.alive():
        server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
        try:
            seed_samples(server)
        except BaseException:
            server.stop()
            raise
        _SHARED["server"] = server
    try:
        yield server
    finally:
        server.resume()  # a test that paused it and failed must not leave it stopped for the next
        server.stop()


@pytest.fixture
def orthanc_factory(tmp_path_factory):
    """Start further private Orthanc servers (``factory(**config)``); each is killed after the test."""
    started: list[OrthancServer] = []

    def factory(**config) -> OrthancServer:
        server = start_orthanc(tmp_path_factory.mktemp("orthanc-private"), **config)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def pacs_env(tmp_path, monkeypatch):
    """A private PACS cache and node-list file for one test (SURGTWIN_PACS_CACHE / SURGTWIN_PACS_NODES)."""
    monkeypatch.setenv("SURGTWIN_PACS_CACHE", str(tmp_path / "pacs-cache"))
    monkeypatch.setenv("SURGTWIN_PACS_NODES", str(tmp_path / "pacs-nodes.json"))
    return tmp_path

