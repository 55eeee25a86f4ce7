"""Issue #12: a short deterministic fuzz campaign (CI) and the harness's own grading.

The campaign feeds ~420 mutated DICOM / NIfTI / bundle inputs (planted fake PHI in every DICOM and
NIfTI seed) to the real entry points in worker subprocesses (3 GB address-space cap, 5 s per input)
and requires 0 defects, 0 hangs, 0 memory errors and 0 PHI leaks. The long campaign is
``python scripts/fuzz/fuzz.py --preset long``.
"""

from __future__ import annotations

import hashlib

import pytest

from scripts.fuzz import campaign, inputs, seeds
from scripts.fuzz.fuzz import PRESETS, run_campaign


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return seeds.build_corpus(tmp_path_factory.mktemp("fuzz") / "corpus", bundles=False)


def _job(corpus, entrypoint: str, index: int = 0) -> dict:
    desc = inputs.plan(corpus, 7, "dicom", index)
    desc["id"] = f"{entrypoint}"
    desc["entrypoint"] = f"tests.fuzz.fake_targets:{entrypoint}"
    return {"desc": desc}


EXPECTED = {
    "ok": "success",
    "refuses": "refusal",
    "raises_value_error": "defect",
    "sleeps": "hang",
    "prints_phi": "phi_leak",
    "writes_phi_to_fd2": "phi_leak",
    "logs_phi": "phi_leak",
    "warns_phi": "phi_leak",
    "phi_in_refusal": "phi_leak",
    "allocates": "memory_error",
    "silently_wrong": "defect",
    "crashes": "defect",
}


def test_harness_grades_each_class(corpus, tmp_path):
    jobs = [_job(corpus, name, i) for i, name in enumerate(EXPECTED)]
    results = campaign.run_jobs(jobs, corpus=corpus.root, workdir=tmp_path, workers=2, timeout_s=2.0)
    got = {r["id"]: r for r in results}
    assert {k: got[k]["cls"] for k in EXPECTED} == EXPECTED
    assert got["raises_value_error"]["exc_type"] == "ValueError"
    assert got["raises_value_error"]["where"].startswith("tests/fuzz/fake_targets.py")
    assert "fake_targets.py" in got["sleeps"]["where"]  # where it hung, from faulthandler's dump
    assert got["logs_phi"]["leaks"][0].startswith("[log]")
    assert "SIGSEGV" in got["crashes"]["message"]


def test_inputs_are_deterministic_for_a_seed(corpus, tmp_path):
    def digest(seed):
        h = hashlib.sha256()
        for i in range(25):
            desc = inputs.plan(corpus, seed, "dicom", i)
            path, _ = inputs.materialize(desc, corpus, tmp_path / "x")
            files = sorted(path.iterdir()) if path.is_dir() else [path]
            for f in files:
                h.update(f.name.encode() + f.read_bytes())
            nd = inputs.plan(corpus, seed, "nifti", i)
            h.update(inputs.materialize(nd, corpus, tmp_path / "y")[0].read_bytes())
        return h.hexdigest()

    assert digest(3) == digest(3)
    assert digest(3) != digest(4)


def test_unmutated_seeds_leak_no_phi(corpus, tmp_path):
    """Every seed as it is (planted identity, no mutation), through scan, load and `info --json`."""
    jobs = []
    for name, seed in corpus.dicom.items():
        for context in ("single", "series") if seed.series else ("single",):
            jobs.append({"desc": {"id": f"{name}-{context}", "kind": "dicom", "seed": name, "context": context,
                                  "target": 0, "mutations": [], "entry": "folder", "cli": True}})
    for name in corpus.nifti:
        jobs.append({"desc": {"id": name, "kind": "nifti", "seed": name, "mutations": [], "gz": "gzip", "cli": True}})
    results = campaign.run_jobs(jobs, corpus=corpus.root, workdir=tmp_path, workers=2, timeout_s=10.0)
    bad = {r["id"]: (r["cls"], r.get("leaks"), r.get("message")) for r in results if r["cls"] not in ("success", "refusal")}
    assert not bad
    heads = {r["id"]: r["cls"] for r in results if r["id"].startswith("head_")}
    assert set(heads.values()) == {"success"}, heads


def test_short_campaign_finds_nothing(tmp_path):
    seed, n_dicom, n_nifti, n_bundle = PRESETS["short"]
    summary, _ = run_campaign(seed, {"dicom": n_dicom, "nifti": n_nifti, "bundle": n_bundle}, workers=2,
                              workdir=tmp_path, quiet=True)
    assert summary["inputs"] == n_dicom + n_nifti + n_bundle
    bad = {c: summary["classes"][c] for c in ("defect", "hang", "memory_error", "phi_leak", "harness_error")}
    assert bad == dict.fromkeys(bad, 0), campaign.format_summary(summary)
    assert summary["inputs_with_phi_leak"] == 0, campaign.format_summary(summary)
    assert summary["classes"]["success"] > 0 and summary["classes"]["refusal"] > 0
