"""Bundled resources (the segmentation model bundle, the sample cases and the implant library), found
as package data.

All live under ``surgtwin/data/`` and are located through ``importlib.resources.files("surgtwin")``,
so a source checkout, an installed wheel and a frozen (PyInstaller) build find them the same way:
the build only has to ship ``surgtwin/data`` beside the package.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path


def _data_dir() -> Path:
    return Path(str(files("surgtwin") / "data"))


def bundled_model_dir() -> Path:
    """The folder holding the bundled segmentation model bundles (``surgtwin/data/models``)."""
    return _data_dir() / "models"


def implants_dir() -> Path:
    """The implant library: one JSON file per implant family and ``materials.json``
    (``surgtwin/data/implants``)."""
    return _data_dir() / "implants"


def tavr_dir() -> Path:
    """TAVR planning data: device sizing charts, effective orifice areas and thresholds with their
    sources (``surgtwin/data/tavr/sizing.json``)."""
    return _data_dir() / "tavr"


def sample_root() -> Path:
    """The folder of bundled sample cases (``<case>/dicom/``); ``SURGTWIN_SAMPLES`` overrides it."""
    env = os.environ.get("SURGTWIN_SAMPLES")
    if env:
        return Path(env)
    return _data_dir() / "samples"


def instruments_dir() -> Path:
    """Trajectory planning data: the instrument catalogue (``instruments.json``: name, diameter,
    length, tip, source) and the default safety margins per structure (``margins.json``)
    (``surgtwin/data/instruments``)."""
    return _data_dir() / "instruments"


def anatomy_dir() -> Path:
    """Adult anatomy for the segmentation quality gate: per structure the body regions, volume range
    and pieces, neighbour relations (``adult_structures.json``), and the bundled model's confidence
    calibration (``confidence_calibration.json``) (``surgtwin/data/anatomy``)."""
    return _data_dir() / "anatomy"
