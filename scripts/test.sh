#!/usr/bin/env bash
# Set up (a virtualenv in .venv) and run every check: ruff, mypy, import-linter, pytest on
# SQLite and on a throw-away PostgreSQL that the tests start from the machine's pg_ctl.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "pg_ctl not found: installing PostgreSQL from Debian's packages" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
fi
# LibreOffice lets the tests open and print the month's workbook and report as Sở Công Thương
# would (Calc and Writer, with metric-compatible Times New Roman); best effort: the tests say
# loudly that they were skipped where LibreOffice cannot be had.
lo_packages="libreoffice-calc-nogui libreoffice-writer-nogui fonts-liberation2"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1 \
    && ! dpkg-query -W $lo_packages >/dev/null 2>&1; then
  echo "installing $lo_packages from Debian's packages" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      $lo_packages >/dev/null; } || echo "!!! LibreOffice could not be installed" >&2
fi
echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy
echo "== import-linter"
.venv/bin/lint-imports --no-cache
echo "== pytest"
.venv/bin/pytest "$@"
