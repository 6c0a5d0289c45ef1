"""The subject of a report: a cluster (investors report on theirs) or an organisation (a
district's People's Committee or a department reports on the tasks it leads)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from domain.text import SLUG_RE

Kind = Literal["cluster", "org"]
_ORG_ID = re.compile(r"^[1-9][0-9]{0,8}$")
# The longest cluster code a button can carry: `report:cluster:<code>:2026-12` must fit in
# Telegram's 64 bytes of callback data (handlers.payloads checks every payload).
MAX_CODE = 40


@dataclass(frozen=True, order=True)
class Subject:
    kind: Kind
    ref: str  # the cluster's code, or the organisation's id

    CLUSTER = "cluster:"  # the prefixes of its text form, for queries over stored subjects
    ORG = "org:"

    @classmethod
    def cluster(cls, code: str) -> Subject:
        return cls.parse(cls.CLUSTER + code)

    @classmethod
    def org(cls, org_id: int) -> Subject:
        return cls.parse(f"{cls.ORG}{org_id}")

    @classmethod
    def parse(cls, text: str) -> Subject:
        """`cluster:<code>` or `org:<id>`, as stored and as carried by buttons; ValueError if
        it is neither (a payload is input like any other)."""
        kind, sep, ref = text.partition(":")
        if sep and kind == "cluster" and SLUG_RE.fullmatch(ref):
            return cls("cluster", ref)
        if sep and kind == "org" and _ORG_ID.fullmatch(ref):
            return cls("org", ref)
        raise ValueError(f"not a report subject: {text[:80]!r}")

    @property
    def code(self) -> str | None:
        """The cluster's code, for a cluster."""
        return self.ref if self.kind == "cluster" else None

    @property
    def org_id(self) -> int | None:
        return int(self.ref) if self.kind == "org" else None

    def __str__(self) -> str:
        return f"{self.kind}:{self.ref}"
