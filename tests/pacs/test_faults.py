"""PACS faults against a real Orthanc: each a clear SurgtwinError (node, host:port, operation, reason, hint),
nothing half-written left in the cache, and the app still usable afterwards.

What Orthanc 1.10 does, as these tests pin down:
* nothing listening: connection refused (retried ``node.retries`` times);
* wrong called AE title (``DicomCheckCalledAet``): A-ASSOCIATE-RJ "Called AE title not recognised";
* unknown calling AE title with ``DicomAlwaysAllow*`` off: A-ASSOCIATE-RJ "Calling AE title not recognised";
  with them on, C-MOVE to an unknown destination answers 0xC000 ("Unknown modality for AET");
* SIGSTOP mid-transfer: no more messages; our DIMSE timeout aborts the association;
* an instance whose file is missing from its storage: the whole C-GET/C-MOVE answers 0xC000;
* a C-STORE sub-operation our side refuses: C-GET counts it as failed (final status 0xB000, warning);
  C-MOVE gives up on the whole request (0xC000, "C-STORE SCU ... has failed with DIMSE status 0xA700");
* a C-STORE of an unknown SOP class: its presentation context is rejected;
* C-GET of an instance of a private SOP class (not among the storage classes asked for): 0xC000.
"""

from __future__ import annotations

import io
import time
from dataclasses import replace

import pydicom
import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.pacs import cache, dimse
from surgtwin.services import pacs
from tests.pacs.conftest import free_port, start_orthanc, write_series


def _assert_nothing_cached(study_uid: str) -> None:
    root = pacs.cache_root()
    assert not (root / study_uid).exists()
    pending = root / cache.PENDING
    assert not pending.exists() or not any(pending.iterdir())


def _assert_names(exc: pytest.ExceptionInfo, node, operation: str) -> None:
    text = str(exc.value)
    assert node.address in text and operation in text and exc.value.hint, text


@pytest.fixture(scope="module")
def strict_orthanc(tmp_path_factory):
    """A private Orthanc that only talks to known modalities (SURGTWIN) and holds a 5-slice series."""
    server = start_orthanc(tmp_path_factory.mktemp("orthanc-strict"), DicomAlwaysAllowEcho=False,
                           DicomAlwaysAllowStore=False, DicomAlwaysAllowFind=False, DicomAlwaysAllowGet=False,
                           DicomAlwaysAllowMove=False)
    try:
        (folder,) = write_series(tmp_path_factory.mktemp("strict-series"), n_slices=5, size=16, seed="strict",
                                 patient="PHANTOM^STRICT")
        server.upload(sorted(folder.glob("*.dcm")))
        yield server
    finally:
        server.stop()


def test_server_down(pacs_env, orthanc):
    node = replace(orthanc.node, port=free_port(), retries=1)
    t0 = time.perf_counter()
    with pytest.raises(SurgtwinError, match=r"C-ECHO failed: cannot connect to 127\.0\.0\.1:\d+: connection refused"
                                            r".*\(2 attempts\)") as exc:
        pacs.echo(node)
    assert 0.4 < time.perf_counter() - t0 < 5  # one retry after a short pause
    _assert_names(exc, node, "C-ECHO")
    assert "check that the PACS is running" in str(exc.value)
    with pytest.raises(SurgtwinError, match="C-FIND failed: cannot connect"):
        pacs.find(replace(node, retries=0))
    s = orthanc.samples["head"]
    with pytest.raises(SurgtwinError, match="cannot connect"):
        pacs.retrieve(replace(node, retries=0), s.study_uid)
    _assert_nothing_cached(s.study_uid)


def test_wrong_called_ae_title(orthanc):
    node = replace(orthanc.node, ae_title="NOT_ORTHANC")
    with pytest.raises(SurgtwinError, match="association rejected by the node .*Called AE title not recognised") as exc:
        pacs.echo(node)
    _assert_names(exc, node, "C-ECHO")
    assert "NOT_ORTHANC" in str(exc.value)
    assert pacs.echo(orthanc.node) > 0


def test_unknown_calling_ae_title(strict_orthanc, pacs_env):
    known = strict_orthanc.node
    assert pacs.echo(known) > 0 and len(pacs.find(known)) == 1
    stranger = replace(known, calling_ae="STRANGER")
    for call in (lambda: pacs.echo(stranger), lambda: pacs.find(stranger)):
        with pytest.raises(SurgtwinError, match="rejected .*Calling AE title not recognised") as exc:
            call()
        assert "STRANGER" in str(exc.value)


