"""Crash safety of the .stwin save: a process killed (SIGKILL) at random moments while saving leaves
the complete old or the complete new case; leftovers of killed saves are removed by the next open
or save; an open never deletes the files of a save in flight."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from surgtwin.core.case import Case, Provenance, content_hash, open_case, save_case
from tests.core.test_case_model import small_case

ROOT = Path(__file__).resolve().parents[2]

#: the child: opens the case and saves it in a loop, labels and a records item changing together;
#: "saving <i> <hash>" before and "saved <i> <hash>" after each save
CHILD = r"""
import sys
import numpy as np
from surgtwin.core.case import Provenance, content_hash, open_case, save_case

path = sys.argv[1]
case = open_case(path)
lab = case.labels
pattern = (np.arange(lab.array.size, dtype=np.int64) * 7).reshape(lab.array.shape)
i = int(case.item("implants").value[0]["i"])
while True:
    i += 1
    lab.array[...] = (pattern + i) % 251
    case.notify_labels_edited()
    h = content_hash(lab.array)
    case.set_item("implants", [{"i": i, "labels": h}], Provenance("test"))
    print("saving", i, h, flush=True)
    save_case(case, path)
    print("saved", i, h, flush=True)
"""


#: one "saving|saved <i> <hash>" line of the child (a pipe write this short is atomic, never torn)
REPORT = re.compile(r"^(saving|saved) (\d+) ([0-9a-f]{64})$", re.MULTILINE)


def case_files_clean(folder: Path) -> None:
    """No temporary file and no data file the manifest does not name."""
    doc = json.loads((folder / "manifest.json").read_text())
    named = {doc["volume"]["file"]["name"]} | {it["file"]["name"] for it in doc["items"].values()}
    assert sorted(p.name for p in folder.iterdir()) == ["data", "manifest.json"]
    assert {f"data/{p.name}" for p in (folder / "data").iterdir()} == named


def leftovers(folder: Path) -> int:
    doc = json.loads((folder / "manifest.json").read_text())
    named = {doc["volume"]["file"]["name"]} | {it["file"]["name"] for it in doc["items"].values()}
    extra = [p for p in folder.iterdir() if p.name not in ("data", "manifest.json")]
    extra += [p for p in (folder / "data").iterdir() if f"data/{p.name}" not in named]
    return len(extra)


@pytest.mark.slow
def test_kill_9_while_saving_leaves_the_old_or_the_new_case(tmp_path):
    folder = tmp_path / "crash.stwin"
    case = small_case(shape=(24, 48, 48))
    case.set_item("implants", [{"i": 0, "labels": content_hash(case.labels.array)}], Provenance("test"))
    save_case(case, folder)
    rng = random.Random(20240611)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    trials, mid_save, with_leftovers = 60, 0, 0
    t_start = time.monotonic()
    for trial in range(trials):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(folder)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        first = proc.stdout.readline()
        assert first.startswith("saving "), f"child failed: {first!r} {proc.stderr.read()[-2000:]}"
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        # only the child's own report lines: anything else a library prints on stdout is ignored
        lines = REPORT.findall(first + rest)
        hashes = {int(i): h for _, i, h in lines}
        saved = [int(i) for word, i, _ in lines if word == "saved"]
        saving = [int(i) for word, i, _ in lines if word == "saving"]
        last_saved = saved[-1] if saved else None
        in_flight = saving[-1] if saving and (last_saved is None or saving[-1] > last_saved) else None
        mid_save += in_flight is not None
        with_leftovers += leftovers(folder) > 0

        back = open_case(folder)  # must always work
        got = int(back.item("implants").value[0]["i"])
        allowed = {x for x in (last_saved, in_flight) if x is not None}
        if last_saved is None:  # killed in its first save: the version the child started from
            allowed.add(saving[0] - 1)
        assert got in allowed, f"trial {trial}: case holds version {got}, saved {last_saved}, in flight {in_flight}"
        h = content_hash(back.labels.array)
        assert h == back.item("implants").value[0]["labels"]  # labels and records from the same save
        if got in hashes:
            assert h == hashes[got]
        case_files_clean(folder)  # the open removed what the killed save left
        if trial % 10 == 9:  # and a save after a kill works and leaves nothing either
            save_case(back, folder)
            case_files_clean(folder)
    elapsed = time.monotonic() - t_start
    # the kills landed inside saves often enough to mean something
    assert mid_save >= trials // 5, f"only {mid_save} of {trials} kills landed inside a save"
    assert with_leftovers >= 1, "no kill left a partial save behind"
    print(f"{trials} kills in {elapsed:.1f} s: {mid_save} inside a save, {with_leftovers} left files behind")


def test_open_removes_temporary_files_of_a_killed_save(tmp_path):
    folder = save_case(small_case(), tmp_path / "c.stwin")
    named = sorted(p.name for p in (folder / "data").iterdir())
    junk = [folder / ".tmp-0123abcd-manifest.json", folder / "data" / ".tmp-xyz.nii.gz",
            folder / "data" / "labels-0123456789abcdef.nii.gz"]  # renamed into place, never named
    for p in junk:
        p.write_bytes(b"partial")
    (folder / "notes.txt").write_text("the user's own file")
    open_case(folder)
    assert not any(p.exists() for p in junk)
    assert sorted(p.name for p in (folder / "data").iterdir()) == named
    assert (folder / "notes.txt").read_text() == "the user's own file"


def test_save_removes_temporary_files_too(tmp_path):
    case = small_case()
    folder = save_case(case, tmp_path / "c.stwin")
    (folder / "data" / ".tmp-abc.npz").write_bytes(b"x")
    (folder / ".tmp-def-manifest.json").write_bytes(b"{")
    save_case(case, folder)
    case_files_clean(folder)


def test_an_open_during_a_save_waits_and_deletes_nothing_of_it(tmp_path):
    """`surgtwin case show` (or a second window) opening a case while it is being saved must not take
    the save's new, not yet named, data files for leftovers."""
    case = small_case()
    folder = save_case(case, tmp_path / "c.stwin")
    lab = case.labels
    idx = tuple(int(i) for i in np.argwhere(lab.array != 5)[0])
    lab.array[idx] = 5
    case.notify_labels_edited()
    at_manifest, go = threading.Event(), threading.Event()

    def progress(fraction, message):
        if message == "replacing the manifest":  # every new data file written, manifest not yet
            at_manifest.set()
            go.wait(20)

    opened: list[Case] = []
    saver = threading.Thread(target=lambda: save_case(case, folder, progress=progress))
    saver.start()
    assert at_manifest.wait(20)
    reader = threading.Thread(target=lambda: opened.append(open_case(folder)))
    reader.start()
    reader.join(0.5)
    assert reader.is_alive(), "the open did not wait for the save in flight"
    go.set()
    saver.join(20)
    reader.join(20)
    assert int(opened[0].labels.array[idx]) == 5  # it read the new version, after the save
    back = open_case(folder)
    assert int(back.labels.array[idx]) == 5
    case_files_clean(folder)


def test_two_opens_do_not_wait_for_each_other(tmp_path):
    from surgtwin.core.case.store import FolderLock

    folder = save_case(small_case(), tmp_path / "c.stwin")
    with FolderLock(folder) as lock:
        assert lock.take(exclusive=False)
        t = time.monotonic()
        open_case(folder)  # shared with the open above; skips the clean-up it cannot lock
        assert time.monotonic() - t < 5
    with FolderLock(folder) as a, FolderLock(folder) as b:
        assert a.take(exclusive=True)
        assert not b.take(exclusive=True, wait=False)
