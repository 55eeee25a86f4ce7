"""The layering contract (DESIGN.md: ui | cli -> services -> render -> core), checked on the source.

Every module under ``surgtwin/`` is parsed with ``ast``; every import counts, including the ones inside
functions, under ``TYPE_CHECKING`` and ``importlib.import_module("...")`` with a literal name; relative
imports are resolved. Rules:

* ``surgtwin.core`` imports nothing from render, services, ui or cli; ``surgtwin.render`` nothing from
  services, ui or cli; ``surgtwin.services`` nothing from ui or cli;
* only ``surgtwin.ui`` imports Qt (PySide6, shiboken6, pyvistaqt);
* no private name (``_x``) is imported from another module, and no private module from outside its
  package.

The ``test_checker_*`` tests feed violating sources to the checker, so each rule is known to be able to fail.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG_DIR = Path(__file__).resolve().parents[1] / "surgtwin"

#: layer -> the layers it must not import
FORBIDDEN = {
    "core": ("render", "services", "ui", "cli"),
    "render": ("services", "ui", "cli"),
    "services": ("ui", "cli"),
}
QT_ROOTS = ("PySide6", "shiboken6", "pyvistaqt")


def module_name(path: Path, pkg_dir: Path = PKG_DIR) -> tuple[str, bool]:
    """(dotted module name, is a package ``__init__``) of a file under ``pkg_dir``."""
    parts = list(path.relative_to(pkg_dir.parent).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    if is_pkg:
        parts.pop()
    return ".".join(parts), is_pkg


def _resolve(module: str | None, level: int, importer: str, is_pkg: bool) -> str:
    if level == 0:
        return module or ""
    base = importer.split(".")
    if not is_pkg:
        base.pop()
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def imports(source: str, importer: str, is_pkg: bool = False) -> list[tuple[int, str, str | None]]:
    """Every import in ``source``: (line, absolute module, imported name or None for ``import m``)."""
    out: list[tuple[int, str, str | None]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = _resolve(node.module, node.level, importer, is_pkg)
            out += [(node.lineno, mod, a.name) for a in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            f = node.func
            fname = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            if fname in ("import_module", "__import__"):
                out.append((node.lineno, node.args[0].value, None))
    return out


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "surgtwin" else None


def violations(source: str, importer: str, is_pkg: bool = False, where: str = "<src>",
               private_modules: set[str] | None = None) -> list[str]:
    """The layering violations of one module's source, each as ``where:line: what``."""
    layer = _layer(importer)
    found = []
    for line, mod, name in imports(source, importer, is_pkg):
        targets = [mod] if name is None else [mod, f"{mod}.{name}"]
        root = mod.split(".")[0]
        for bad in FORBIDDEN.get(layer, ()):
            if any(t == f"surgtwin.{bad}" or t.startswith(f"surgtwin.{bad}.") for t in targets):
                found.append(f"{where}:{line}: surgtwin.{layer} imports surgtwin.{bad} ({mod}"
                             f"{'' if name is None else ' import ' + name})")
                break
        if root in QT_ROOTS and layer != "ui":
            what = "surgtwin.core" if layer == "core" else importer
            found.append(f"{where}:{line}: {what} imports Qt ({mod}); only surgtwin.ui may")
        if root != "surgtwin":
            continue
        if name is not None and _is_private(name) and mod != importer \
                and f"{mod}.{name}" not in (private_modules or set()):
            found.append(f"{where}:{line}: private name {name} imported from {mod} into {importer}")
        # a private module (surgtwin.x._m) used from outside its package surgtwin.x
        full = mod if name is None else f"{mod}.{name}" if f"{mod}.{name}" in (private_modules or set()) else mod
        parts = full.split(".")
        for i, p in enumerate(parts):
            if _is_private(p):
                owner = ".".join(parts[:i])
                if importer != owner and not importer.startswith(owner + "."):
                    found.append(f"{where}:{line}: private module {'.'.join(parts[:i + 1])} imported into {importer}")
                break
    return found


def _private_modules() -> set[str]:
    mods = set()
    for f in PKG_DIR.rglob("*.py"):
        name, _ = module_name(f)
        if any(_is_private(p) for p in name.split(".")):
            mods.add(name)
    return mods