def test_move_to_a_destination_the_node_does_not_know(orthanc, pacs_env):
    s = orthanc.samples["head"]
    node = replace(orthanc.node, calling_ae="STRANGER")
    with pytest.raises(SurgtwinError, match=r"C-MOVE failed: .*status 0xC000") as exc:
        pacs.retrieve(node, s.study_uid, method="move")
    assert "move destination" in str(exc.value) and "use C-GET" in str(exc.value)
    _assert_nothing_cached(s.study_uid)
    assert pacs.retrieve(node, s.study_uid, method="get")  # C-GET needs no destination


def test_move_port_in_use(orthanc, pacs_env):
    import socket

    s = orthanc.samples["head"]
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        node = replace(orthanc.node, store_port=busy.getsockname()[1])
        with pytest.raises(SurgtwinError, match=r"C-MOVE failed: cannot listen for the images on port \d+"):
            pacs.retrieve(node, s.study_uid, method="move")
    _assert_nothing_cached(s.study_uid)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["get", "move"])
def test_server_hangs_mid_transfer(orthanc, pacs_env, method):
    s = orthanc.samples["abdomen-pelvis"]
    node = replace(orthanc.node, timeout_s=1.5)
    paused = []

    def progress(f, msg):
        if f > 0.2 and not paused:
            orthanc.pause()  # SIGSTOP: the server stops dead in the middle of the transfer
            paused.append(time.perf_counter())

    try:
        with pytest.raises(SurgtwinError, match=rf"C-{method.upper()} failed: the transfer stopped: no message "
                                                r"from the node within 1\.5 s") as exc:
            pacs.retrieve(node, s.study_uid, method=method, progress=progress)
        assert paused and time.perf_counter() - paused[0] < 10
        _assert_names(exc, node, f"C-{method.upper()}")
        _assert_nothing_cached(s.study_uid)
        with pytest.raises(SurgtwinError, match="did not answer the association request within 1.5 s"):
            pacs.echo(node)
    finally:
        orthanc.resume()
    assert pacs.echo(orthanc.node) > 0  # usable again once the server is back


@pytest.mark.parametrize("method", ["get", "move"])
def test_suboperation_failures_refuse_the_series(orthanc, pacs_env, monkeypatch, method):
    """Our side refuses one instance (as on a full disk): the node counts a failed sub-operation."""
    s = orthanc.samples["head"]
    real_write = cache.PendingSeries.write
    calls = []

    def flaky_write(self, sop_uid, data):
        calls.append(sop_uid)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_write(self, sop_uid, data)

    monkeypatch.setattr(cache.PendingSeries, "write", flaky_write)
    outcomes = []
    real_retrieve = dimse.retrieve

    def spy(*args, **kwargs):
        outcomes.append(real_retrieve(*args, **kwargs))
        return outcomes[-1]

    monkeypatch.setattr(dimse, "retrieve", spy)
    with pytest.raises(SurgtwinError, match=rf"C-{method.upper()} failed: series {s.series_uid}: 1 instance\(s\) "
                                            r"could not be written into the cache \(No space left on device\)") as exc:
        pacs.retrieve(orthanc.node, s.study_uid, method=method)
    assert "nothing of it was kept in the cache; check the free space" in str(exc.value)
    if method == "get":  # the node went on and counted the refused sub-operation
        (sub,) = outcomes
        assert (sub.status, sub.failed, sub.completed) == (0xB000, 1, s.n_instances - 1)
    else:  # Orthanc's C-MOVE gives up at the first refused C-STORE
        assert outcomes == []
    _assert_nothing_cached(s.study_uid)


def test_series_arriving_incomplete_is_refused(orthanc, pacs_env, monkeypatch):
    """An instance acknowledged but lost on the way (a faulty SCP): fewer files than C-FIND promised."""
    s = orthanc.samples["head"]
    real_handle = cache.Inbox.handle
    seen = []

    def lossy_handle(self, event):
        seen.append(1)
        return cache.STATUS_OK if len(seen) == 7 else real_handle(self, event)

    monkeypatch.setattr(cache.Inbox, "handle", lossy_handle)
    with pytest.raises(SurgtwinError, match=rf"the series arrived incomplete: {s.n_instances - 1} of "
                                            rf"{s.n_instances} instances"):
        pacs.retrieve(orthanc.node, s.study_uid, method="get")
    _assert_nothing_cached(s.study_uid)


