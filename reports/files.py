"""Where the files made for a person go: `DATA_DIR/exports/<person id>/`, so a download link
can be signed for that person only (bot/web.py)."""

from __future__ import annotations

from pathlib import Path


def exports_root(data_dir: Path) -> Path:
    return data_dir / "exports"


def person_exports(data_dir: Path, person_id: int) -> Path:
    folder = exports_root(data_dir) / str(person_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
