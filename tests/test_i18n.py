"""Every word a user sees has its Vietnamese translation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from domain import i18n

REPO = Path(__file__).parent.parent


def source_messages() -> set[str]:
    found: set[str] = set()
    for package in ("bot", "handlers", "reminders", "reports", "store"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            REPO / package, keywords={"_": None, "N_": None}
        ):
            if isinstance(message, str):
                found.add(message)
    return found


def test_vietnamese_catalog_is_complete() -> None:
    with (i18n.LOCALES / "vi" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh, locale="vi")
    translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
    missing = source_messages() - translated
    assert not missing, f"run scripts/i18n.sh and translate: {sorted(missing)}"


def test_vietnamese_is_the_default_and_english_available() -> None:
    message = "Which cluster do you mean?"
    assert i18n.gettext_for("vi")(message) == "Anh/chị muốn xem cụm nào?"
    assert i18n.gettext_for("en")(message) == message


def test_catalog_placeholders_survive_translation() -> None:
    with (i18n.LOCALES / "vi" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh, locale="vi")
    import re

    for message in catalog:
        if message.id and message.string:
            assert set(re.findall(r"{\w+}", str(message.id))) == set(
                re.findall(r"{\w+}", str(message.string))
            ), message.id


def test_python_m_bot_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "clusters" in done.stdout
