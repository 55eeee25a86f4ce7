"""Installers (#17): the self-test from source, the frozen app's entry, and (slow) the PyInstaller bundle
and the Debian package built from it, each running ``--selftest`` with nothing from this machine's
Python (scrubbed environment: no PYTHONPATH, no venv on PATH, HOME in a temporary folder)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = ROOT / "scripts" / "build_installer"
DESKTOP_FILE = ROOT / "packaging" / "debian" / "surgtwin.desktop"
STAGE_LINE = re.compile(r"^\[(\d)/(\d)\] (\w+) +(ok|failed) +([\d.]+) s  (.*)$")


def load_entry():
    spec = importlib.util.spec_from_file_location("surgtwin_entry", ROOT / "packaging" / "surgtwin_entry.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def stage_lines(output: str) -> dict[str, tuple[str, str]]:
    """{stage: (status, detail)} from a self-test's output."""
    out = {}
    for line in output.splitlines():
        m = STAGE_LINE.match(line.strip())
        if m:
            out[m.group(3)] = (m.group(4), m.group(6))
    return out


def check_passed(proc: subprocess.CompletedProcess, *, frozen: bool) -> dict:
    from surgtwin.services.selftest import STAGES

    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    stages = stage_lines(proc.stdout)
    assert list(stages) == list(STAGES), text[-3000:]
    for name, (status, detail) in stages.items():
        assert status == "ok", f"{name}: {status} {detail}"
    assert ("frozen build" in stages["environment"][1]) is frozen
    assert "self-test passed" in proc.stdout
    return stages


# -- fast: the entry's argument mapping, the self-test from source and its one-line failure ---------
def test_entry_maps_selftest_flag_to_the_command():
    entry = load_entry()
    assert entry.frozen_argv(["--selftest"]) == ["selftest"]
    assert entry.frozen_argv(["--selftest", "--out", "x"]) == ["selftest", "--out", "x"]
    assert entry.frozen_argv(["--out", "x", "--selftest"]) == ["selftest", "--out", "x"]
    assert entry.frozen_argv([]) == []  # no arguments: the CLI opens the GUI (a double-click)
    assert entry.frozen_argv(["gui", "case.stwin"]) == ["gui", "case.stwin"]


def test_no_arguments_open_the_gui(monkeypatch):
    """The frozen app's double-click (no arguments) is ``surgtwin gui`` with no path."""
    from surgtwin.cli import main as cli_main
    from surgtwin.cli.commands import gui

    called = {}
    monkeypatch.setattr(gui, "run", lambda args: called.setdefault("path", args.path) or 0)
    assert cli_main.main(load_entry().frozen_argv([])) == 0
    assert called == {"path": None}


