"""Input descriptors: ``plan`` draws one from (campaign seed, kind, index); ``materialize`` writes it.

A descriptor is plain JSON (seed name + mutator names + params + how the input is fed), so it is
the whole reproducer: ``materialize(desc)`` rebuilds the same bytes from the seed corpus, and a
regression test can spell a descriptor out by hand.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from . import mutate_bundle, mutate_dicom, mutate_nifti
from .seeds import Corpus

KINDS = {"dicom": ("d", 1), "nifti": ("n", 2), "bundle": ("b", 3)}
_PREFIX = {v[0]: k for k, v in KINDS.items()}

#: DICOM seed weights (pydicom's test files share the remainder)
HEAD_WEIGHTS = {"head_rle": 0.25, "head_evr": 0.2, "head_ivr": 0.2, "head_enh": 0.1}


def input_id(kind: str, index: int) -> str:
    return f"{KINDS[kind][0]}{index:06d}"


def parse_id(ident: str) -> tuple[str, int]:
    return _PREFIX[ident[0]], int(ident[1:])


def rng_for(seed: int, kind: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), KINDS[kind][1], int(index)])


def plan(corpus: Corpus, seed: int, kind: str, index: int) -> dict:
    rng = rng_for(seed, kind, index)
    desc = {"id": input_id(kind, index), "seed_value": int(seed), "kind": kind}
    if kind == "dicom":
        desc.update(_plan_dicom(corpus, rng))
    elif kind == "nifti":
        desc.update(_plan_nifti(corpus, rng))
    else:
        desc.update(_plan_bundle(corpus, rng))
    return desc


def _choose_dicom_seed(corpus: Corpus, rng) -> str:
    names = list(corpus.dicom)
    others = [n for n in names if n not in HEAD_WEIGHTS]
    rest = 1.0 - sum(HEAD_WEIGHTS.get(n, 0.0) for n in names)
    w = np.array([HEAD_WEIGHTS.get(n, rest / max(1, len(others))) for n in names])
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def _plan_dicom(corpus: Corpus, rng) -> dict:
    name = _choose_dicom_seed(corpus, rng)
    seed = corpus.dicom[name]
    out: dict = {"seed": name, "cli": bool(rng.random() < 0.15)}
    if seed.series and rng.random() < 0.3:
        op = mutate_dicom.sample_series(rng, len(seed.files))
        out.update(context="series", series_op=op, entry="folder", convert=bool(rng.random() < 0.08))
        if rng.random() < 0.3:  # and one file of the result damaged as well
            items = mutate_dicom.apply_series([corpus.read(f) for f in seed.files], op)
            j = int(rng.integers(len(items)))
            data = items[j] if isinstance(items[j], bytes) else corpus.read(seed.files[items[j]])
            m = mutate_dicom.choose(rng, mutate_dicom.SINGLE)
            out["post"] = {"index": j, "mutations": [{"m": m, "p": mutate_dicom.SINGLE[m][1](rng, data)}]}
        return out
    target = int(rng.integers(len(seed.files)))
    data = corpus.read(seed.files[target])
    n_mut = 1 if rng.random() < 0.8 else int(rng.integers(2, 4))
    muts = []
    multiframe = name in ("head_enh", "pd_rtdose", "pd_rtdose_rle")
    for _ in range(n_mut):
        table = mutate_dicom.MULTIFRAME if multiframe and rng.random() < 0.3 else mutate_dicom.SINGLE
        m = mutate_dicom.choose(rng, table)
        p = table[m][1](rng, data)
        muts.append({"m": m, "p": p})
        data = mutate_dicom.apply_single(data, [muts[-1]])
    context = "series" if seed.series and rng.random() < 0.6 else "single"
    entry = "file" if context == "single" and rng.random() < 0.3 else "folder"
    out.update(context=context, target=target, mutations=muts, entry=entry, convert=bool(rng.random() < 0.08))
    return out


def _plan_nifti(corpus: Corpus, rng) -> dict:
    names = list(corpus.nifti)
    name = names[int(rng.integers(len(names)))]
    data = corpus.read(corpus.nifti[name])
    muts = []
    for _ in range(1 if rng.random() < 0.6 else int(rng.integers(2, 4))):
        m = mutate_dicom.choose(rng, mutate_nifti.MUTATORS)
        p = mutate_nifti.MUTATORS[m][1](rng, data)
        muts.append({"m": m, "p": p})
        data = mutate_nifti.apply(data, [muts[-1]])
    gz = ("none", "none", "gzip", "gzip_truncated", "plain_named_gz")[int(rng.integers(5))]
    out = {"seed": name, "mutations": muts, "gz": gz, "cli": bool(rng.random() < 0.3),
           "convert": bool(rng.random() < 0.1)}
    if name in corpus.tables:
        if rng.random() < 0.5:  # damage the table instead of (as well as) the image
            m = ("value", "raw")[int(rng.random() < 0.3)]
            p = mutate_bundle.MUTATORS[m][1](rng, corpus.tables[name].parent, files=("labels.json",))
            out["table_mutations"] = [{"m": m, "p": p}]
            if rng.random() < 0.6:
                out["mutations"] = []
    return out


def _plan_bundle(corpus: Corpus, rng) -> dict:
    names = list(corpus.bundle)
    name = names[int(rng.integers(len(names)))]
    muts = []
    for _ in range(1 if rng.random() < 0.7 else 2):
        m = mutate_dicom.choose(rng, mutate_bundle.MUTATORS)
        muts.append({"m": m, "p": mutate_bundle.MUTATORS[m][1](rng, corpus.bundle[name])})
    return {"seed": name, "mutations": muts}


def materialize(desc: dict, corpus: Corpus, dest: Path) -> tuple[Path, list[str]]:
    """Write the input under ``dest`` (emptied first); return the path to feed and the mutated file names."""
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    kind = desc["kind"]
    if kind == "dicom":
        return _materialize_dicom(desc, corpus, dest)
    if kind == "nifti":
        data = mutate_nifti.apply(corpus.read(corpus.nifti[desc["seed"]]), desc["mutations"])
        data, suffix = mutate_nifti.wrap(data, desc.get("gz", "none"))
        table = corpus.tables.get(desc["seed"])
        path = dest / f"{'labels' if table else 'image'}{suffix}"
        path.write_bytes(data)
        if table:
            shutil.copy(table, dest / "labels.json")
            mutate_bundle.apply(dest, desc.get("table_mutations", []))
            shutil.copy(corpus.reference, dest / "reference.nii")
        return path, [path.name]
    folder = dest / "bundle"
    shutil.copytree(corpus.bundle[desc["seed"]], folder)
    mutate_bundle.apply(folder, desc["mutations"])
    return folder, []


def _materialize_dicom(desc: dict, corpus: Corpus, dest: Path) -> tuple[Path, list[str]]:
    seed = corpus.dicom[desc["seed"]]
    files = [corpus.read(f) for f in seed.files]
    folder = dest / "dicom"
    folder.mkdir()
    if "series_op" in desc:
        items = mutate_dicom.apply_series(files, desc["series_op"])
        post = desc.get("post")
        for j in (post.get("indices") or [post["index"]]) if post else []:  # "indices": several files
            if j < len(items):
                data = items[j] if isinstance(items[j], bytes) else files[items[j]]
                items[j] = mutate_dicom.apply_single(data, post["mutations"])
    else:
        t = desc["target"]
        new = mutate_dicom.apply_single(files[t], desc["mutations"])
        items = [new if i == t else i for i in range(len(files))] if desc["context"] == "series" else [new]
    mutated = []
    for j, item in enumerate(items):
        path = folder / f"s{j:02d}.dcm"
        if isinstance(item, int):
            os.symlink(seed.files[item], path)
        else:
            path.write_bytes(item)
            mutated.append(path.name)
    if desc.get("entry") == "file" and mutated:
        return folder / mutated[0], mutated
    return folder, mutated
