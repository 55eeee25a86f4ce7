"""How each case item is written to and read from one file inside a ``.stwin`` case.

=========  ===========  ==================================================================
kind       file         content
=========  ===========  ==================================================================
volume     ``.nii.gz``  the image (NIfTI, LPS geometry restored exactly from the manifest)
labelmap   ``.nii.gz``  the label map on the image grid; its table is in the manifest
surfaces   ``.npz``     per structure ``v<i>`` (N, 3) float32 LPS mm, ``f<i>`` (M, 3) int32;
                        ``names``, ``labels``, ``colors`` arrays
tetmesh    ``.npz``     ``nodes`` (N, 3) float64, ``elements`` (M, 4) int32, ``regions`` (M,),
                        optional ``mean_hu`` (M,); region names and size in the manifest
records    ``.json``    JSON values (implants, trajectories, TAVR sizing ...)
arrays     ``.npz``     named numeric arrays (simulation fields)
=========  ===========  ==================================================================

Readers trust nothing: ``np.load`` never unpickles, shapes/dtypes/indices are checked, and any
problem is a ``SurgtwinError`` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from surgtwin.core.errors import SurgtwinError

EXTENSIONS = {"volume": ".nii.gz", "labelmap": ".nii.gz", "surfaces": ".npz", "tetmesh": ".npz",
              "records": ".json", "arrays": ".npz"}


def _damaged(path: Path, why: str) -> SurgtwinError:
    return SurgtwinError(f"the case file is damaged: {why}", path=path,
                         hint="restore the case from a backup or its recovery copy")


# -- writing --------------------------------------------------------------------------------------
def write_item(kind: str, value, path: Path) -> dict:
    """Write ``value`` of ``kind`` to ``path``; returns the manifest ``meta`` for reading it back."""
    if kind in ("volume", "labelmap"):
        import SimpleITK as sitk

        from surgtwin.core.geometry import volume_to_sitk

        sitk.WriteImage(volume_to_sitk(value), str(path), True)
        meta = {"dtype": str(value.array.dtype), "shape": list(value.shape)}
        if kind == "labelmap":
            meta["label_table"] = value.labels.to_json()
        return meta
    if kind == "surfaces":
        arrays = {"names": np.array(list(value), dtype=str),
                  "labels": np.array([int(m.label) for m in value.values()], dtype=np.int32),
                  "colors": np.array([list(m.color)[:3] for m in value.values()], dtype=np.uint8).reshape(-1, 3)}
        for i, m in enumerate(value.values()):
            arrays[f"v{i}"] = np.asarray(m.vertices, dtype=np.float32)
            arrays[f"f{i}"] = np.asarray(m.faces, dtype=np.int32)
        _savez(path, arrays)
        return {"quality": {n: m.quality.as_dict() for n, m in value.items() if m.quality is not None}}
    if kind == "tetmesh":
        arrays = {"nodes": np.asarray(value.nodes, np.float64), "elements": np.asarray(value.elements, np.int32),
                  "regions": np.asarray(value.regions, np.int32)}
        if value.mean_hu is not None:
            arrays["mean_hu"] = np.asarray(value.mean_hu, np.float32)
        _savez(path, arrays)
        return {"region_names": {str(int(k)): str(v) for k, v in value.region_names.items()},
                "size_mm": float(value.size_mm),
                "quality": value.quality.as_dict() if value.quality is not None else None}
    if kind == "records":
        path.write_text(json.dumps(value, indent=1, allow_nan=False))
        return {}
    if kind == "arrays":
        _savez(path, {str(k): np.asarray(v) for k, v in value.items()})
        return {}
    raise SurgtwinError(f"unknown item kind {kind!r}")


def _savez(path: Path, arrays: dict) -> None:
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)


# -- reading --------------------------------------------------------------------------------------
def read_image(path: Path, meta: dict, reference=None, *, affine=None):
    """A volume/label NIfTI written by ``write_item``; geometry checked against ``affine`` (exact
    float64 affine from the manifest) or ``reference``'s grid."""
    import SimpleITK as sitk

    from surgtwin.core.geometry import volume_from_sitk

    try:
        img = sitk.ReadImage(str(path))
        vol = volume_from_sitk(img)
    except (RuntimeError, SurgtwinError, ValueError) as exc:
        raise _damaged(path, f"not a readable NIfTI image ({str(exc).strip().splitlines()[-1][:120]})") from None
    shape = tuple(meta.get("shape") or ())
    if shape and vol.shape != shape:
        raise _damaged(path, f"image shape {vol.shape} differs from the manifest's {shape}")
    want = np.asarray(affine if affine is not None else reference.affine, dtype=float)
    if reference is not None and vol.shape != reference.shape:
        raise _damaged(path, f"shape {vol.shape} differs from the case image {reference.shape}")
    if not np.allclose(vol.affine, want, atol=1e-3):
        raise _damaged(path, "its geometry differs from the case image")
    from dataclasses import replace

    return replace(vol, affine=want.copy())