def test_desktop_entry_is_valid():
    text = DESKTOP_FILE.read_text()
    assert "Exec=surgtwin gui %f" in text and "Icon=surgtwin" in text and "Terminal=false" in text
    validator = shutil.which("desktop-file-validate")
    if validator is None:
        pytest.skip("desktop-file-validate is not installed (apt-get install desktop-file-utils)")
    proc = subprocess.run([validator, str(DESKTOP_FILE)], capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_selftest_from_source(tmp_path):
    """Every stage from a source checkout (~15-25 s: segmentation and meshing of the head sample)."""
    from surgtwin.services.selftest import STAGES, run_selftest

    lines = []
    result = run_selftest(tmp_path, progress=lines.append)
    assert result.ok, (result.failure, lines)
    assert [s.name for s in result.stages] == list(STAGES)
    assert len(lines) == len(STAGES) and all(STAGE_LINE.match(line) for line in lines), lines
    assert "from source" in result.stages[0].detail
    assert (tmp_path / "frame.png").stat().st_size > 10_000
    assert (tmp_path / "report.pdf").read_bytes()[:5] == b"%PDF-"


def test_selftest_failure_is_one_line(tmp_path, monkeypatch, capsys):
    """A damaged model bundle: the self-test stops at the model stage and the CLI prints one line."""
    from surgtwin.cli.commands import selftest as cmd
    from surgtwin.services import selftest

    broken = tmp_path / "bundle"
    shutil.copytree(selftest.bundled_bundle_dir(), broken)
    weights = broken / "models" / "model.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(selftest, "bundled_bundle_dir", lambda: broken)

    result = selftest.run_selftest(tmp_path / "out", progress=lambda line: None)
    assert not result.ok
    assert result.stages[-1].name == "model" and result.stages[-1].status == "failed"
    assert result.failure.startswith("model: ") and "sha256" in result.failure and "reinstall" in result.failure
    assert "\n" not in result.failure

    rc = cmd.run(type("Args", (), {"out": str(tmp_path / "out2")})())
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert len(err) == 1 and err[0].startswith("surgtwin: selftest failed: model: "), err


# -- slow: build the bundle and the .deb, run them as a hospital workstation would --------------------
def scrubbed_env(home: Path) -> dict:
    """No PYTHONPATH, no venv, no display: only the system's PATH, a fresh HOME and Qt offscreen."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home),
           "TMPDIR": str(home), "LANG": "C.UTF-8", "QT_QPA_PLATFORM": "offscreen"}
    home.mkdir(parents=True, exist_ok=True)
    return env


def run_app(exe: Path, args: list[str], home: Path, *, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), *args], env=scrubbed_env(home), cwd=str(home), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def installers(tmp_path_factory):
    """Build dist/surgtwin/ and the .deb with scripts/build_installer into a temporary folder."""
    if importlib.util.find_spec("PyInstaller") is None:
        pytest.skip("PyInstaller is not installed (pip install -e '.[installer]')")
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not available")
    base = tmp_path_factory.mktemp("installer")
    dist, work = base / "dist", base / "build"
    env = {**os.environ, "SURGTWIN_BUILD_PYTHON": sys.executable}
    t0 = time.perf_counter()
    # zstd: ~20 s for the package here; the release default, xz, takes minutes and only compresses harder
    proc = subprocess.run([str(BUILD_SCRIPT), "--dist", str(dist), "--work", str(work), "--compress", "zstd"],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    debs = sorted(dist.glob("surgtwin_*.deb"))
    assert len(debs) == 1, list(dist.iterdir())
    print(proc.stdout)
    print(f"installers built in {time.perf_counter() - t0:.0f} s")
    shutil.rmtree(work, ignore_errors=True)
    yield {"app": dist / "surgtwin", "deb": debs[0], "base": base}
    # ~4 GB (bundle, package, unpacked root); pytest keeps the last three runs' temporary folders
    for big in (dist, base / "root"):
        shutil.rmtree(big, ignore_errors=True)


@pytest.mark.slow
def test_bundle_runs_selftest_self_contained(installers):
    app = installers["app"]
    exe = app / "surgtwin"
    assert exe.is_file() and os.access(exe, os.X_OK)
    # the model bundle is byte-identical to the source's
    from surgtwin.core.segmentation.bundle import sha256_file

    rel = Path("surgtwin/data/models/surgtwin_ct_multiorgan/models/model.pt")
    shipped = list(app.rglob(rel.name))
    assert [p for p in shipped if p.as_posix().endswith(rel.as_posix())], shipped
    assert sha256_file(next(p for p in shipped if p.as_posix().endswith(rel.as_posix()))) == sha256_file(ROOT / rel)

    # third-party licences ship; no GPL-only system library is copied in (libreadline)
    summary = app / "_internal" / "THIRD-PARTY-LICENSES" / "SUMMARY.txt"
    listed = summary.read_text()
    assert all(name in listed for name in ("torch", "PySide6", "networkx")), listed  # networkx: mesh repair
    assert not list(app.rglob("libreadline*"))

    home = installers["base"] / "home-bundle"
    proc = run_app(exe, ["--selftest", "--out", str(home / "out")], home)
    print(proc.stdout)
    check_passed(proc, frozen=True)
    assert (home / "out" / "frame.png").is_file() and (home / "out" / "report.pdf").is_file()

    # the ordinary CLI works too: a user error is one line and status 2
    proc = run_app(exe, ["info", str(home / "missing")], home, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("surgtwin: error:"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.slow
def test_bundle_gui_opens_offscreen(installers):
    """The frozen GUI (Qt platform plugins, the VTK canvas) opens a sample and saves a screenshot."""
    exe = installers["app"] / "surgtwin"
    sample = next(p for p in installers["app"].rglob("samples/head") if (p / "dicom").is_dir())
    home = installers["base"] / "home-gui"
    shot = home / "gui.png"
    proc = run_app(exe, ["gui", str(sample), "--screenshot", str(shot), "--quit-after", "150", "--size", "1200x800"],
                   home, timeout=240)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert shot.is_file() and shot.stat().st_size > 20_000, proc.stdout + proc.stderr


@pytest.mark.slow
def test_bundle_runs_a_cohort_on_dask_workers(installers):
    """The frozen app spawns Dask worker processes (multiprocessing in a frozen program) and writes the
    results table (pandas, pyarrow) and the cohort report (matplotlib)."""
    exe = installers["app"] / "surgtwin"
    home = installers["base"] / "home-cohort"
    out = home / "trial"
    proc = run_app(exe, ["cohort", "virtual", "--kind", "head", "-n", "2", "--out", str(out), "--pixel-mm", "3",
                         "--slice-mm", "3"], home, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_app(exe, ["cohort", "run", str(out / "cohort.json"), "--steps", "segment", "--out", str(out),
                         "--workers", "2", "--memory-limit", "3GiB"], home, timeout=400)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "2/2 cases ok, 0 failed" in proc.stdout and "(local:2)" in proc.stdout, proc.stdout
    for name in ("cohort_results.csv", "cohort_results.parquet", "cohort_report.pdf"):
        assert (out / name).stat().st_size > 0, name


@pytest.mark.slow
def test_deb_layout_and_fields(installers):
    deb = installers["deb"]
    info = subprocess.run(["dpkg-deb", "-I", str(deb)], capture_output=True, text=True, check=True).stdout
    fields = dict(re.findall(r"^ (\S[^:]*): (.*)$", info, flags=re.M))
    assert fields["Package"] == "surgtwin"
    assert int(fields["Installed-Size"]) > 100_000  # KiB: torch, VTK and Qt are inside
    for lib in ("libgl1", "libegl1", "libxkbcommon0", "libfontconfig1", "libglib2.0-0", "libdbus-1-3",
                "libxcb-cursor0"):
        assert lib in fields["Depends"], fields["Depends"]
    assert re.search(r"libc6 \(>= 2\.\d+\)", fields["Depends"]), fields["Depends"]  # the build machine's glibc
    assert "<" in fields["Maintainer"] and "@" in fields["Maintainer"]
    assert "not for clinical use" in info.lower()

    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    entries = {line.split()[-1].lstrip(".") for line in listing.splitlines() if line.strip()}
    for path in ("/opt/surgtwin/surgtwin", "/usr/bin/surgtwin", "/usr/share/applications/surgtwin.desktop",
                 "/usr/share/icons/hicolor/256x256/apps/surgtwin.png",
                 "/usr/share/icons/hicolor/scalable/apps/surgtwin.svg", "/usr/share/doc/surgtwin/copyright"):
        assert path in entries, path
    assert any(e.endswith("/surgtwin/data/models/surgtwin_ct_multiorgan/models/model.pt") for e in entries)
    owners = {tuple(line.split()[1].split("/")) for line in listing.splitlines() if line.strip()}
    assert owners == {("root", "root")}, owners


@pytest.mark.slow
def test_deb_installed_into_a_scratch_root_runs_selftest(installers):
    root = installers["base"] / "root"
    subprocess.run(["dpkg-deb", "-x", str(installers["deb"]), str(root)], check=True)
    launcher = root / "usr" / "bin" / "surgtwin"
    assert os.access(launcher, os.X_OK)
    home = installers["base"] / "home-deb"
    proc = run_app(launcher, ["--selftest", "--out", str(home / "out")], home)
    print(proc.stdout)
    check_passed(proc, frozen=True)
    # the launcher ran the copy in the scratch root (it resolves its own location)
    assert f"frozen build in {root.resolve() / 'opt' / 'surgtwin'}" in proc.stdout, proc.stdout

    desktop = root / "usr" / "share" / "applications" / "surgtwin.desktop"
    assert desktop.read_bytes() == DESKTOP_FILE.read_bytes()  # the file test_desktop_entry_is_valid checks
    assert (root / "usr" / "share" / "icons" / "hicolor" / "256x256" / "apps" / "surgtwin.png").is_file()
