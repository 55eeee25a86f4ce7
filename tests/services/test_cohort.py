"""Cohorts (services/cohort.py): cases of a cohort, one case's record, resume, failures recorded, and the
same results on a local Dask cluster with 2 workers as in a plain sequential run; a worker killed
mid-run loses no finished case and the rerun completes the lost one."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from surgtwin.core.errors import SurgtwinError
from surgtwin.services import cohort

# coarse virtual patients: a few seconds each on 2 cores
COARSE = {"pixel_mm": 3.0, "slice_mm": 3.0}


def _virtual(n, first_seed=0, kind="cardiac-cta"):
    return cohort.virtual_cohort(kind, n, first_seed=first_seed, **COARSE)


def _results(rec: dict) -> dict:
    """What must not depend on where or when a case ran."""
    return {"status": rec["status"], "dice": rec["dice"], "truth": rec["ground_truth"],
            "summaries": {k: v.get("summary") for k, v in rec["steps"].items()}}


# -- the cases of a cohort ---------------------------------------------------------------------------
def test_virtual_cohort_and_manifest_round_trip(tmp_path):
    ents = cohort.virtual_cohort("abdomen-pelvis", 3, first_seed=5, pixel_mm=2.0)
    assert [e.case_id for e in ents] == ["abdomen-pelvis-0005", "abdomen-pelvis-0006", "abdomen-pelvis-0007"]
    assert ents[0].source == {"kind": "virtual", "phantom": "abdomen-pelvis", "seed": 5, "pixel_mm": 2.0}
    path = cohort.write_manifest(ents, tmp_path)
    assert path == tmp_path / "cohort.json"
    assert cohort.read_manifest(path) == ents
    assert cohort.discover([path]) == ents
    assert cohort.discover([tmp_path]) == ents  # a folder holding a cohort.json


def test_a_virtual_cardiac_patient_carries_its_drawn_physiology_as_tavr_options(tmp_path):
    from surgtwin.core.phantom.physiology import draw_physiology

    ents = cohort.virtual_cohort("cardiac-cta", 2, first_seed=4)
    phys = draw_physiology("cardiac-cta", 4)
    assert ents[0].options == {"tavr": {k: phys[k] for k in ("bsa_m2", "bmi", "cardiac_output_l_min",
                                                            "heart_rate_bpm")}}
    assert ents[0].options != ents[1].options
    assert cohort.read_manifest(cohort.write_manifest(ents, tmp_path)) == ents
    assert cohort.virtual_cohort("head", 1)[0].options == {}
    # the run's options are laid over the case's own, key by key
    eff = ents[0].effective_options({"tavr": {"bsa_m2": 2.2}, "segment": {"method": "classical"}})
    assert eff["tavr"]["bsa_m2"] == 2.2 and eff["tavr"]["cardiac_output_l_min"] == phys["cardiac_output_l_min"]
    assert eff["segment"] == {"method": "classical"}


def test_trial_arms_put_every_patient_in_every_arm(tmp_path):
    arms = cohort.parse_arms(["implant.size=2,4,6", "fem.load-case=walking"])
    assert arms == {"implant.size": [2, 4, 6], "fem.load_case": ["walking"]}
    ents = cohort.expand_arms(cohort.virtual_cohort("abdomen-pelvis", 2, pixel_mm=2.0), arms)
    assert [e.case_id for e in ents] == [f"abdomen-pelvis-000{s}-size{z}-casewalking" for s in (0, 1) for z in (2, 4, 6)]
    assert ents[1].options == {"implant": {"size": 4}, "fem": {"load_case": "walking"}}
    assert ents[1].arm == {"implant.size": 4, "fem.load_case": "walking"} and ents[1].source == ents[0].source
    assert ents[1].arm_label == "implant.size=4, fem.load_case=walking" and "[implant.size=4" in ents[1].label
    assert cohort.read_manifest(cohort.write_manifest(ents, tmp_path)) == ents
    # an arm lays its value over the case's own options (a cardiac patient keeps its physiology)
    card = cohort.expand_arms(cohort.virtual_cohort("cardiac-cta", 1), cohort.parse_arms(["tavr.family=self-expanding"]))
    assert card[0].options["tavr"]["family"] == "self-expanding" and "bsa_m2" in card[0].options["tavr"]
    assert cohort.expand_arms(ents, {}) == ents
    with pytest.raises(SurgtwinError, match="already in the trial arm implant.size=2"):
        cohort.expand_arms(ents, {"implant.size": [3]})  # the armed manifest run with --arm again
    # the run's --option may not silently override an arm
    with pytest.raises(SurgtwinError, match="override the cohort's trial arm implant.size"):
        cohort.run_cohort(ents, ["segment", "implant"], tmp_path, workers=0, options={"implant": {"size": 3}})


@pytest.mark.parametrize("bad", ["implant.size", "implant=2,4", "implant.size=", "implant.size=2,2"])
def test_bad_arms_are_refused(bad):
    with pytest.raises(SurgtwinError, match="arm"):
        cohort.parse_arms([bad])


def test_case_options_change_only_the_fingerprints_of_their_steps():
    e = _virtual(1)[0]
    bare = cohort.CohortCase(e.case_id, e.source)
    steps = ["segment", "mesh", "tavr"]
    with_o, without = cohort.step_fingerprints(e, steps, {}), cohort.step_fingerprints(bare, steps, {})
    assert with_o[:2] == without[:2] and with_o[2] != without[2]
    # a run option equal to the case's own value changes nothing
    same = cohort.step_fingerprints(e, steps, {"tavr": {"bsa_m2": e.options["tavr"]["bsa_m2"]}})
    assert same == with_o


@pytest.mark.parametrize("bad, msg", [
    ({"surgtwin_cohort": 1, "cases": [{"case_id": "a", "source": {"kind": "virtual"}, "options": {"tavr": 3}}]},
     "'options' must map step names"),
    ({"surgtwin_cohort": 1, "cases": [{"case_id": "a b", "source": {"kind": "virtual"}}]}, "may only hold"),
    ({"surgtwin_cohort": 1, "cases": [{"case_id": "a", "source": {"kind": "pacs"}}]}, "unknown source kind"),
    ({"cases": []}, "not a surgtwin cohort manifest"),
    ({"surgtwin_cohort": 1, "cases": [{"case_id": "a", "source": {"kind": "case", "path": "x"}}] * 2}, "repeat"),
])
def test_bad_manifest_is_refused_naming_the_file(tmp_path, bad, msg):
    p = tmp_path / "cohort.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(SurgtwinError, match=msg) as ei:
        cohort.read_manifest(p)
    assert str(ei.value.path) == str(p)


def test_virtual_cohort_refuses_bad_arguments():
    with pytest.raises(SurgtwinError, match="unknown phantom kind"):
        cohort.virtual_cohort("knee", 3)
    with pytest.raises(SurgtwinError, match="1 to 100000"):
        cohort.virtual_cohort("head", 0)


def test_discover_samples_studies_and_cases(tmp_path):
    from surgtwin.services.pipeline import sample_cases

    samples = sample_cases()
    ents = cohort.discover([s.folder for s in samples])
    assert [e.case_id for e in ents] == [s.name for s in samples]
    assert {e.source["kind"] for e in ents} == {"sample"}
    # a folder of study folders: one case per study, DICOM folders found by their files
    studies = tmp_path / "studies"
    studies.mkdir()
    for s in samples[:2]:
        (studies / s.name).symlink_to(s.dicom, target_is_directory=True)
    ents = cohort.discover([studies])
    assert [(e.case_id, e.source["kind"]) for e in ents] == [(s.name, "dicom") for s in samples[:2]]
    # the same name twice gets a unique id
    ents = cohort.discover([samples[0].folder, samples[0].folder])
    assert [e.case_id for e in ents] == [samples[0].name, f"{samples[0].name}-2"]


def test_discover_refuses_what_holds_no_study(tmp_path):
    with pytest.raises(SurgtwinError, match="does not exist"):
        cohort.discover([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hello")
    with pytest.raises(SurgtwinError, match="holds no study") as ei:
        cohort.discover([tmp_path / "empty"])
    assert str(ei.value.path) == str(tmp_path / "empty")


# -- one case --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_run_case_records_steps_truth_and_dice_then_resumes(tmp_path):
    e = _virtual(1, first_seed=3)[0]
    rec = cohort.run_case(e, ["segment"], tmp_path)
    assert rec["status"] == "ok", rec["error"]
    assert rec["steps"]["segment"]["status"] == "ok" and rec["steps"]["segment"]["summary"]["structures"]
    assert rec["ground_truth"]["seed"] == 3 and rec["ground_truth"]["annulus_perimeter_mm"] > 40
    assert 0.8 < rec["dice"]["left_ventricle"] <= 1.0
    assert cohort.read_record(tmp_path, e.case_id) == rec
    from surgtwin.services.pipeline import load_case

    case = load_case(cohort.case_path(tmp_path, e.case_id))
    assert case.labels is not None and case.item("ground_truth").value["seed"] == 3
    # current: the same call returns the record without running
    assert cohort.run_case(e, ["segment"], tmp_path)["finished"] == rec["finished"]
    # one more step: segment is kept (its fingerprint holds), only mesh runs
    rec2 = cohort.run_case(e, ["segment", "mesh"], tmp_path)
    assert rec2["status"] == "ok" and rec2["resumed_after"] == ["segment"]
    assert rec2["steps"]["segment"] == rec["steps"]["segment"] and rec2["dice"] == rec["dice"]
    assert rec2["steps"]["mesh"]["summary"]["structures"]
    assert load_case(cohort.case_path(tmp_path, e.case_id)).meshes
    # rerun from mesh (e.g. surgtwin updated at the same version): segment kept, mesh runs again
    rec_r = cohort.run_case(e, ["segment", "mesh"], tmp_path, rerun_from="mesh")
    assert rec_r["resumed_after"] == ["segment"]  # without rerun_from both would be kept (see above)
    with pytest.raises(SurgtwinError, match="'tavr', is not among the steps"):
        cohort.run_cohort([e], ["segment", "mesh"], tmp_path, workers=0, rerun_from="tavr")
    # other options for segment: everything runs again
    rec3 = cohort.run_case(e, ["segment", "mesh"], tmp_path, options={"segment": {"method": "classical"}})
    assert "resumed_after" not in rec3 and rec3["steps"]["segment"]["fp"] != rec2["steps"]["segment"]["fp"]


@pytest.mark.slow
def test_a_failing_case_is_recorded_and_the_others_go_on(tmp_path):
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not an image at all")
    ents = cohort.discover([bad]) + _virtual(1)
    progress = []
    run = cohort.run_cohort(ents, ["segment", "tavr"], tmp_path / "out", workers=0,
                            progress=lambda f, m: progress.append((f, m)))
    by = {r["case_id"]: r for r in run.records}
    assert by["bad"]["status"] == "failed" and by["bad"]["failed_step"] == "open"
    assert "bad.nii.gz" in by["bad"]["error"]
    assert by["cardiac-cta-0000"]["status"] == "ok"
    assert by["cardiac-cta-0000"]["steps"]["tavr"]["summary"]["measurement"]["perimeter_mm"] > 40
    assert [r["case_id"] for r in run.failed] == ["bad"]
    assert progress[-1][0] == 1.0 and "2/2 cases, 1 failed" in progress[-1][1]
    # a step failing: recorded with the step; the case keeps what it finished
    run = cohort.run_cohort(_virtual(1, first_seed=1), ["segment", "tet"], tmp_path / "out2", workers=0)
    rec = run.records[0]
    assert rec["status"] == "failed" and rec["failed_step"] == "tet" and "structures to mesh" in rec["error"]
    assert rec["steps"]["segment"]["status"] == "ok"
    assert cohort.case_path(tmp_path / "out2", rec["case_id"]).exists()


# -- Dask ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_dask_workers_give_the_sequential_results(tmp_path):
    ents = _virtual(3, first_seed=10)
    seq = cohort.run_cohort(ents, ["segment", "mesh"], tmp_path / "seq", workers=0)
    par = cohort.run_cohort(ents, ["segment", "mesh"], tmp_path / "dask", workers=2)
    assert par.scheduler == "local:2" and seq.scheduler == "sequential"
    assert all(r["status"] == "ok" for r in seq.records + par.records), [r["error"] for r in par.records]
    assert [_results(r) for r in par.records] == [_results(r) for r in seq.records]
    assert len({r["pid"] for r in par.records} - {os.getpid()}) >= 1  # ran in worker processes
    again = cohort.run_cohort(ents, ["segment", "mesh"], tmp_path / "dask", workers=2)
    assert sorted(again.skipped) == sorted(e.case_id for e in ents)  # all current: nothing runs


def _worker_pids(cluster) -> dict:
    return {n.worker_address: n.process.process.pid for n in cluster.workers.values()}


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_no_finished_case_and_the_rerun_completes_it(tmp_path):
    import dask
    from distributed import Client, LocalCluster

    ents = _virtual(4, first_seed=20)
    out = tmp_path / "out"
    killed: dict = {}
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                         silence_logs=50) as cluster, Client(cluster) as spy:

        def progress(fraction, message):
            if killed or not message.startswith("1/4"):
                return
            # one case finished: kill the worker that is in the middle of another one
            for _ in range(200):
                busy = {w: keys for w, keys in spy.processing().items() if keys}
                if busy:
                    break
                time.sleep(0.05)
            addr, keys = next(iter(busy.items()))
            killed.update(addr=addr, keys=list(keys), finished={
                p.stem: p.read_bytes() for p in (out / "results").glob("*.json")
                if json.loads(p.read_bytes())["status"] == "ok"})
            os.kill(_worker_pids(cluster)[addr], signal.SIGKILL)

        run = cohort.run_cohort(ents, ["segment", "mesh"], out, scheduler=cluster.scheduler_address,
                                progress=progress)
    assert killed, "no worker was killed"
    lost = [r for r in run.records if r["status"] != "ok"]
    assert lost and all("worker lost" in r["error"] for r in lost)
    for case_id, before in killed["finished"].items():  # finished before the kill: untouched
        assert (out / "results" / f"{case_id}.json").read_bytes() == before
    rerun = cohort.run_cohort(ents, ["segment", "mesh"], out, workers=0)
    assert all(r["status"] == "ok" for r in rerun.records)
    assert set(killed["finished"]) <= set(rerun.skipped)
    assert {r["case_id"] for r in lost}.isdisjoint(rerun.skipped)


def test_an_unreachable_scheduler_is_one_clear_error(tmp_path):
    with pytest.raises(SurgtwinError, match="cannot reach the Dask scheduler tcp://127.0.0.1:9"):
        cohort.run_cohort(_virtual(1), ["segment"], tmp_path, scheduler="tcp://127.0.0.1:9")


def test_unknown_step_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(SurgtwinError, match="unknown step 'segmnet'"):
        cohort.run_cohort(_virtual(1), ["segmnet"], tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_cancel_stops_the_cohort(tmp_path):
    from surgtwin.core.progress import Cancelled, CancelToken

    tok = CancelToken()
    tok.cancel()
    with pytest.raises(Cancelled):
        cohort.run_cohort(_virtual(2), ["segment"], tmp_path, workers=0, cancel=tok)
    assert not list(tmp_path.glob("results/*.json"))
