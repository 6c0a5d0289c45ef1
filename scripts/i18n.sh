#!/usr/bin/env bash
# Re-extract user-facing strings and merge them into the vi and en catalogs.
set -euo pipefail
cd "$(dirname "$0")/.."
out=domain/locales
.venv/bin/pybabel extract -F babel.cfg -k N_ --no-location --sort-output \
  --project ccn-bot -o "$out/messages.pot" bot domain handlers reminders reports store
for lang in vi en; do
  if [ -f "$out/$lang/LC_MESSAGES/messages.po" ]; then
    .venv/bin/pybabel update --no-fuzzy-matching -i "$out/messages.pot" -d "$out" -l "$lang"
  else
    .venv/bin/pybabel init -i "$out/messages.pot" -d "$out" -l "$lang"
  fi
done
