"""Vessels: centerlines with radius from a vessel mask, stenoses along them, and the reduced-order
flow network built from them.

Public API
----------
* ``extract_centerlines(mask, affine, *, labels=None, components="error", root_lps=None, step_mm=1,
  ...) -> CenterlineGraph`` (skeleton + distance map, cross-section radius; ``centerline``)
* ``CenterlineGraph`` (``branches``, ``stenoses``, ``table()``, ``to_arrays()``/``from_arrays()``),
  ``Branch``, ``StenosisFinding`` (``graph``)
* ``find_stenoses(branch, min_percent=25)`` (``stenosis``)
* ``cross_section_radii`` (``cross_section``)
* ``network_from_centerlines(graph, ...) -> VesselNetwork`` (segments, Murray-split RCR outlets;
  ``network``), ``inflow_waveform``
"""

from __future__ import annotations

from surgtwin.core.vessels.centerline import extract_centerlines, prepare_mask
from surgtwin.core.vessels.cross_section import cross_section_radii
from surgtwin.core.vessels.graph import Branch, CenterlineGraph, StenosisFinding
from surgtwin.core.vessels.network import (
           VesselNetwork,
           default_inflow_ml_s,
           inflow_waveform,
           network_from_centerlines,
)
from surgtwin.core.vessels.stenosis import DEFAULT_MIN_PERCENT, find_stenoses

__all__ = ["DEFAULT_MIN_PERCENT", "Branch", "CenterlineGraph", "StenosisFinding", "cross_section_radii",
           "extract_centerlines", "find_stenoses", "prepare_mask", "VesselNetwork", "default_inflow_ml_s",
           "inflow_waveform", "network_from_centerlines"]