def test_every_module_keeps_the_layering():
    private = _private_modules()
    found = []
    files = sorted(PKG_DIR.rglob("*.py"))
    assert len(files) > 20, files
    for f in files:
        name, is_pkg = module_name(f)
        found += violations(f.read_text(encoding="utf-8"), name, is_pkg, str(f.relative_to(PKG_DIR.parent)),
                            private)
    assert not found, f"{len(found)} layering violation(s):\n" + "\n".join(found)


def test_importing_all_of_core_loads_no_qt():
    code = (
        "import importlib, pkgutil, sys, traceback\n"
        "import surgtwin.core\n"
        "failed = []\n"
        "for m in pkgutil.walk_packages(surgtwin.core.__path__, 'surgtwin.core.', onerror=failed.append):\n"
        "    try:\n"
        "        importlib.import_module(m.name)\n"
        "    except Exception:\n"
        "        failed.append(m.name + ': ' + traceback.format_exc(limit=1))\n"
        "qt = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'pyvistaqt'))\n"
        "print('imported', sum(k.startswith('surgtwin.core.') for k in sys.modules), 'core modules')\n"
        "print('failed', failed)\n"
        "print('qt', qt)\n"
        "sys.exit(1 if qt or failed else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


# -- the checker itself can fail -------------------------------------------------------------------
@pytest.mark.parametrize(("importer", "is_pkg", "src", "expect"), [
    ("surgtwin.core.mesh.tetra", False, "from surgtwin.ui.views import X\n", "imports surgtwin.ui"),
    ("surgtwin.core.mesh.tetra", False, "def f():\n    import surgtwin.services.pipeline\n",
     "imports surgtwin.services"),
    ("surgtwin.core.mesh.tetra", False, "from ...render import scene\n", "imports surgtwin.render"),
    ("surgtwin.core", True, "from .. import cli\n", "imports surgtwin.cli"),
    ("surgtwin.core.io", False, "import importlib\nimportlib.import_module('surgtwin.render.scene')\n",
     "imports surgtwin.render"),
    ("surgtwin.render.scene", False, "from surgtwin.services import pipeline\n", "imports surgtwin.services"),
    ("surgtwin.services.pipeline", False, "def f():\n    from surgtwin.ui.app import run_app\n",
     "imports surgtwin.ui"),
    ("surgtwin.services.pipeline", False, "from ..cli import main\n", "imports surgtwin.cli"),
    ("surgtwin.services.jobs", False, "def f():\n    from PySide6.QtCore import QObject\n", "imports Qt"),
    ("surgtwin.core.types", False, "import PySide6\n", "surgtwin.core imports Qt"),
    ("surgtwin.ui.views", False, "from surgtwin.core.geometry import _helper\n", "private name _helper"),
    ("surgtwin.core.mesh", True, "from .tetra import _resolve\n", "private name _resolve"),
])
def test_checker_flags(importer, is_pkg, src, expect):
    found = violations(src, importer, is_pkg)
    assert any(expect in v for v in found), found
    assert all(v.startswith("<src>:") for v in found)


@pytest.mark.parametrize(("importer", "is_pkg", "src"), [
    ("surgtwin.ui.views", False, "from PySide6.QtWidgets import QWidget\nfrom surgtwin.services import session\n"),
    ("surgtwin.cli.main", False, "from surgtwin.ui.app import run_app\n"),
    ("surgtwin.services.pipeline", False, "from surgtwin.core.mesh import surfaces_from_labels\n"),
    ("surgtwin.render.scene", False, "from ..core.types import Volume\n"),
    ("surgtwin.core.mesh.tetra", False, "from surgtwin.core.mesh.tetra import _resolve\n"),
    ("surgtwin.core.mesh", True, "from . import __version__\n"),
])
def test_checker_allows(importer, is_pkg, src):
    assert violations(src, importer, is_pkg) == []


def test_checker_flags_private_module_from_outside_its_package():
    private = {"surgtwin.core.mesh._kernels"}
    assert violations("from surgtwin.core.mesh import _kernels\n", "surgtwin.core.mesh.tetra", private_modules=private) == []
    found = violations("from surgtwin.core.mesh import _kernels\n", "surgtwin.render.scene", private_modules=private)
    assert any("private module surgtwin.core.mesh._kernels" in v for v in found), found
    found = violations("import surgtwin.core.mesh._kernels\n", "surgtwin.ui.views", private_modules=private)
    assert any("private module" in v for v in found), found
