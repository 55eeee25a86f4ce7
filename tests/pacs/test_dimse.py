"""PACS against a real Orthanc: echo, find at each level, retrieve by C-GET and C-MOVE into the cache,
send back and find again, a study of hundreds of series, progress and cancel."""

from __future__ import annotations

import shutil
import time
from dataclasses import replace

import pydicom
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.pacs import PacsNode, cache, dimse, query
from surgtwin.core.progress import Cancelled, CancelToken
from surgtwin.services import pacs
from tests.pacs.conftest import write_series


def test_echo(orthanc):
    ms = pacs.echo(orthanc.node)
    assert 0 < ms < 5000


def test_find_patients(orthanc):
    rows = pacs.find(orthanc.node, level="patient", patient_name="PHANTOM^*")
    by_id = {r["patient_id"]: r for r in rows}
    for s in orthanc.samples.values():
        ds = pydicom.dcmread(next(s.folder.glob("*.dcm")), stop_before_pixels=True)
        row = by_id[str(ds.PatientID)]
        assert row["patient_name"] == str(ds.PatientName) and row["level"] == "patient"
        assert row["n_instances"] == s.n_instances
    assert all(set(r) == set(query.RESULT_KEYS) for r in rows)
    assert not rows.truncated


def test_find_studies_with_filters(orthanc):
    head = orthanc.samples["head"]
    rows = pacs.find(orthanc.node, level="study", patient_name="PHANTOM^HE*")
    assert [r["study_uid"] for r in rows] == [head.study_uid]
    row = rows[0]
    assert row["modalities"] == "CT" and row["n_series"] == 1 and row["n_instances"] == head.n_instances
    assert row["study_date"] == "20260101" and row["series_uid"] == "" and row["study_description"]
    uids = {s.study_uid for s in orthanc.samples.values()}
    assert uids <= {r["study_uid"] for r in pacs.find(orthanc.node, study_date="20260101", modality="CT")}
    assert uids <= {r["study_uid"] for r in pacs.find(orthanc.node, study_date="20251201-20260131")}
    assert not uids & {r["study_uid"] for r in pacs.find(orthanc.node, study_date="20250101-20251231")}
    assert not uids & {r["study_uid"] for r in pacs.find(orthanc.node, modality="MR")}
    by_id = pacs.find(orthanc.node, patient_id=row["patient_id"])
    assert [r["study_uid"] for r in by_id] == [head.study_uid]


def test_find_series(orthanc):
    s = orthanc.samples["cardiac-cta"]
    rows = pacs.find(orthanc.node, level="series", study_uid=s.study_uid)
    assert len(rows) == 1
    r = rows[0]
    assert (r["series_uid"], r["study_uid"], r["modality"], r["n_instances"]) == (s.series_uid, s.study_uid, "CT",
                                                                                  s.n_instances)
    assert r["series_number"] == "1" and r["series_description"] and r["n_series"] is None
    assert pacs.find(orthanc.node, level="series", series_uid=s.series_uid) == rows


def test_find_refuses_bad_filters(orthanc):
    for kwargs in ({"study_date": "2026-01-01"}, {"study_date": "20261301"}, {"study_date": "20260102-20260101"},
                   {"level": "image"}, {"study_uid": "1.2.x"}, {"level": "patient", "modality": "CT"},
                   {"patient_name": "A\\B"}, {"modality": "ct scan"}, {"limit": 0}, {"series_uid": "1.2"}):
        with pytest.raises(SurgtwinError):
            pacs.find(orthanc.node, **kwargs)


def _same_instances(folder, source_folder) -> None:
    got = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in folder.glob("*.dcm")}
    want = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in source_folder.glob("*.dcm")}
    assert got == want


