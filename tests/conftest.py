"""Shared fixtures: public test data fetched with `pip download` into a cache (never at app run time)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("SURGTWIN_TESTDATA", Path.home() / ".cache" / "surgtwin" / "testdata"))


def _download(spec: str, *extra: str) -> Path | None:
    pkgs = CACHE / "pkgs"
    pkgs.mkdir(parents=True, exist_ok=True)
    name = spec.split("==")[0].replace("-", "_").lower()
    have = [p for p in pkgs.iterdir() if p.name.lower().replace("-", "_").startswith(name)]
    if have:
        return have[0]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", *extra, spec, "-d", str(pkgs)]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    except (subprocess.SubprocessError, OSError):
        return None
    have = [p for p in pkgs.iterdir() if p.name.lower().replace("-", "_").startswith(name)]
    return have[0] if have else None


def _extract(archive: Path, member_prefix: str) -> Path:
    out = CACHE / "extracted" / archive.name
    marker = out / ".done"
    if not marker.exists():
        out.mkdir(parents=True, exist_ok=True)
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as z:
                z.extractall(out, [m for m in z.namelist() if m.startswith(member_prefix)])
        else:
            with tarfile.open(archive) as t:
                t.extractall(out, [m for m in t.getmembers() if m.name.startswith(member_prefix)], filter="data")
        marker.touch()
    return out / member_prefix


@pytest.fixture(scope="session")
def totalseg_reference() -> Path:
    """totalsegmentator 2.18.0 sdist's tests/reference_files (real CT, JPEG 2000 DICOM series)."""
    a = _download("totalsegmentator==2.18.0", "--no-binary", "totalsegmentator")
    if a is None:
        pytest.skip("offline: could not `pip download` the totalsegmentator 2.18.0 sdist")
    return _extract(a, "totalsegmentator-2.18.0/tests/reference_files")


@pytest.fixture(scope="session")
def pydicom_data() -> Path:
    """pydicom-data wheel's data_store/data (real single/multi-frame files in many encodings)."""
    a = _download("pydicom-data")
    if a is None:
        pytest.skip("offline: could not `pip download` pydicom-data")
    return _extract(a, "data_store/data")


@pytest.fixture(scope="session")
def pydicom_testfiles() -> Path:
    import pydicom

    return Path(pydicom.__file__).parent / "data" / "test_files"
