"""One adapter per messenger: turns its updates into Incoming and renders Reply."""

from __future__ import annotations


def split_text(text: str, limit: int) -> list[str]:
    """Split a long text at line ends so that every piece fits one message of `limit`."""
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line) > limit:
            pieces.append(line[:limit])
            line = line[limit:]
        if len(current) + len(line) > limit:
            pieces.append(current)
            current = ""
        current += line
    if current:
        pieces.append(current)
    return pieces