@pytest.mark.parametrize("method", ["get", "move"])
def test_retrieve_into_cache(orthanc, pacs_env, method, monkeypatch):
    s = orthanc.samples["head"]
    seen = []
    folders = pacs.retrieve(orthanc.node, s.study_uid, method=method, progress=lambda f, m: seen.append(f))
    assert len(folders) == 1
    folder = folders[0]
    assert folder == pacs.cache_root() / s.study_uid / s.series_uid
    _same_instances(folder, s.folder)
    a = pydicom.dcmread(sorted(s.folder.glob("*.dcm"))[10])
    b = pydicom.dcmread(folder / f"{a.SOPInstanceUID}.dcm")
    assert (a.pixel_array == b.pixel_array).all()  # the pixels came through intact (RLE kept or transcoded)
    manifest = cache.read_manifest(folder)
    assert manifest["n_instances"] == s.n_instances and manifest["method"] == method
    assert seen[-1] == 1.0 and len(seen) > s.n_instances / 2
    assert not any((pacs.cache_root() / cache.PENDING).iterdir())
    assert [e["series_uid"] for e in pacs.cached_series()] == [s.series_uid]

    # complete in the cache: not fetched again
    monkeypatch.setattr(dimse, "retrieve", lambda *a, **k: pytest.fail("fetched again"))
    assert pacs.retrieve(orthanc.node, s.study_uid, s.series_uid, method=method) == [folder]


def test_retrieve_refetches_a_damaged_cache_entry(orthanc, pacs_env):
    s = orthanc.samples["head"]
    (folder,) = pacs.retrieve(orthanc.node, s.study_uid, s.series_uid)
    next(folder.glob("*.dcm")).unlink()  # someone removed a file: the entry is no longer complete
    (again,) = pacs.retrieve(orthanc.node, s.study_uid, s.series_uid)
    assert again == folder and len(list(folder.glob("*.dcm"))) == s.n_instances


def test_retrieve_unknown_study(orthanc, pacs_env):
    with pytest.raises(SurgtwinError, match=r"C-GET failed: the node has no study 1\.2\.3\.4"):
        pacs.retrieve(orthanc.node, "1.2.3.4")


@pytest.mark.parametrize("method", ["get", "move"])
def test_cancel_mid_retrieve_leaves_nothing(orthanc, pacs_env, method):
    s = orthanc.samples["abdomen-pelvis"]
    token = CancelToken()

    def progress(f, msg):
        if f > 0.2:
            token.cancel()

    with pytest.raises(Cancelled):
        pacs.retrieve(orthanc.node, s.study_uid, method=method, progress=progress, cancel=token)
    root = pacs.cache_root()
    assert not (root / s.study_uid).exists()
    assert not any((root / cache.PENDING).iterdir())
    assert pacs.echo(orthanc.node) > 0  # the node is still fine


def test_send_then_find_again(orthanc, tmp_path):
    (folder,) = write_series(tmp_path / "send", n_slices=3, seed="send-back", patient="PHANTOM^SENDBACK")
    (tmp_path / "send" / "notes.txt").write_text("not DICOM")
    done = []
    counts = pacs.send(orthanc.node, [tmp_path / "send"], progress=lambda f, m: done.append(f))
    assert (counts["sent"], counts["failed"], counts["skipped"]) == (3, 0, 1) and done[-1] == 1.0
    rows = pacs.find(orthanc.node, level="series", patient_name="PHANTOM^SENDBACK")
    assert len(rows) == 1 and rows[0]["n_instances"] == 3 and rows[0]["modality"] == "CT"
    uid = pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True).SeriesInstanceUID
    assert rows[0]["series_uid"] == uid