def _load_npz(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, KeyError) as exc:
        raise _damaged(path, f"not a readable array archive ({type(exc).__name__}: {str(exc)[:120]})") from None
    except Exception as exc:  # noqa: BLE001 - zipfile raises BadZipFile, zlib.error, ... on garbage
        raise _damaged(path, f"not a readable array archive ({type(exc).__name__})") from None


def _need(arrays: dict, key: str, path: Path, *, ndim: int, cols: int | None = None, kind: str = "f") -> np.ndarray:
    if key not in arrays:
        raise _damaged(path, f"array {key!r} is missing")
    a = arrays[key]
    if a.dtype.kind not in ("f", "i", "u") or (kind == "i" and a.dtype.kind == "f"):
        raise _damaged(path, f"array {key!r} has type {a.dtype}, expected {'integers' if kind == 'i' else 'numbers'}")
    if a.ndim != ndim or (cols is not None and a.shape[-1] != cols):
        raise _damaged(path, f"array {key!r} has shape {a.shape}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise _damaged(path, f"array {key!r} holds NaN or infinite values")
    return a


def _indices(a: np.ndarray, n: int, key: str, path: Path) -> np.ndarray:
    if a.size and (int(a.min()) < 0 or int(a.max()) >= n):
        raise _damaged(path, f"array {key!r} indexes points that do not exist")
    return a.astype(np.int64)


def read_surfaces(path: Path, meta: dict) -> dict:
    from surgtwin.core.mesh import MeshQuality, StructureMesh

    z = _load_npz(path)
    if "names" not in z or z["names"].dtype.kind != "U" or z["names"].ndim != 1:
        raise _damaged(path, "array 'names' is missing or not text")
    names = [str(n) for n in z["names"]]
    # schema-1 session meshes call the label values "values" and carry no colours
    labels = _need(z, "labels" if "labels" in z or "values" not in z else "values", path, ndim=1, kind="i")
    colors = _need(z, "colors", path, ndim=2, cols=3, kind="i") if "colors" in z else \
        np.full((len(names), 3), 200, dtype=np.uint8)
    if len(labels) != len(names) or len(colors) != len(names):
        raise _damaged(path, "names, labels and colours differ in length")
    quality = meta.get("quality") or {}
    fields = set(MeshQuality.__dataclass_fields__)
    out = {}
    for i, name in enumerate(names):
        v = _need(z, f"v{i}", path, ndim=2, cols=3).astype(np.float64)
        f = _indices(_need(z, f"f{i}", path, ndim=2, cols=3, kind="i"), len(v), f"f{i}", path)
        q = quality.get(name)
        mq = None
        if isinstance(q, dict):
            try:
                mq = MeshQuality(**{k: q[k] for k in fields if k in q})
            except TypeError:
                mq = None
        out[name] = StructureMesh(name, int(labels[i]), tuple(int(c) for c in colors[i]), v, f, quality=mq)
    return out


def read_tetmesh(path: Path, meta: dict):
    from surgtwin.core.mesh.tetra import TetMesh, TetQuality

    z = _load_npz(path)
    nodes = _need(z, "nodes", path, ndim=2, cols=3).astype(np.float64)
    elements = _indices(_need(z, "elements", path, ndim=2, cols=4, kind="i"), len(nodes), "elements", path)
    regions = _need(z, "regions", path, ndim=1, kind="i").astype(np.int64)
    if len(regions) != len(elements):
        raise _damaged(path, "one region per element expected")
    mean_hu = _need(z, "mean_hu", path, ndim=1).astype(np.float64) if "mean_hu" in z else None
    if mean_hu is not None and len(mean_hu) != len(elements):
        raise _damaged(path, "one mean HU per element expected")
    q = meta.get("quality")
    quality = None
    if isinstance(q, dict):
        try:
            quality = TetQuality(**{k: q[k] for k in TetQuality.__dataclass_fields__ if k in q})
        except TypeError:
            quality = None
    names = {int(k): str(v) for k, v in (meta.get("region_names") or {}).items()}
    return TetMesh(nodes, elements, regions, names, float(meta.get("size_mm", 0.0)), mean_hu, quality)


def read_item(kind: str, path: Path, meta: dict, volume=None):
    """Read an item of ``kind`` written by ``write_item``; labelmaps need the case ``volume``."""
    if kind == "labelmap":
        from surgtwin.core.types import LabelMap, LabelTable

        vol = read_image(path, meta, volume)
        if not np.issubdtype(vol.array.dtype, np.integer):
            raise _damaged(path, f"the label map holds {vol.array.dtype} values, not integers")
        table = LabelTable.from_json(meta.get("label_table") or [], source=path)
        return LabelMap(vol.array, vol.affine, volume.frame_of_reference_uid, None, {}, labels=table)
    if kind == "surfaces":
        return read_surfaces(path, meta)
    if kind == "tetmesh":
        return read_tetmesh(path, meta)
    if kind == "records":
        try:
            return json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise _damaged(path, f"not valid JSON ({exc})") from None
    if kind == "arrays":
        z = _load_npz(path)
        for k, a in z.items():
            if a.dtype.kind not in "biuf":
                raise _damaged(path, f"array {k!r} has type {a.dtype}")
        return z
    raise SurgtwinError(f"unknown item kind {kind!r}", path=path)
