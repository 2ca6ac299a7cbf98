#!/usr/bin/env bash
# Runs the whole suite with coverage; pytest's "no tests collected" (exit 5) counts as a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
# The registry's PostgreSQL path is tested against a real server: install Debian's if it is absent.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing PostgreSQL from Debian's packages for the registry tests" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null \
      || (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null) \
      || echo "could not install PostgreSQL; its tests will be skipped" >&2
  else
    echo "PostgreSQL server binaries not found and cannot install them; its tests will be skipped" >&2
  fi
fi
if [ "$#" -eq 0 ]; then
  # every test, and every docstring example of the product code (a doctest is a test too)
  set -- --doctest-modules shared services driftloop tests
fi
.venv/bin/python -m pytest --cov --cov-report=term:skip-covered "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