def test_send_refuses_non_dicom_and_missing(orthanc, tmp_path):
    bad = tmp_path / "x.txt"
    bad.write_text("hello")
    with pytest.raises(SurgtwinError, match=r"C-STORE failed: nothing sent: x\.txt: not a DICOM file; "
                                            r"missing\.dcm: no such file"):
        pacs.send(orthanc.node, [bad, tmp_path / "missing.dcm"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SurgtwinError, match="no DICOM files to send"):
        pacs.send(orthanc.node, [tmp_path / "empty"])


def test_send_case_results_files_with_the_study(orthanc, tmp_path):
    from surgtwin.core.case import Provenance
    from surgtwin.services import pipeline
    from tests.core.test_dicom_export import blob_labels

    (folder,) = write_series(tmp_path / "ct", n_slices=10, size=40, seed="results", patient="PHANTOM^RESULTS")
    study_uid = str(pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True).StudyInstanceUID)
    pacs.send(orthanc.node, [folder])
    case = pipeline.new_case(folder)
    case.set_labels(blob_labels(case.volume), Provenance("manual"))
    with pytest.raises(SurgtwinError, match="will not send de-identified results to a clinical node"):
        pacs.send_case_results(case, orthanc.node, deidentify=True, snapshots=[])
    res = pacs.send_case_results(case, orthanc.node, snapshots=[])
    assert res["sent"] == 2 and res["study_uid"] == study_uid and not res["deidentified"]
    rows = pacs.find(orthanc.node, level="series", study_uid=study_uid)
    assert sorted(r["modality"] for r in rows) == ["CT", "RTSTRUCT", "SEG"]

    research = replace(orthanc.node, research=True)
    res = pacs.send_case_results(case, research, deidentify=True, snapshots=[])
    assert res["deidentified"] and res["sent"] == 12 and res["study_uid"] != study_uid
    (pseudo,) = pacs.find(orthanc.node, study_uid=res["study_uid"])
    assert pseudo["n_instances"] == 12 and pseudo["n_series"] == 3 and "RESULTS" not in pseudo["patient_name"]


def test_study_with_hundreds_of_series(orthanc, tmp_path):
    """300 single-instance series in one study (seeded over REST: Orthanc takes ~0.1 s per C-STORE here)."""
    from concurrent.futures import ThreadPoolExecutor

    n = 300
    folders = write_series(tmp_path / "many", n_series=n, seed="many-series", patient="PHANTOM^MANY")
    files = [f for folder in folders for f in folder.glob("*.dcm")]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda f: orthanc.upload([f]), files))
    study_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    (study,) = pacs.find(orthanc.node, study_uid=study_uid)
    assert study["n_series"] == n and study["n_instances"] == n
    t0 = time.perf_counter()
    rows = pacs.find(orthanc.node, level="series", study_uid=study_uid)
    t_find = time.perf_counter() - t0
    assert len(rows) == n and not rows.truncated
    assert sorted(int(r["series_number"]) for r in rows) == list(range(1, n + 1))
    assert all(r["n_instances"] == 1 and r["study_uid"] == study_uid for r in rows)
    assert t_find < 10.0, f"C-FIND of {n} series took {t_find:.1f} s"
    t0 = time.perf_counter()
    page = pacs.find(orthanc.node, level="series", study_uid=study_uid, limit=50)
    assert len(page) == 50 and page.truncated
    assert time.perf_counter() - t0 < 5.0
    assert pacs.echo(orthanc.node) > 0  # the association after the C-CANCEL was closed cleanly


def test_node_validation_and_inline():
    node = PacsNode.parse("PACS1@10.0.0.5:104", calling_ae="ME")
    assert (node.ae_title, node.host, node.port, node.calling_ae) == ("PACS1", "10.0.0.5", 104, "ME")
    assert PacsNode.from_dict(node.to_dict()) == node
    assert PacsNode.parse("A@[::1]:11112").host == "::1"
    for bad in ({"ae_title": "TOO_LONG_AE_TITLE_X"}, {"ae_title": "A\\B"}, {"ae_title": "  "}, {"port": 70000},
                {"host": "bad host"}, {"timeout_s": 0}, {"retries": -1}, {"tls_cert": "c.pem"},
                {"tls_cert": "c.pem", "tls_key": "k.pem"}, {"name": ""}):
        with pytest.raises(SurgtwinError):
            PacsNode(**{"name": "n", "ae_title": "AE", "host": "h", "port": 104, **bad})
    for text in ("PACS1@host", "@h:1", "A@h:port", "nonsense"):
        with pytest.raises(SurgtwinError, match="AE@host:port"):
            PacsNode.parse(text)
    with pytest.raises(SurgtwinError, match="unknown PACS node field"):
        PacsNode.from_dict({**node.to_dict(), "colour": "red"})
    with pytest.raises(SurgtwinError, match="tls_ca file not found"):
        PacsNode("n", "AE", "h", 1, tls_ca="/nonexistent/ca.pem").ssl_context()


