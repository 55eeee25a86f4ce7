"""Per-element results for display: element fields averaged to the nodes (smooth colouring).

To colour a surface by an element field directly, take ``TetMesh.boundary(elements)`` (the outward
boundary triangles of a sub-mesh, e.g. the bone without the implant, with the element each bounds)
and ``values[element_of_face]``; ``nodal_average`` gives the volume-weighted mean at each node.
"""

from __future__ import annotations

import numpy as np


def nodal_average(mesh, values, mask=None) -> np.ndarray:
    """(N,) volume-weighted average at each node of the per-element ``values`` over the elements in
    ``mask`` (all by default); NaN at nodes of no such element."""
    m = np.ones(len(mesh.elements), bool) if mask is None else np.asarray(mask, bool)
    p = mesh.nodes[mesh.elements[m]]
    vol = np.abs(np.einsum("ij,ij->i", p[:, 1] - p[:, 0], np.cross(p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]))) / 6.0
    idx = mesh.elements[m].ravel()
    w = np.bincount(idx, weights=np.repeat(vol, 4), minlength=len(mesh.nodes))
    s = np.bincount(idx, weights=np.repeat(vol * np.asarray(values, float)[m], 4), minlength=len(mesh.nodes))
    out = np.full(len(mesh.nodes), np.nan)
    np.divide(s, w, out=out, where=w > 0)
    return out
