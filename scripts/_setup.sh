# Shared set-up for scripts/surgtwin and scripts/test (sourced, not run).
# Creates .venv on first use, installs torch (CPU wheel, pinned) before everything else, then the
# project. Re-installs only when pyproject.toml changes. Checks the system libraries VTK/Qt need.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${SURGTWIN_PYTHON:-python3}"

say() { printf 'surgtwin setup: %s\n' "$*" >&2; }

check_python() {
  if ! command -v "$PY" >/dev/null 2>&1; then
    say "Python 3.11+ is needed (no '$PY' on PATH). On Debian/Ubuntu: apt-get install python3 python3-venv"
    exit 1
  fi
  if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    say "Python 3.11+ is needed; '$PY' is $("$PY" --version 2>&1). Set SURGTWIN_PYTHON=/path/to/python3.11"
    exit 1
  fi
  if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    say "Python's venv module is missing. On Debian/Ubuntu: apt-get install python3-venv"
    exit 1
  fi
}

# Debian package -> a library file it provides (checked with ldconfig)
SYSTEM_LIBS_RUN="libgl1:libGL.so.1 libegl1:libEGL.so.1 libxcursor1:libXcursor.so.1 libxkbcommon0:libxkbcommon.so.0 \
libfontconfig1:libfontconfig.so.1 libglib2.0-0:libglib-2.0.so.0 libdbus-1-3:libdbus-1.so.3 \
libxkbcommon-x11-0:libxkbcommon-x11.so.0 libxcb-cursor0:libxcb-cursor.so.0 libxcb-icccm4:libxcb-icccm.so.4 \
libxcb-image0:libxcb-image.so.0 libxcb-keysyms1:libxcb-keysyms.so.1 libxcb-render-util0:libxcb-render-util.so.0 \
libxcb-shape0:libxcb-shape.so.0"

check_system_libs() {
  local missing=() pkg lib
  command -v ldconfig >/dev/null 2>&1 || return 0
  local have; have="$(ldconfig -p 2>/dev/null)"
  for pair in $SYSTEM_LIBS_RUN; do
    pkg="${pair%%:*}"; lib="${pair#*:}"
    grep -q "$lib" <<<"$have" || missing+=("$pkg")
  done
  if [ "${1:-}" = "test" ]; then
    command -v Xvfb >/dev/null 2>&1 || missing+=("xvfb" "xauth")
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    say "missing system packages needed by VTK/Qt${1:+ (and Xvfb for the GUI tests)}:"
    say "  sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
}

ensure_venv() {
  check_python
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PY" -m venv "$VENV"
  fi
  local stamp="$VENV/.surgtwin-installed" want
  want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing dependencies into $VENV (first run: a few minutes)"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    # torch first and pinned: a looser request can pull a multi-GB CUDA build
    "$VENV/bin/python" -m pip install -q "torch==2.13.0"
    "$VENV/bin/python" -m pip install -q -e "$ROOT[dev]"
    echo "$want" >"$stamp"
  fi
}