def test_nodes_file(pacs_env, monkeypatch):
    assert pacs.load_nodes() == []
    a = PacsNode("main", "ORTHANC", "127.0.0.1", 4242)
    b = PacsNode("research", "RES", "10.1.1.1", 104, research=True, timeout_s=5)
    pacs.save_nodes([a, b])
    assert pacs.load_nodes() == [a, b]
    assert pacs.node_named("research") == b
    assert pacs.node_named("X@h:1").ae_title == "X"
    with pytest.raises(SurgtwinError, match="unique"):
        pacs.save_nodes([a, a])
    path = pacs.nodes_path()
    assert path == pacs_env / "pacs-nodes.json" and not list(path.parent.glob(".pacs-nodes.json.*"))
    path.write_text("{not json")
    with pytest.raises(SurgtwinError, match="cannot be read"):
        pacs.load_nodes()
    path.write_text('{"version": 1, "nodes": [{"name": "x", "ae_title": "A", "host": "h", "port": 0}]}')
    with pytest.raises(SurgtwinError, match="port 0"):
        pacs.load_nodes()
    monkeypatch.delenv("SURGTWIN_PACS_NODES")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(pacs_env / "cfg"))
    assert pacs.nodes_path() == pacs_env / "cfg" / "surgtwin" / "pacs_nodes.json"


def _make_certificates(folder) -> None:
    """A CA and a server and a client certificate it signed (openssl CLI, 2048-bit RSA, 2 days)."""
    import subprocess

    def ssl(*args):
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=surgtwin-test-ca")
    for name in ("server", "client"):
        ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}")
        ssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl program to make certificates")
def test_tls(orthanc_factory, pacs_env, tmp_path):
    """DICOM over TLS with client certificates (Orthanc: DicomTlsEnabled, remote certificate required)."""
    _make_certificates(tmp_path)
    server = orthanc_factory(DicomTlsEnabled=True, DicomTlsCertificate=str(tmp_path / "server.crt"),
                             DicomTlsPrivateKey=str(tmp_path / "server.key"),
                             DicomTlsTrustedCertificates=str(tmp_path / "ca.crt"),
                             DicomTlsRemoteCertificateRequired=True)
    (folder,) = write_series(tmp_path / "tls", n_slices=4, size=16, seed="tls", patient="PHANTOM^TLS")
    server.upload(sorted(folder.glob("*.dcm")))
    node = replace(server.node, tls_ca=str(tmp_path / "ca.crt"), tls_cert=str(tmp_path / "client.crt"),
                   tls_key=str(tmp_path / "client.key"))
    assert pacs.echo(node) > 0
    (study,) = pacs.find(node)
    (got,) = pacs.retrieve(node, study["study_uid"], method="get")
    assert len(list(got.glob("*.dcm"))) == 4
    with pytest.raises(SurgtwinError, match=r"C-ECHO failed: the TLS handshake failed \(.*CERTIFICATE_REQUIRED"):
        pacs.echo(replace(node, tls_cert="", tls_key=""))
    with pytest.raises(SurgtwinError, match=r"the TLS handshake failed \(CERTIFICATE_VERIFY_FAILED"):
        pacs.echo(replace(node, tls_ca=str(tmp_path / "client.crt")))  # not the CA that signed the server
    with pytest.raises(SurgtwinError, match="closed the connection during association.*expects TLS"):
        pacs.echo(server.node)  # plain DICOM to a TLS port
