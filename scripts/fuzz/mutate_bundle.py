"""Model-bundle mutators: values anywhere in ``configs/metadata.json`` / ``configs/inference.json``
(wrong types, NaN/inf, huge numbers, config expressions), deleted keys, raw-text damage (truncation,
bad UTF-8, deep nesting, duplicate keys), and file-level damage (missing files, a folder where a file
should be, garbage weights with a matching sha256, bad sha256 sidecars). ``sample(rng, seed_folder)``
-> params; ``apply(folder, params)`` edits a copy of the seed in place."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

CONFIGS = ("configs/metadata.json", "configs/inference.json")
INTERESTING = ("network_data_format", "surgtwin", "network_def", "preprocessing", "inferer")
VALUES = (
    None, True, False, 0, -1, 1, 3, 1e308, float("nan"), float("inf"), float("-inf"), 10**30, -(10**30), "", "abc",
    "$torch.rand(3)", "@image", "%configs#x", [], {}, [1, 2], [0, 0, 0], [1e-300, 1e-300, 1e-300], [-1, -1, -1], "1e3",
    [[[]]], "x" * 100_000, "\u0000", {"_target_": "Identity"}, [float("nan")] * 3, [2**63, 2**63, 2**63], "MR", "CT",
    [16, 16, 16], 2.5, "RAS", "LPI", "XYZ", "RRR", {"0": "background"}, ["a", "b", "c"],
)
NETWORK_EDITS = (
    ("channels", [4, 1_000_000]), ("channels", [1_000_000, 1_000_000]), ("channels", []), ("channels", [4]),
    ("strides", []), ("strides", [2, 2, 2, 2, 2, 2]), ("spatial_dims", 2), ("spatial_dims", 0), ("spatial_dims", 7),
    ("_target_", "monai.networks.nets.UNet"), ("_target_", "SegResNet"), ("_target_", "DynUNet"),
    ("_target_", "SwinUNETR"), ("_target_", "UNETR"), ("_target_", "BasicUNet"), ("_target_", "AttentionUnet"),
    ("_target_", "torch.nn.Identity"), ("out_channels", 0), ("in_channels", 1), ("num_res_units", 1000),
    ("norm", "nosuchnorm"), ("dropout", 2.0), ("act", ["nosuchact", {}]), ("kernel_size", 0), ("kernel_size", 10**6),
)
RAW_EDITS = ("truncate", "bad_utf8", "bom", "deep_nesting", "duplicate_key", "empty", "big_int", "big_exponent",
             "nul_bytes", "not_object")
FILE_EDITS = ("no_metadata", "no_inference", "no_weights", "metadata_is_dir", "weights_is_dir", "empty_weights",
              "garbage_weights", "zip_garbage_weights", "sidecar_garbage", "sidecar_empty", "sha_upper", "sha_short",
              "safetensors_garbage", "weights_symlink_loop")


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def sample_value(rng, seed: Path, files=CONFIGS):
    f = _pick(rng, files)
    doc = json.loads((seed / f).read_text())
    paths = [p for p in _paths(doc) if p]
    good = [p for p in paths if any(str(k) in INTERESTING for k in p[:2])]
    path = _pick(rng, good if good and rng.random() < 0.75 else paths)
    op = _pick(rng, ("set", "set", "set", "delete", "swap_type"))
    return {"file": f, "path": list(path), "op": op, "value": json.dumps(_pick(rng, VALUES))}


def _load(folder: Path, f: str):
    return json.loads((folder / f).read_text())


def _dump(folder: Path, f: str, doc) -> None:
    (folder / f).write_text(json.dumps(doc, indent=1))


def apply_value(folder: Path, p) -> None:
    doc = _load(folder, p["file"])
    parent = doc
    for k in p["path"][:-1]:
        parent = parent[k]
    key = p["path"][-1]
    if p["op"] == "delete":
        del parent[key]
    elif p["op"] == "swap_type":
        v = parent[key]
        parent[key] = (list(v.values()) if isinstance(v, dict) else {str(i): x for i, x in enumerate(v)}
                       if isinstance(v, list) else [v])
    else:
        parent[key] = json.loads(p["value"])
    _dump(folder, p["file"], doc)


def sample_network(rng, seed: Path):
    key, value = _pick(rng, NETWORK_EDITS)
    return {"key": key, "value": json.dumps(value)}


def apply_network(folder: Path, p) -> None:
    doc = _load(folder, "configs/inference.json")
    if isinstance(doc.get("network_def"), dict):
        doc["network_def"][p["key"]] = json.loads(p["value"])
    _dump(folder, "configs/inference.json", doc)


def sample_raw(rng, seed: Path, files=CONFIGS):
    return {"file": _pick(rng, files), "edit": _pick(rng, RAW_EDITS), "frac": float(rng.random()),
            "depth": int(_pick(rng, (100, 5000, 200_000)))}


def apply_raw(folder: Path, p) -> None:
    path = folder / p["file"]
    text = path.read_bytes()
    e = p["edit"]
    if e == "truncate":
        text = text[: int(len(text) * p["frac"])]
    elif e == "bad_utf8":
        at = int(len(text) * p["frac"])
        text = text[:at] + b"\xff\xfe\xc3" + text[at:]
    elif e == "bom":
        text = b"\xef\xbb\xbf" + text
    elif e == "deep_nesting":
        text = b'{"x": ' + b"[" * p["depth"] + b"]" * p["depth"] + b"}"
    elif e == "duplicate_key":
        text = text.replace(b"{", b'{"name": 1, "name": {}, ', 1)
    elif e == "empty":
        text = b""
    elif e == "big_int":
        text = text.replace(b"{", b'{"big": ' + b"9" * 5000 + b", ", 1)
    elif e == "big_exponent":
        text = text.replace(b"{", b'{"big": 1e999999, ', 1)
    elif e == "nul_bytes":
        text = text.replace(b'"', b'"\x00', 3)
    else:
        text = b"[1, 2, 3]"
    path.write_bytes(text)


def sample_files(rng, seed: Path):
    return {"edit": _pick(rng, FILE_EDITS), "subseed": int(rng.integers(1 << 31))}


def _record_sha(folder: Path, data: bytes) -> None:
    doc = _load(folder, "configs/metadata.json")
    doc.setdefault("surgtwin", {})["weights_sha256"] = hashlib.sha256(data).hexdigest()
    _dump(folder, "configs/metadata.json", doc)


def apply_files(folder: Path, p) -> None:
    import os
    import shutil

    e = p["edit"]
    weights = folder / "models" / "model.pt"
    r = np.random.default_rng(p["subseed"])
    if e == "no_metadata":
        (folder / "configs" / "metadata.json").unlink()
    elif e == "no_inference":
        (folder / "configs" / "inference.json").unlink()
    elif e == "no_weights":
        weights.unlink()
    elif e == "metadata_is_dir":
        (folder / "configs" / "metadata.json").unlink()
        (folder / "configs" / "metadata.json").mkdir()
    elif e == "weights_is_dir":
        weights.unlink()
        weights.mkdir()
    elif e in ("empty_weights", "garbage_weights", "zip_garbage_weights"):
        if e == "empty_weights":
            data = b""
        elif e == "garbage_weights":
            data = r.integers(0, 256, int(r.integers(1, 4096))).astype(np.uint8).tobytes()
        else:
            good = weights.read_bytes()
            buf = bytearray(good)
            for at in r.integers(0, len(buf), 8):
                buf[at] = int(r.integers(0, 256))
            data = bytes(buf)
        weights.write_bytes(data)
        _record_sha(folder, data)
    elif e in ("sidecar_garbage", "sidecar_empty"):
        doc = _load(folder, "configs/metadata.json")
        doc.get("surgtwin", {}).pop("weights_sha256", None)
        _dump(folder, "configs/metadata.json", doc)
        side = weights.with_name("model.pt.sha256")
        side.write_bytes(b"" if e == "sidecar_empty" else b"   \n\xff\xfe zz" * int(r.integers(1, 4)))
    elif e in ("sha_upper", "sha_short"):
        doc = _load(folder, "configs/metadata.json")
        sha = doc.get("surgtwin", {}).get("weights_sha256", "")
        doc.setdefault("surgtwin", {})["weights_sha256"] = sha.upper() if e == "sha_upper" else sha[:8]
        _dump(folder, "configs/metadata.json", doc)
    elif e == "safetensors_garbage":
        data = r.integers(0, 256, 64).astype(np.uint8).tobytes()
        (folder / "models" / "model.safetensors").write_bytes(data)
        _record_sha(folder, data)
    elif e == "weights_symlink_loop":
        weights.unlink()
        os.symlink("model.pt", weights)
    else:
        shutil.rmtree(folder / "models")


#: name -> (weight, sample(rng, seed_folder), apply(folder, params))
MUTATORS = {
    "value": (50, sample_value, apply_value),
    "network": (10, sample_network, apply_network),
    "raw": (15, sample_raw, apply_raw),
    "files": (15, sample_files, apply_files),
}


def apply(folder: Path, mutations: list[dict]) -> None:
    for m in mutations:
        try:
            MUTATORS[m["m"]][2](folder, m["p"])
        except (KeyError, IndexError, TypeError, ValueError, OSError, AttributeError, RecursionError):
            continue  # an earlier mutation removed or broke what this one edits: the input stays as it is
