"""Fuzzing harness for surgtwin's read paths (issue #12): DICOM, NIfTI and model-bundle inputs.

Run ``python scripts/fuzz/fuzz.py --help``. Modules:

* ``phi``: the fake patient identity planted into every DICOM/NIfTI seed, and the leak grep;
* ``seeds``: builds the seed corpus (head sample slices in three encodings, an enhanced multi-frame
  object, pydicom's test files, a phantom NIfTI, the bundled model's configs);
* ``dicom_bytes`` / ``mutate_dicom`` / ``mutate_nifti`` / ``mutate_bundle``: deterministic mutators
  (a descriptor = seed + mutator + params fully determines an input);
* ``targets``: the real entry points each input is fed to, and cheap silent-wrong-result checks;
* ``worker``: the subprocess that runs inputs under an address-space cap and classifies them;
* ``campaign``: the worker pool, timeouts, the report and ``--replay``.
"""
