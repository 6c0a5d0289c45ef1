"""What the bot answered an update, kept with the update's "processed" mark in the same
transaction. A channel confirms an update only after its answer went out; if the process dies
between the commit and the send, the update comes again, finds its mark, and is answered again
from here instead of silently dropped (a receipt is never lost; at worst it arrives twice)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handlers.port import Button, Photo, Reply


@dataclass(frozen=True)
class Later:
    """Work an update asked for that runs once its transaction has committed, outside it
    (handlers.later): a job's name and its arguments, as JSON keeps them."""

    job: str
    args: dict[str, str] = field(default_factory=dict)


def encode(replies: list[Reply], later: Sequence[Later] = ()) -> list[dict[str, Any]]:
    """The replies as JSON; only what differs from a plain text reply is written. The work
    still to do after the commit is kept with them: a redelivery does it again."""
    out: list[dict[str, Any]] = [{"later": {"job": j.job, "args": j.args}} for j in later]
    for reply in replies:
        item: dict[str, Any] = {"text": reply.text}
        if reply.buttons:
            item["buttons"] = [
                [[b.label, b.payload, b.key, b.listed] for b in row] for row in reply.buttons
            ]
        if reply.photos:
            item["photos"] = [[str(p.path), p.caption] for p in reply.photos]
        if reply.file is not None:
            item["file"] = str(reply.file)
        if reply.free_input:
            item["free_input"] = True
        if reply.ask_contact:
            item["ask_contact"] = True
        if reply.facts:
            item["facts"] = [list(fact) for fact in reply.facts]
        out.append(item)
    return out


def decode(stored: object) -> list[Reply]:
    """The replies kept for an update; a photo or file no longer on disk is left out (the text
    still goes). Anything unreadable gives no reply rather than an error."""
    if not isinstance(stored, list):
        return []
    replies: list[Reply] = []
    for item in stored:
        if isinstance(item, dict) and "later" in item:
            continue
        try:
            replies.append(_reply(item))
        except (TypeError, ValueError, KeyError):
            continue
    return replies


def decode_later(stored: object) -> list[Later]:
    """The work kept with an update's replies, to do again (`encode`)."""
    if not isinstance(stored, list):
        return []
    found: list[Later] = []
    for item in stored:
        job = item.get("later") if isinstance(item, dict) else None
        if isinstance(job, dict) and isinstance(job.get("job"), str):
            args = job.get("args")
            if isinstance(args, dict):
                found.append(Later(job["job"], {str(k): str(v) for k, v in args.items()}))
    return found


def _reply(item: dict[str, Any]) -> Reply:
    photos = tuple(
        Photo(Path(path), caption)
        for path, caption in item.get("photos", ())
        if Path(path).exists()
    )
    file = Path(item["file"]) if "file" in item else None
    return Reply(
        text=str(item["text"]),
        buttons=[
            [
                Button(str(label), str(payload), str(key), bool(listed))
                for label, payload, key, listed in row
            ]
            for row in item.get("buttons", ())
        ],
        photos=photos,
        file=file if file is not None and file.exists() else None,
        free_input=bool(item.get("free_input", False)),
        ask_contact=bool(item.get("ask_contact", False)),
        facts=tuple((str(k), str(v)) for k, v in item.get("facts", ())),
    )


class Answered:
    """The updates this process has answered (the newest few thousand). A second delivery of
    one of them while the process lives — a webhook retried while the first was being handled,
    two polls overlapping — was answered by the first; only one whose first answer may have
    died with an earlier process is answered again."""

    def __init__(self, keep: int = 10_000) -> None:
        self._keep = keep
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def add(self, channel: str, update_id: str) -> None:
        self._seen[(channel, update_id)] = None
        if len(self._seen) > self._keep:
            self._seen.popitem(last=False)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._seen
