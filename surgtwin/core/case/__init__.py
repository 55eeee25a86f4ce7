"""The patient's twin: the ``Case`` model, provenance and staleness, and the ``.stwin`` case file.

Public API
----------
* ``Case``, ``SourceRef``, ``Item``, ``LabelsEditedError``, ``SLOTS``, ``register_slot``  (``model``)
* ``Provenance``, ``content_hash``                                                        (``provenance``)
* ``save_case(case, path)``, ``open_case(path)``, ``read_manifest(path)``, ``SCHEMA_VERSION``,
  ``SUFFIX``, ``is_case_folder``                                                          (``store``)

No Qt, no VTK window; heavy readers (SimpleITK, jsonschema) are imported when a case is read/written.
"""

from __future__ import annotations

from surgtwin.core.case.model import SLOTS, Case, Item, LabelsEditedError, SourceRef, register_slot
from surgtwin.core.case.provenance import Provenance, content_hash
from surgtwin.core.case.store import (
           SCHEMA_VERSION,
           SUFFIX,
           is_case_folder,
           open_case,
           read_manifest,
           save_case,
)

__all__ = ["Case", "Item", "SourceRef", "LabelsEditedError", "SLOTS", "register_slot", "Provenance",
           "content_hash", "save_case", "open_case", "read_manifest", "SCHEMA_VERSION", "SUFFIX", "is_case_folder"]
