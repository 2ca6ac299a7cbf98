#!/usr/bin/env bash
# Creates .venv and installs the pinned dependencies and the project; safe to run again.
# Says on stderr what it is doing and for how long (a first install takes about a minute); silent when
# everything is already installed.
set -euo pipefail
# the physical checkout: run through a symlinked deploy/ it still installs the real tree, never a link farm
cd -P "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "driftloop needs Python 3.11 or newer (found: $("$PY" --version 2>&1))" >&2
  exit 1
fi
# Debian's chromium: the console's browser tests and the demo's screenshots drive it (Playwright, from the
# venv, never downloads a browser). Installed only when missing, so an installed machine stays fast.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    printf 'setup: installing Debian'"'"'s chromium (browser tests, demo screenshots)\n' >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2 \
      || echo "setup: could not install chromium; the console's browser tests will fail and the demo skips its screenshots" >&2
  else
    echo "setup: chromium is missing: run 'sudo apt-get install -y chromium' for the console's browser tests and the demo's screenshots" >&2
  fi
fi
stamp=.venv/.installed
if [ -f "$stamp" ] && [ "$stamp" -nt requirements.lock ] && [ "$stamp" -nt pyproject.toml ]; then
  exit 0
fi
SECONDS=0
step() { printf '[%4ss] setup: %s\n' "$SECONDS" "$*" >&2; }
if [ ! -x .venv/bin/python ]; then
  step "creating .venv with $("$PY" --version 2>&1)"
  "$PY" -m venv .venv
fi
step "installing uv (the installer) into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check "uv==0.13.9"
packages=$(grep -c '^[A-Za-z0-9]' requirements.lock || true)
step "installing ${packages} pinned packages from requirements.lock (about a minute the first time)"
.venv/bin/uv pip sync -q --python .venv/bin/python requirements.lock
step "installing driftloop itself (editable) and its \`driftloop\` command"
.venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e .
touch "$stamp"
step "done in ${SECONDS}s: run .venv/bin/driftloop, or \`make demo\`"
