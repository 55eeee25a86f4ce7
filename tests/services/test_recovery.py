"""Autosave into a recovery copy and restoring it after a crash (surgtwin.services.recovery)."""

from __future__ import annotations

import json

import numpy as np

from surgtwin.core.case import Provenance
from surgtwin.services import recovery
from tests.core.test_case_model import small_case
from tests.core.test_case_store import data_files


def test_autosave_pending_restore_discard(tmp_path):
    case = small_case()
    case.set_item("implants", [{"name": "stem"}], Provenance("plan"))
    assert case.dirty
    copy = recovery.autosave(case, tmp_path / "saved.stwin", folder=tmp_path)
    assert copy == tmp_path / f"{case.case_id}.stwin"
    assert case.dirty  # an autosave is not a save
    marker = json.loads((tmp_path / f"{case.case_id}.json").read_text())
    assert marker["case_path"] == str(tmp_path / "saved.stwin") and marker["name"] == "phantom"
    [rec] = recovery.pending(folder=tmp_path)
    assert (rec.case_id, rec.folder, rec.name) == (case.case_id, copy, "phantom")
    assert "saved.stwin" in rec.describe()
    back = recovery.restore(rec)
    assert back.dirty and back.case_id == case.case_id
    np.testing.assert_array_equal(back.labels.array, case.labels.array)
    assert back.item("implants").value == [{"name": "stem"}]
    recovery.discard(case.case_id, folder=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert recovery.pending(folder=tmp_path) == []


def test_autosave_is_incremental(tmp_path):
    case = small_case()
    copy = recovery.autosave(case, folder=tmp_path)
    before = data_files(copy)
    recovery.autosave(case, folder=tmp_path)
    assert data_files(copy) == before  # nothing rewritten
    lab = case.labels
    lab.array[tuple(np.argwhere(lab.array != 4)[0])] = 4
    case.notify_labels_edited()
    recovery.autosave(case, folder=tmp_path)
    after = data_files(copy)
    changed = {n for n in after if after[n] != before.get(n)}
    assert len(changed) == 1 and next(iter(changed)).startswith("labels-")
    assert len(after) == len(before)  # the old label file is gone


def test_pending_skips_unreadable_markers_and_lists_newest_first(tmp_path):
    a, b = small_case(), small_case()
    recovery.autosave(a, folder=tmp_path)
    recovery.autosave(b, folder=tmp_path)
    for case, when in ((a, "2024-01-01T00:00:00+00:00"), (b, "2025-01-01T00:00:00+00:00")):
        m = tmp_path / f"{case.case_id}.json"
        m.write_text(json.dumps({**json.loads(m.read_text()), "saved": when}))
    (tmp_path / "junk.json").write_text("{not json")
    (tmp_path / "orphan.json").write_text(json.dumps({"case_id": "f" * 32}))  # no copy beside it
    assert [r.case_id for r in recovery.pending(folder=tmp_path)] == [b.case_id, a.case_id]


def test_recovery_dir_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SURGTWIN_RECOVERY_DIR", str(tmp_path / "rec"))
    assert recovery.recovery_dir() == tmp_path / "rec"
    monkeypatch.delenv("SURGTWIN_RECOVERY_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert recovery.recovery_dir() == tmp_path / "state" / "surgtwin" / "recovery"


def test_autosaver_saves_the_snapshot_not_later_edits(tmp_path, monkeypatch):
    import threading

    from surgtwin.core.case import store

    case = small_case()
    lab = case.labels
    snapshot_voxels = lab.array.copy()
    started, go = threading.Event(), threading.Event()
    real_save = recovery.save_case

    def slow_save(c, path, **kw):
        started.set()
        assert go.wait(20)
        return real_save(c, path, **kw)

    monkeypatch.setattr(recovery, "save_case", slow_save)
    saver = recovery.Autosaver(folder=tmp_path)
    assert saver.save_now(case)
    assert started.wait(20)
    assert saver.busy and not saver.save_now(case)  # one at a time
    lab.array[...] = 0  # the user goes on editing while the autosave runs
    case.notify_labels_edited()
    go.set()
    saver.wait(20)
    assert saver.last_error is None and saver.last_path == tmp_path / f"{case.case_id}.stwin"
    back = store.open_case(saver.last_path)
    np.testing.assert_array_equal(back.labels.array, snapshot_voxels)
    assert int(case.labels.array.max()) == 0  # the live case keeps the edit
    assert case.dirty


def test_autosaver_reports_errors_without_raising(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    saver = recovery.Autosaver(folder=blocker)
    assert saver.save_now(small_case(), wait=True)
    assert isinstance(saver.last_error, OSError)
    assert saver.last_path is None


def test_snapshot_copies_labels_and_shares_the_rest():
    from tests.core.test_case_model import add_meshes

    case = small_case()
    add_meshes(case)
    case.set_notes("n")
    snap = recovery.snapshot(case)
    assert snap.labels.array is not case.labels.array
    np.testing.assert_array_equal(snap.labels.array, case.labels.array)
    assert snap.item("meshes").value is case.item("meshes").value
    assert snap.current_hash("labels") == case.current_hash("labels")
    assert snap.item("labels").produced_hash == case.item("labels").produced_hash
    assert snap.case_id == case.case_id and snap.notes == "n"
    assert snap.stale_items() == case.stale_items() == {}


def test_discard_of_nothing_is_fine(tmp_path):
    recovery.discard("0" * 32, folder=tmp_path)
    assert list(tmp_path.iterdir()) == []
