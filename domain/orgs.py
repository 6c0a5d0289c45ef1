"""Who answers for an organisation after the 2025 mergers: the one rule, on plain values.

An organisation that ended before a day (its last day, `valid_to`, is before it) is answered
for on that day by the organisation it was merged into (`merged_into_id`), and so on through
every merge, however many; one that ended with no successor answers for itself (and then owes
nothing: domain.slots.owes). store.slots (what is owed, /tinhhinh), store.orgs.successor_on
(whom a person reports and reviews for) and reports.tasks.successors (whose late tasks) all
ask it here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol


class Dated(Protocol):
    """What the rule reads of an organisation (a store row or an ORM object fits as is)."""

    @property
    def valid_to(self) -> date | None: ...

    @property
    def merged_into_id(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Merge:
    """An organisation's last day (None: still exists) and the one it was merged into."""

    valid_to: date | None
    merged_into_id: int | None


def answering(org_id: int, day: date, orgs: Mapping[int, Dated]) -> int:
    """The id of the organisation that answers for `org_id` on `day`. `orgs` need only hold the
    organisations that ended with a successor: one it does not hold answers for itself. A cycle
    of merges (bad data) stops at the last organisation before it would come round again."""
    seen = {org_id}
    while (
        (org := orgs.get(org_id)) is not None
        and org.valid_to is not None
        and org.valid_to < day
        and org.merged_into_id is not None
        and org.merged_into_id not in seen
    ):
        org_id = org.merged_into_id
        seen.add(org_id)
    return org_id


def answered_from(org_id: int, heir_id: int, orgs: Mapping[int, Dated]) -> date | None:
    """The first day on which `heir_id` answers for `org_id`: the day after the last merge on
    the way from one to the other (`answering`'s chain); None if the merges do not lead there."""
    seen = {org_id}
    while (org := orgs.get(org_id)) is not None:
        into = org.merged_into_id
        if into is None or into in seen:
            return None
        if into == heir_id:
            return None if org.valid_to is None else org.valid_to + timedelta(days=1)
        org_id = into
        seen.add(into)
    return None
