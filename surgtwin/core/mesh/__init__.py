"""Patient-specific meshes: surfaces from label maps, checks and repair, file I/O, tetrahedral meshes.

Everything here is in patient LPS millimetres (see ``surgtwin.core.types``). Heavy libraries
(VTK, trimesh, scikit-fem) are imported inside the functions that need them, so importing this
package stays cheap.

Public API
----------
* ``surfaces_from_labels(labelmap, ...) -> dict[str, StructureMesh]``  (``surfaces``)
* ``check_mesh``, ``repair_mesh``                                        (``checks``)
* ``export_mesh``, ``import_mesh``, ``EXPORT_FORMATS``                     (``io``)
* ``tet_mesh(labelmap, structures, ...) -> TetMesh``                       (``tetra``)
"""

from __future__ import annotations

from surgtwin.core.mesh.structure import MeshQuality, StructureMesh

__all__ = [
    "MeshQuality",
    "StructureMesh",
    "surfaces_from_labels",
    "check_mesh",
    "repair_mesh",
    "export_mesh",
    "import_mesh",
    "EXPORT_FORMATS",
    "tet_mesh",
    "TetMesh",
]

_LAZY = {
    "surfaces_from_labels": "surgtwin.core.mesh.surfaces",
    "check_mesh": "surgtwin.core.mesh.checks",
    "repair_mesh": "surgtwin.core.mesh.checks",
    "export_mesh": "surgtwin.core.mesh.io",
    "import_mesh": "surgtwin.core.mesh.io",
    "EXPORT_FORMATS": "surgtwin.core.mesh.io",
    "tet_mesh": "surgtwin.core.mesh.tetra",
    "TetMesh": "surgtwin.core.mesh.tetra",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'surgtwin.core.mesh' has no attribute {name!r}")
