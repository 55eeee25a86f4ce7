"""The implant library: parametric families (package data) and users' own implant meshes.

Each family is one JSON file in ``surgtwin.resources.implants_dir()`` (``pedicle-screw.json``,
``hip-stem.json``, ``bone-plate.json``, ``valve-balloon-expandable.json``, ``valve-self-expanding.json``)
naming its generator, material, local frame, family parameters and sizes (a list, or a grid of
parameter axes). Materials are in ``materials.json`` with their sources. Geometry is generated on
demand as a watertight ``StructureMesh`` in the implant's **local frame** (mm; the family's ``frame``
text says where the origin is; +z is always the insertion axis: toward the screw tip, distally down
the femoral stem, into the bone under a plate, along the flow through a valve frame).

``bone_engaging`` says which part is meant to lie in bone (the breach check): ``"z_positive"`` (the
part at z >= 0: a screw's shank, a stem below the resection), ``"all"`` or ``"none"`` (plates sit on
bone, valve frames in vessels).

    >>> from surgtwin.core.plan import implants
    >>> screw = implants.family("pedicle-screw").implant("6.5x45")
    >>> screw.mesh().quality.watertight
    True
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path

import numpy as np

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.mesh.structure import StructureMesh

BONE_ENGAGING = ("z_positive", "all", "none")
#: custom implant limits: largest dimension (mm) and triangles
CUSTOM_MIN_EXTENT_MM = 2.0
CUSTOM_MAX_EXTENT_MM = 500.0
CUSTOM_MAX_TRIANGLES = 200_000
CUSTOM_FAMILY = "custom"


@dataclass(frozen=True)
class Material:
    """Linear-elastic constants and yield (0.2 % proof) stress of an implant material."""

    key: str
    name: str
    youngs_modulus_gpa: float
    poisson_ratio: float
    yield_mpa: float
    yield_range_mpa: tuple[float, float]
    density_g_cm3: float
    standard: str
    source: str

    def to_json(self) -> dict:
        return {"key": self.key, "name": self.name, "youngs_modulus_gpa": self.youngs_modulus_gpa,
                "poisson_ratio": self.poisson_ratio, "yield_mpa": self.yield_mpa,
                "yield_range_mpa": list(self.yield_range_mpa), "density_g_cm3": self.density_g_cm3}


def _library_dir() -> Path:
    from surgtwin import resources

    return resources.implants_dir()


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SurgtwinError(f"cannot read the implant library file ({exc})", path=path,
                            hint="reinstall surgtwin or restore the file") from None
    if not isinstance(data, dict) or data.get("schema") != 1:
        raise SurgtwinError("not an implant library file of schema 1", path=path)
    return data


def _number(d: dict, key: str, path: Path, where: str, *, positive: bool = True) -> float:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or (positive and v <= 0):
        raise SurgtwinError(f"{where}.{key} must be a {'positive ' if positive else ''}number, got {v!r}", path=path)
    return float(v)


@cache
def materials() -> dict[str, Material]:
    """The materials of ``materials.json`` by key (``ti6al4v``, ``cocr``, ``ss316l``, ``nitinol``)."""
    path = _library_dir() / "materials.json"
    out = {}
    for n, m in enumerate(_read_json(path).get("materials") or []):
        where = f"materials[{n}]"
        if not isinstance(m, dict) or not isinstance(m.get("key"), str):
            raise SurgtwinError(f"{where} needs a key", path=path)
        rng = m.get("yield_range_mpa")
        if not (isinstance(rng, list) and len(rng) == 2 and all(isinstance(x, int | float) for x in rng)):
            raise SurgtwinError(f"{where}.yield_range_mpa must be [low, high]", path=path)
        nu = _number(m, "poisson_ratio", path, where)
        if nu >= 0.5:
            raise SurgtwinError(f"{where}.poisson_ratio must be below 0.5, got {nu}", path=path)
        out[m["key"]] = Material(m["key"], str(m.get("name", m["key"])), _number(m, "youngs_modulus_gpa", path, where),
                                 nu, _number(m, "yield_mpa", path, where), (float(rng[0]), float(rng[1])),
                                 _number(m, "density_g_cm3", path, where), str(m.get("standard", "")),
                                 str(m.get("source", "")))
    return out


def _pick(table: dict, key: str, what: str):
    if key not in table:
        raise SurgtwinError(f"unknown implant {what} {key!r}", hint=f"known: {', '.join(table)}")
    return table[key]


def material(key: str) -> Material:
    return _pick(materials(), key, "material")


@dataclass(frozen=True, eq=False)
class Family:
    """An implant family of the library: a generator, a material, parameters and sizes."""

    name: str
    title: str
    generator: str
    material_key: str
    bone_engaging: str
    frame: str
    description: str
    parameters: dict
    sizes: dict  # label -> the size's own parameters
    source: str
    path: Path

    def size_labels(self) -> list[str]:
        return list(self.sizes)

    def params(self, size: str) -> dict:
        """The merged parameters of ``size`` (family parameters, then the size's)."""
        size = str(size)
        if size not in self.sizes:
            raise SurgtwinError(f"{self.name} has no size {size!r}", hint=f"sizes: {', '.join(self.sizes)}")
        return {**self.parameters, **self.sizes[size], "label": size}

    def implant(self, size: str, *, material_key: str | None = None) -> Implant:
        return Implant(self.name, str(size), self.params(size), material(material_key or self.material_key),
                       self.generator, self.bone_engaging)

    def describe(self) -> dict:
        return {"name": self.name, "title": self.title, "material": self.material_key, "frame": self.frame,
                "bone_engaging": self.bone_engaging, "sizes": self.size_labels(), "source": self.source}


def _load_family(path: Path) -> Family:
    from surgtwin.core.plan.generators import GENERATORS

    d = _read_json(path)
    name = d.get("name")
    if not isinstance(name, str) or not name:
        raise SurgtwinError("the family needs a name", path=path)
    gen = d.get("generator")
    if gen not in GENERATORS:
        raise SurgtwinError(f"generator must be one of {', '.join(GENERATORS)}, got {gen!r}", path=path)
    if d.get("bone_engaging") not in BONE_ENGAGING:
        raise SurgtwinError(f"bone_engaging must be one of {', '.join(BONE_ENGAGING)}", path=path)
    material(str(d.get("material")))
    params = d.get("parameters") or {}
    for k in params:
        _number(params, k, path, "parameters")
    sizes: dict[str, dict] = {}
    if "size_grid" in d:
        grid = d["size_grid"]
        axes = grid.get("axes") or {}
        for combo in itertools.product(*axes.values()):
            p = dict(zip(axes, combo, strict=True))
            sizes[str(grid["label"]).format(**p)] = p
    for n, s in enumerate(d.get("sizes") or []):
        if not isinstance(s, dict) or "label" not in s:
            raise SurgtwinError(f"sizes[{n}] needs a label", path=path)
        sizes[str(s["label"])] = {k: v for k, v in s.items() if k != "label"}
    if not sizes:
        raise SurgtwinError("the family has no sizes", path=path)
    for label, s in sizes.items():
        for k in s:
            _number(s, k, path, f"size {label}")
    return Family(name, str(d.get("title", name)), gen, str(d["material"]), d["bone_engaging"],
                  str(d.get("frame", "")), str(d.get("description", "")), dict(params), sizes,
                  str(d.get("source", "")), path)


@cache
def _library() -> dict[str, Family]:
    folder = _library_dir()
    if not folder.is_dir():
        raise SurgtwinError("the implant library folder is missing", path=folder, hint="reinstall surgtwin")
    fams = {}
    for path in sorted(folder.glob("*.json")):
        if path.name == "materials.json":
            continue
        fam = _load_family(path)
        if fam.name in fams:
            raise SurgtwinError(f"implant family {fam.name!r} is defined twice", path=path)
        fams[fam.name] = fam
    return fams


def families() -> list[str]:
    """Names of the library's implant families."""
    return list(_library())


def family(name: str) -> Family:
    return _pick(_library(), name, "family")


@dataclass(frozen=True, eq=False)
class Implant:
    """One implant: family, size label, parameters (mm, degrees), material, and its geometry.

    ``mesh()`` is a watertight ``StructureMesh`` in the local frame (see the family's ``frame``).
    A custom implant (``custom_implant``) carries its own triangles in ``custom_mesh``."""

    family: str
    size: str
    params: dict
    material: Material
    generator: str
    bone_engaging: str = "z_positive"
    custom_mesh: tuple | None = field(default=None, repr=False)  # (vertices, faces) of a custom implant

    @property
    def label(self) -> str:
        return f"{self.family} {self.size}"

    @cached_property
    def _geometry(self) -> StructureMesh:
        from surgtwin.core.mesh.checks import check_mesh
        from surgtwin.core.mesh.structure import vertex_normals
        from surgtwin.core.plan.generators import GENERATORS

        if self.custom_mesh is not None:
            v, f = self.custom_mesh
        else:
            v, f = GENERATORS[self.generator](self.params)
        q = check_mesh(v, f, method=f"implant {self.generator}")
        return StructureMesh(self.label, 0, (200, 200, 210), v, f, vertex_normals(v, f), q)

    def mesh(self) -> StructureMesh:
        """The implant's surface in its local frame (mm); shared, do not modify it in place."""
        return self._geometry

    @property
    def volume_ml(self) -> float:
        return float(self._geometry.quality.volume_ml)

    def to_json(self) -> dict:
        out = {"family": self.family, "size": self.size, "material": self.material.key,
               "generator": self.generator, "bone_engaging": self.bone_engaging,
               "params": {k: v for k, v in self.params.items() if k != "label"}}
        if self.custom_mesh is not None:
            v, f = self.custom_mesh
            out["mesh"] = {"vertices": np.round(v, 5).tolist(), "faces": np.asarray(f).tolist()}
        return out

    @classmethod
    def from_json(cls, d: dict, *, source: str = "implant record") -> Implant:
        """Rebuild from ``to_json``: library implants from their stored parameters (so a saved
        plan keeps its geometry even if the library changes), custom ones from their triangles."""
        from surgtwin.core.plan.generators import GENERATORS

        try:
            fam, size, gen = str(d["family"]), str(d["size"]), str(d["generator"])
            params = dict(d["params"])
            mat = material(str(d["material"]))
            engaging = str(d.get("bone_engaging", "z_positive"))
            mesh = None
            if "mesh" in d:
                v = np.asarray(d["mesh"]["vertices"], np.float64).reshape(-1, 3)
                f = np.asarray(d["mesh"]["faces"], np.int64).reshape(-1, 3)
                if len(f) == 0 or f.min() < 0 or f.max() >= len(v):
                    raise ValueError("its triangles refer to missing vertices")
                mesh = (v, f)
            elif gen not in GENERATORS:
                raise ValueError(f"unknown generator {gen!r}")
            if engaging not in BONE_ENGAGING:
                raise ValueError(f"bone_engaging {engaging!r}")
        except (KeyError, TypeError, ValueError) as exc:
            raise SurgtwinError(f"malformed implant record ({exc})", path=source,
                                hint="the case's implants were damaged; place the implant again") from None
        return cls(fam, size, {**params, "label": size}, mat, gen, engaging, mesh)


def custom_implant(path, *, name: str | None = None, material_key: str = "ti6al4v",
                   bone_engaging: str = "all", max_triangles: int = CUSTOM_MAX_TRIANGLES) -> Implant:
    """A user's own implant from an STL/OBJ/PLY/3MF/VTP file in millimetres, in the file's own frame.

    Refused (``SurgtwinError`` naming the file and the reason) when it cannot be read, has more than
    ``max_triangles`` triangles, is not a closed outward surface (watertight, consistent winding),
    or its size looks like another unit: largest dimension below 2 mm (metres or centimetres?) or
    above 500 mm (microns or tenths of a mm?)."""
    from surgtwin.core.mesh.checks import check_mesh
    from surgtwin.core.mesh.io import read_mesh_arrays

    path = Path(path)
    if bone_engaging not in BONE_ENGAGING:
        raise SurgtwinError(f"bone_engaging must be one of {', '.join(BONE_ENGAGING)}")
    mat = material(material_key)
    v, f = read_mesh_arrays(path)
    if len(f) == 0:
        raise SurgtwinError("the implant file has no triangles", path=path)
    if len(f) > max_triangles:
        raise SurgtwinError(f"the implant has {len(f)} triangles, more than the {max_triangles} allowed",
                            path=path, hint="decimate it in the vendor or CAD software")
    if not np.all(np.isfinite(v)) or f.min() < 0 or f.max() >= len(v):
        raise SurgtwinError("the implant has non-finite vertices or triangles referring to missing vertices",
                            path=path)
    extent = float(np.max(v.max(axis=0) - v.min(axis=0)))
    if extent < CUSTOM_MIN_EXTENT_MM:
        raise SurgtwinError(f"the implant is {extent:.4g} units across: too small for millimetres "
                            "(is the file in metres or centimetres?)", path=path, hint="export it in mm")
    if extent > CUSTOM_MAX_EXTENT_MM:
        raise SurgtwinError(f"the implant is {extent:.6g} units across: too large for millimetres "
                            "(is the file in microns?)", path=path, hint="export it in mm")
    # STL repeats each triangle's corners: merge equal vertices (1 nm), drop collapsed triangles;
    # nothing else is repaired (a hole is the vendor's to close)
    v, inverse = np.unique(np.round(v, 6), axis=0, return_inverse=True)
    f = inverse.reshape(-1)[f]
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])]
    q = check_mesh(v, f)
    if not (q.watertight and q.winding_consistent):
        raise SurgtwinError(f"the implant is not a closed surface: {'; '.join(q.problems())}", path=path,
                            hint="ask the vendor for a watertight model")
    if q.volume_ml * 1000.0 < 1.0:
        raise SurgtwinError(f"the implant encloses only {q.volume_ml * 1000:.3g} mm^3 (a flat or empty shell)",
                            path=path)
    if not q.outward:  # closed and consistent but inside-out: turning it is exact
        f = f[:, ::-1]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    params = {"file": path.name, "sha256": digest, "extent_mm": round(extent, 3),
              "triangles": int(len(f))}
    return Implant(CUSTOM_FAMILY, name or path.stem, {**params, "label": name or path.stem}, mat, "custom",
                   bone_engaging, (np.asarray(v, np.float64), np.asarray(f, np.int64)))
