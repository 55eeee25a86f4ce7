"""Fake fuzz targets (``module:function`` entry points) for the harness's self-test: each misbehaves
in one way the harness must grade (tests/fuzz/test_fuzz_short.py)."""

from __future__ import annotations

import logging
import sys
import time
import warnings

from scripts.fuzz.phi import PLANTED


def ok(path, desc, rec):
    rec.text("all fine")


def refuses(path, desc, rec):
    from surgtwin.core.errors import SurgtwinError

    raise SurgtwinError("not a readable file", path=path)


def raises_value_error(path, desc, rec):
    raise ValueError("unexpected byte")


def sleeps(path, desc, rec):
    time.sleep(60)


def prints_phi(path, desc, rec):
    print(f"loading {PLANTED['PatientName']}")


def writes_phi_to_fd2(path, desc, rec):
    import os

    os.write(2, f"c-level: {PLANTED['PatientID']}\n".encode())


def logs_phi(path, desc, rec):
    logging.getLogger("somelib").warning("bad value %r", PLANTED["PatientBirthDate"])


def warns_phi(path, desc, rec):
    warnings.warn(f"odd address {PLANTED['PatientAddress']}", UserWarning, stacklevel=1)


def phi_in_refusal(path, desc, rec):
    from surgtwin.core.errors import SurgtwinError

    raise SurgtwinError(f"bad PatientID {PLANTED['PatientID']!r}")


def allocates(path, desc, rec):
    import numpy as np

    np.ones(1 << 33, dtype=np.uint8)  # 8 GiB: over the worker's address-space cap


def silently_wrong(path, desc, rec):
    from types import SimpleNamespace

    import numpy as np

    from scripts.fuzz.targets import check_volume

    vol = SimpleNamespace(array=np.zeros((2, 2, 2), np.float32), affine=np.full((4, 4), np.nan), metadata={})
    check_volume(vol, rec, voxels=True)


def crashes(path, desc, rec):
    import ctypes

    sys.stdout.flush()
    ctypes.string_at(0)  # SIGSEGV
