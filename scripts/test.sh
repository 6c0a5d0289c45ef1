#!/usr/bin/env bash
# Set up (a virtualenv in .venv) and run every check: ruff, mypy, import-linter, pytest on
# SQLite and on a throw-away PostgreSQL that the tests start from the machine's pg_ctl.
# `--fast` (passed on to pytest, tests/conftest.py): the fast tier, SQLite only, no test that
# starts a process or opens LibreOffice, nor the slowest few; PostgreSQL and LibreOffice are
# not installed for it.
set -euo pipefail
fast=0
for arg in "$@"; do
  if [ "$arg" = --fast ]; then fast=1; fi
done
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# Install only when pyproject.toml changed since the last install (the project itself is an
# editable install: its code needs none). Saves ~6 s a run; CCN_REINSTALL=1 forces it.
stamp=".venv/.ccn-installed"
wanted="$(.venv/bin/python --version) $(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "${CCN_REINSTALL:-0}" = 1 ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
  echo "$wanted" > "$stamp"
fi
if [ "$fast" = 0 ] && ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "pg_ctl not found: installing PostgreSQL from Debian's packages" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
fi
# LibreOffice lets the tests open and print the month's workbook and report as Sở Công Thương
# would (Calc and Writer, with metric-compatible Times New Roman); best effort: the tests say
# loudly that they were skipped where LibreOffice cannot be had.
lo_packages="libreoffice-calc-nogui libreoffice-writer-nogui fonts-liberation2"
if [ "$fast" = 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
    && command -v dpkg-query >/dev/null 2>&1 \
    && ! dpkg-query -W $lo_packages >/dev/null 2>&1; then
  echo "installing $lo_packages from Debian's packages" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      $lo_packages >/dev/null; } || echo "!!! LibreOffice could not be installed" >&2
fi
# Bytecode caches (__pycache__, ignored by git): without them every `ccn-bot` process the
# tests start, every xdist worker and every Alembic run compiles the sources again.
unset PYTHONDONTWRITEBYTECODE
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .  # a file left unformatted fails CI too
echo "== mypy"
# The cache outside the checkout: CI's fresh clone on the same machine finds it (mypy checks
# each entry against the file's hash), 2 s instead of ~30 s cold. MYPY_CACHE_DIR overrides.
export MYPY_CACHE_DIR="${MYPY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ccn-bot/mypy}"
.venv/bin/mypy
echo "== import-linter"
.venv/bin/lint-imports --no-cache
echo "== pytest"
# pytest-xdist: the tests spend much of their time waiting (on PostgreSQL, on loopback HTTP, on
# the processes they start), so a worker more than the 2 cores; PYTEST_WORKERS=0: no workers.
# The fast tier waits on none of these: a worker a core (a third cost ~20 s more CPU, mostly
# collecting the tests again).
workers=3
if [ "$fast" = 1 ]; then workers=2; fi
.venv/bin/pytest -n "${PYTEST_WORKERS:-$workers}" --dist worksteal "$@"
