"""Choices on a channel without buttons (Zalo's v3 consultation messages, the terminal).

Each button becomes a short key written under the text, and what the person types is read
back against the keys offered last. The offer is kept with the conversation in the store, so a
restart, a week of silence or another worker reads it the same way.

Keys never clash with a typed answer:
- digits (1, 2, …) when nothing typed is itself an answer (yes/no, a list, picking a cluster);
- letters (a, b, …) when a typed number or text is an answer: a percent question that also
  offers "Không thay đổi" reads `45` as 45 % and `a` as unchanged;
- a button with its own key keeps it (the summary's answer numbers), and then the others get
  letters.
A choice can also be typed as its words, accents and case ignored (`co`, `Có`, `khong thay doi`).
"""

from __future__ import annotations

import dataclasses
import itertools
import string
from collections.abc import Iterable
from typing import Any

from domain import i18n
from domain.state import Offered
from domain.text import fold
from handlers.port import Reply

# in the conversation state's JSON (domain.state): [[key, folded label, payload], …]; the
# reminders add to it there
OFFER_KEY = "offer"
LETTERS = string.ascii_lowercase
ONE_LINE = 40  # options this short in total go on one line


def _digits() -> Iterable[str]:
    return map(str, itertools.count(1))


def _letters() -> Iterable[str]:
    yield from LETTERS
    yield from (a + b for a in LETTERS for b in LETTERS)


def assign(
    replies: list[Reply], taken: Iterable[str] = (), *, letters: bool = False
) -> list[Reply]:
    """The replies with a key on every button, unique across the whole turn."""
    buttons = [b for r in replies for row in r.buttons for b in row]
    used = {fold(k) for k in taken} | {fold(b.key) for b in buttons if b.key}
    letters = (
        letters
        or any(r.free_input for r in replies)
        or any(b.key.isdigit() for b in buttons if b.key)
    )
    fresh = (k for k in (_letters() if letters else _digits()) if k not in used)
    out = []
    for reply in replies:
        rows = [
            [b if b.key else dataclasses.replace(b, key=next(fresh)) for b in row]
            for row in reply.buttons
        ]
        out.append(dataclasses.replace(reply, buttons=rows))
    return out


def offer(replies: list[Reply]) -> list[list[str]]:
    """What to remember of a turn's choices: key, folded label, payload."""
    return [
        [fold(b.key), _words(b.label), b.payload] for r in replies for row in r.buttons for b in row
    ]


def _words(label: str) -> str:
    """A label as it would be typed: folded, without emoji or punctuation."""
    kept = "".join(c if c.isalnum() or c.isspace() else " " for c in fold(label))
    return " ".join(kept.split())


def read(text: str, offered: Any) -> str | None:
    """The payload of the choice `text` names, if it names exactly one offered choice
    (`offered`: the state's offer, or an offer as stored)."""
    if not text.strip():
        return None
    typed = fold(text).strip().strip("[]().#").strip()
    words = _words(text)
    entries = _entries(offered)
    by_key = [payload for key, _label, payload in entries if key == typed]
    if len(by_key) == 1:
        return by_key[0]
    by_label = [payload for _key, label, payload in entries if label == words]
    return by_label[0] if len(by_label) == 1 and words else None


def _entries(offered: Any) -> list[list[str]]:
    """The well-formed [key, words, payload] entries of a stored offer (state is input too)."""
    if isinstance(offered, tuple):
        return [[o.key, o.words, o.payload] for o in offered if isinstance(o, Offered)]
    if not isinstance(offered, list):
        return []
    return [
        e
        for e in offered
        if isinstance(e, list) and len(e) == 3 and all(isinstance(x, str) for x in e)
    ]


def merged(previous: Any, new: list[list[str]]) -> list[list[str]]:
    """An offer kept alongside one already open (a reminder arriving mid-conversation)."""
    return _entries(previous) + new


def keys_of(offered: Any) -> list[str]:
    return [e[0] for e in _entries(offered)]


def render(reply: Reply, locale: str) -> Reply:
    """The reply as text only: its listed choices written under the text with their keys."""
    if not reply.buttons:
        return reply
    listed = [b for row in reply.buttons for b in row if b.listed]
    text = reply.text
    if listed:
        _ = i18n.gettext_for(locale)
        if all(b.key.isdigit() for b in listed):
            head = _("Reply with a number:")
        elif reply.free_input:
            head = _("Or type a letter:")
        else:
            head = _("Reply with a letter:")
        options = [f"[{b.key}] {b.label}" for b in listed]
        short = sum(len(o) for o in options) <= ONE_LINE and len(options) <= 3
        body = "   ".join(options) if short else "\n".join(options)
        text = f"{text}\n{head}\n{body}" if text else f"{head}\n{body}"
    return dataclasses.replace(reply, text=text, buttons=[])


def for_text_channel(replies: list[Reply], locale: str) -> tuple[list[Reply], tuple[Offered, ...]]:
    """A turn's replies for a channel without buttons, and the offer to remember."""
    keyed = assign(replies)
    return [render(r, locale) for r in keyed], tuple(Offered(*e) for e in offer(keyed))
