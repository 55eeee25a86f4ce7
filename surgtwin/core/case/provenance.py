"""Provenance of a derived item and the content hashes that tell when it is stale.

Every item a step puts into a case (a label map, meshes, a tet mesh, later implants, simulation
results) carries a ``Provenance``: what produced it (method, model name/version/sha256, parameters,
surgtwin version), when, and the content hash of each input it was made from. When an input's
current hash differs from the recorded one the item is **stale** (``Case.stale_reasons``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np


def _feed_array(h, a: np.ndarray) -> None:
    a = np.ascontiguousarray(a)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(memoryview(a).cast("B"))


def content_hash(*parts) -> str:
    """sha256 (hex) over numpy arrays, strings, numbers and nested lists/tuples/dicts of them.

    Arrays hash their dtype, shape and bytes, so equal content gives an equal hash whatever object
    holds it.
    """
    h = hashlib.sha256()

    def feed(p) -> None:
        if isinstance(p, np.ndarray):
            _feed_array(h, p)
        elif isinstance(p, dict):
            h.update(b"{")
            for k in sorted(p, key=str):
                feed(str(k))
                feed(p[k])
            h.update(b"}")
        elif isinstance(p, list | tuple):
            h.update(b"[")
            for x in p:
                feed(x)
            h.update(b"]")
        else:
            h.update(repr(p).encode())
            h.update(b"\x00")

    for p in parts:
        feed(p)
    return h.hexdigest()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def surgtwin_version() -> str:
    from surgtwin import __version__

    return __version__


@dataclass
class Provenance:
    """How an item was made. ``inputs`` maps an input item key (``"volume"``, ``"labels"``,
    ``"meshes"``...) to its content hash when this item was made."""

    method: str
    parameters: dict = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    model: dict | None = None  # {"name", "version", "sha256"} when a trained model produced it
    surgtwin_version: str = field(default_factory=surgtwin_version)
    created: str = field(default_factory=now_iso)

    def to_json(self) -> dict:
        return {"method": self.method, "parameters": self.parameters, "inputs": dict(self.inputs),
                "model": self.model, "surgtwin_version": self.surgtwin_version, "created": self.created}

    @classmethod
    def from_json(cls, d: dict) -> Provenance:
        return cls(method=d["method"], parameters=dict(d.get("parameters") or {}),
                   inputs={str(k): str(v) for k, v in (d.get("inputs") or {}).items()},
                   model=d.get("model"), surgtwin_version=d.get("surgtwin_version", "?"),
                   created=d.get("created", ""))

    def describe(self) -> str:
        """One line for a panel or ``case show``: method, model, parameters, when."""
        text = self.method
        if self.model:
            text += f" ({self.model.get('name', '?')} {self.model.get('version', '')})".rstrip()
        if self.parameters:
            text += ", " + ", ".join(f"{k}={v}" for k, v in sorted(self.parameters.items()))
        return f"{text}; surgtwin {self.surgtwin_version}, {self.created}"