def test_damaged_instance_on_the_node(strict_orthanc, pacs_env):
    """An instance whose file is gone from the node's storage: Orthanc fails the whole request."""
    node = strict_orthanc.node
    (study,) = pacs.find(node)
    (series,) = pacs.find(node, level="series", study_uid=study["study_uid"])
    sid = strict_orthanc.find_series(series["series_uid"])[0]
    inst = strict_orthanc.rest("GET", f"/series/{sid}")["Instances"][2]
    uuid = strict_orthanc.rest("GET", f"/instances/{inst}/attachments/dicom/info")["Uuid"]
    (path,) = (strict_orthanc.workdir / "db").glob(f"*/*/{uuid}")
    path.unlink()
    for method in ("get", "move"):
        with pytest.raises(SurgtwinError, match=rf"C-{method.upper()} failed: the node could not carry out the "
                                                r"request \(status 0xC000"):
            pacs.retrieve(node, study["study_uid"], method=method)
        _assert_nothing_cached(study["study_uid"])


def test_send_refused_object_type(orthanc, tmp_path):
    (folder,) = write_series(tmp_path / "odd", n_slices=2, size=8, seed="odd", patient="PHANTOM^ODD")
    ok, odd = sorted(folder.glob("*.dcm"))
    ds = pydicom.dcmread(odd)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.826.0.1.3680043.8.498.999.1"  # private class
    ds.save_as(odd, enforce_file_format=True)
    with pytest.raises(SurgtwinError, match=rf"C-STORE failed: 1 of 2 files were refused: {odd.name}: the node "
                                            r"does not accept this object type") as exc:
        pacs.send(orthanc.node, [ok, odd])
    assert "1 were stored" in str(exc.value)
    rows = pacs.find(orthanc.node, level="series", patient_name="PHANTOM^ODD")
    assert len(rows) == 1 and rows[0]["n_instances"] == 1


def test_cache_refuses_foreign_and_unreadable_instances(tmp_path):
    store = cache.SeriesCache(tmp_path)
    pending = store.begin("1.2.3", "1.2.3.4", expected=2)
    (folder,) = write_series(tmp_path / "src", n_slices=2, size=8, seed="foreign", patient="PHANTOM^FOREIGN")
    for f in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(f)
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        pending.write(str(ds.SOPInstanceUID), buf.getvalue())
    assert "belongs to another study or series" in pending.verify()
    assert "2 instances" in pending.verify(completed=3) or "says it sent 3" in pending.verify(completed=3)
    pending.discard()
    assert not pending.folder.exists() and store.lookup("1.2.3", "1.2.3.4") is None
    with pytest.raises(SurgtwinError, match="not a DICOM UID"):
        store.begin("1.2.3", "../../etc")


def test_private_object_type_needs_c_move(orthanc, pacs_env, tmp_path):
    """C-GET asks for a fixed list of storage classes: Orthanc fails the whole C-GET for an instance of a
    private class (0xC000, "No presentation context"); our C-MOVE storage SCP takes any class."""
    (folder,) = write_series(tmp_path / "private", n_slices=3, size=8, seed="private", patient="PHANTOM^PRIVATE")
    files = sorted(folder.glob("*.dcm"))
    ds = pydicom.dcmread(files[1])
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.826.0.1.3680043.8.498.999.1"
    ds.save_as(files[1], enforce_file_format=True)
    orthanc.upload(files)  # over REST: Orthanc's C-STORE SCP would refuse the unknown class
    study_uid = str(ds.StudyInstanceUID)
    with pytest.raises(SurgtwinError, match=r"C-GET failed: the node could not carry out the request \(status "
                                            r"0xC000.*C-MOVE may work"):
        pacs.retrieve(orthanc.node, study_uid, method="get")
    _assert_nothing_cached(study_uid)
    (got,) = pacs.retrieve(orthanc.node, study_uid, method="move")
    classes = sorted(str(pydicom.dcmread(f, stop_before_pixels=True).SOPClassUID) for f in got.glob("*.dcm"))
    assert classes == ["1.2.826.0.1.3680043.8.498.999.1", "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2"]
