"""surgtwin: surgical planning with 3D patient-specific anatomical digital twins.

Not for clinical use. The top-level package is lazy: importing it loads no torch, VTK or Qt.
Public API: ``load_volume``, ``find_series``, ``Volume``, ``LabelMap``, ``SurgtwinError``; the case
(patient twin): ``new_case``, ``open_case``, ``save_case``, ``run_step``, ``Case``.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "load_volume": "surgtwin.core.io",
    "save_volume": "surgtwin.core.io",
    "find_series": "surgtwin.core.dicom",
    "Volume": "surgtwin.core.types",
    "LabelMap": "surgtwin.core.types",
    "LabelTable": "surgtwin.core.types",
    "SurgtwinError": "surgtwin.core.errors",
    "Case": "surgtwin.core.case",
    "open_case": "surgtwin.core.case",
    "save_case": "surgtwin.core.case",
    "new_case": "surgtwin.services.pipeline",
    "run_step": "surgtwin.services.pipeline",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'surgtwin' has no attribute {name!r}")
