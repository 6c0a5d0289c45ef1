#!/usr/bin/env bash
# Render the pictures of the report sent upward shown in the README (docs/upward-report-*.png),
# from the status tests' hand-built June 2021: the LibreOffice test of
# tests/test_upward_report.py builds the report (DOCX) and its workbook and prints them to PDF
# into a temporary folder (CCN_EXAMPLES_DIR); the first page of each becomes a PNG.
# Needs LibreOffice (Calc and Writer) and pdftoppm:
#   apt-get install libreoffice-calc-nogui libreoffice-writer-nogui fonts-liberation2 poppler-utils
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in soffice pdftoppm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "render_examples: $tool not found (see the packages at the top of this script)" >&2
    exit 1
  fi
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
CCN_EXAMPLES_DIR="$out" .venv/bin/pytest -q -p no:cacheprovider tests/test_upward_report.py \
  -k libreoffice_prints_both_as_intended
for pdf in bao-cao-2021-06 tong-hop-2021-06 sheet-3; do
  if [ ! -s "$out/$pdf.pdf" ]; then
    echo "render_examples: $pdf.pdf was not printed (was the test skipped?)" >&2
    exit 1
  fi
done
mkdir -p docs
# the report: A4 portrait; the workbook's summary and Phụ lục 3: A4 landscape
pdftoppm -png -r 70 -f 1 -l 1 -singlefile "$out/bao-cao-2021-06.pdf" docs/upward-report-document
pdftoppm -png -r 70 -f 1 -l 1 -singlefile "$out/tong-hop-2021-06.pdf" docs/upward-report-summary
pdftoppm -png -r 100 -f 1 -l 1 -singlefile "$out/sheet-3.pdf" docs/upward-report-appendix-3
ls -l docs/upward-report-*.png
