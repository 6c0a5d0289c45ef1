"""What reminders go out now, to whom, in which words — and sending them once.

Each tick derives everything from the store: the due reminders (policy), the open slots
(slots), the ledger of what already went. A ledger row is written and committed *before* its
message is sent: a crash between the two loses that one reminder but can never send it twice
(at most once). Rows left `sending` by a crash are listed in the admins' digest.

The review's notices go the same way (handlers/review.py words them): a report sent back for
changes is told to its sender once (ledger kind `changes-<decision id>`), a correction of one
to the reviewer who sent it back (`fixed-<report id>`), outside quiet hours; and each reminder
to report lists the person's reports still waiting for changes, until they are corrected."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain import i18n
from domain.calendar import Calendar, Period
from domain.orgs import Merge, answered_from
from domain.roles import Role
from domain.slots import Slot, rate
from domain.subjects import Subject
from handlers import choices, payloads, review
from handlers.port import Button, Delivery, Notifier, Reply
from reminders.policy import Due, Policy, due
from reports.tasks import OwnTask, late_of, lead_group, own_lines, successors
from store import reminders as ledger
from store import reviews
from store.access import mark_unreachable
from store.contacts import chat_state, update_chat_state
from store.db import unit_of_work
from store.models import (
    PaperReceipt,
    Person,
    Report,
    ReportReview,
)
from store.orgs import merges, place_of
from store.slots import cluster_places, commune_of, sees_slot, slots_for

log = logging.getLogger(__name__)
MAX_SLOT_BUTTONS = 8
ORG_ROLES = (Role.DISTRICT, Role.DEPARTMENT, Role.ADMIN)  # report for an organisation
# thousands of reminders share a few buttons and one deadline: each made once (pure functions)
_encode = functools.lru_cache(maxsize=1024)(payloads.encode)
_day = functools.lru_cache(maxsize=64)(i18n.day)


@dataclass(frozen=True)
class Outgoing:
    person_id: int
    period: str
    kind: str
    channel: str
    chat_id: str
    reply: Reply
    locale: str = "vi"


@dataclass
class TickResult:
    sent: int = 0
    blocked: int = 0
    unreachable: int = 0
    failed: int = 0
    skipped: int = 0  # already in the ledger
    outgoing: list[Outgoing] = field(default_factory=list)


# --- who and what -------------------------------------------------------------------------


def _identity(chats: Sequence[ledger.Chat], channels: frozenset[str]) -> ledger.Chat | None:
    """The chat the person used last on a channel we can send to."""
    usable = [i for i in chats if i.channel in channels and i.reachable]
    if not usable:
        return None
    return max(usable, key=lambda i: (i.last_seen_at is not None, i.last_seen_at or 0))


def _also(period: Period, locale: str) -> list[str]:
    """The quarter's last month is also the quarterly report; December the annual one."""
    _ = i18n.gettext_for(locale)
    if period.is_year_end:  # December: the month, Q IV and the year, all due by the same day
        quarter = i18n.quarter(f"{period.year}-Q4", locale)
        return [
            _("This is also the annual report for {year}.").format(year=period.year),
            _("And the quarterly report ({quarter}), due the same day.").format(quarter=quarter),
        ]
    if period.is_quarter_end:
        quarter = i18n.quarter(f"{period.year}-Q{period.month // 3}", locale)
        return [_("This is also the quarterly report ({quarter}).").format(quarter=quarter)]
    return []


def _slot_lines(slots: list[Slot]) -> list[str]:
    return [f"• {s.title}" for s in slots]


def _merge_line(person: Person, slots: list[Slot], merged: Mapping[int, Merge]) -> list[str]:
    """Once, for a person of an organisation merged into another: that they now report for it
    (store.slots counts them among the successor's) from the month it took over (the last of
    a chain of merges), in the words /baocao uses."""
    org = person.organisation
    heir = next(
        (s for s in slots if s.subject.org_id is not None and org and s.subject.org_id != org.id),
        None,
    )
    if org is None or heir is None or heir.subject.org_id is None:
        return []
    since = answered_from(org.id, heir.subject.org_id, merged)
    if since is None:
        return []
    _ = i18n.gettext_for(person.locale)
    return [
        _(
            "{old} has been merged into {new}: from {period} you report for {new}. "
            "If that is not right, please tell Sở Công Thương."
        ).format(old=org.name, new=heir.title, period=Period(since.year, since.month).label())
    ]


def _reporter_message(
    person: Person,
    period: Period,
    slots: list[Slot],
    calendar: Calendar,
    now: datetime,
    waiting: list[review.Waiting] | None = None,
    late: Sequence[OwnTask] = (),
    merged: Mapping[int, Merge] | None = None,
) -> Reply:
    """The reminder to report: the slots still open, the Phụ lục 1 tasks the person's
    organisation leads that are late (reports/tasks.py), and the reports waiting for changes."""
    _ = i18n.gettext_for(person.locale)
    deadline = calendar.deadline(period)
    days = (deadline.date() - now.astimezone(calendar.zone).date()).days
    lines: list[str] = []
    if slots:
        lines += [
            _("Reminder: the report for {period} is due before {day} ({days} day(s) left).").format(
                period=period.label(), day=_day(deadline.date(), person.locale), days=days
            ),
            *_also(period, person.locale),
            _("Not yet received:"),
            *_slot_lines(slots),
            *_merge_line(person, slots, merged or {}),
        ]
        if late:
            lines += [
                _("Tasks of Appendix 1 your organisation leads, late and not reported done:"),
                *own_lines(late, person.locale),
            ]
    fixes: list[Button] = []
    if waiting:
        more, fixes = review.waiting_lines(waiting, person.locale)
        lines += more
    buttons = [
        [
            Button(
                _("Report: {title}").format(title=s.title)[:60],
                _encode(payloads.OpenReport(s.subject, period)),
            )
        ]
        for s in slots[:MAX_SLOT_BUTTONS]
    ]
    buttons += [[b] for b in fixes[:MAX_SLOT_BUTTONS]]
    if slots:
        buttons.append([Button(_("Sent on paper"), _encode(payloads.PaperClaim(period)))])
    titles = [s.title for s in slots] + [w.title for w in waiting or ()]
    subject = titles[0]
    if len(titles) > 1:
        subject = _("{title} and {count} more").format(title=subject, count=len(titles) - 1)
    facts = (
        ("name", person.full_name or _("Sir/Madam")),
        ("subject", subject),
        ("period", period.label()),
        ("deadline", deadline.strftime("%d/%m/%Y")),
    )
    return Reply("\n".join(lines), buttons, facts=facts)


def _missing_by_district(slots: list[Slot], locale: str) -> list[str]:
    _ = i18n.gettext_for(locale)
    groups: dict[str, list[Slot]] = defaultdict(list)
    for slot in slots:
        groups[slot.district or _("City departments")].append(slot)
    lines: list[str] = []
    for district in sorted(groups):
        lines.append(f"{district} ({len(groups[district])}):")
        lines.extend(f"  • {s.title}" for s in groups[district])
    return lines


def _escalation(
    person: Person,
    period: Period,
    missing: list[Slot],
    unreachable: list[Person],
    uncertain: int,
) -> Reply | None:
    _ = i18n.gettext_for(person.locale)
    if person.role == Role.ADMIN:
        lines = [
            _(
                "The deadline for {period} has passed. Missing reports across the city: {count}."
            ).format(period=period.label(), count=len(missing)),
            *_missing_by_district(missing, person.locale),
        ]
        if unreachable:
            lines.append(
                _("Cannot be reached (blocked the bot or no chat): {count}").format(
                    count=len(unreachable)
                )
            )
            lines.extend(f"  • #{p.id} {p.full_name}" for p in unreachable)
        if uncertain:
            lines.append(
                _("{count} reminder(s) may not have arrived (the sender stopped mid-way).").format(
                    count=uncertain
                )
            )
        return Reply("\n".join(lines))
    if not missing:
        return None
    district = person.district.name if person.district else ""
    if commune_of(person) is not None and person.organisation is not None:
        district = place_of(person.organisation.name)  # a commune's or ward's: its place
    lines = [
        _("The deadline for {period} has passed. Missing reports in {district}: {count}.").format(
            period=period.label(), district=district, count=len(missing)
        ),
        *_slot_lines(missing),
    ]
    return Reply("\n".join(lines))


def _office_message(
    person: Person, period: Period, slots: list[Slot], calendar: Calendar, now: datetime
) -> Reply:
    _ = i18n.gettext_for(person.locale)
    deadline = calendar.office_deadline(period)
    days = (deadline.date() - now.astimezone(calendar.zone).date()).days
    r = rate(slots)
    lines = [
        _(
            "Reminder: the consolidated report for {period} to the city and the Ministry is due "
            "before {day} ({days} day(s) left)."
        ).format(period=period.label(), day=i18n.day(deadline.date(), person.locale), days=days),
        *_also(period, person.locale),
        _(
            "Reports received: {received}/{expected} ({percent}); on time {on_time}, late {late}."
        ).format(
            received=r.received,
            expected=r.expected,
            percent=i18n.percent(round(r.percent, 1), person.locale),
            on_time=r.on_time,
            late=r.late,
        ),
    ]
    missing = payloads.encode(payloads.Missing(period))
    return Reply("\n".join(lines), [[Button(_("Who has not reported"), missing)]])


def _claim_message(admin: Person, claim: PaperReceipt, title: str, claimant: str) -> Reply:
    _ = i18n.gettext_for(admin.locale)
    text = _("{who} says the report of {period} for {title} was sent on paper. Received?").format(
        who=claimant, period=Period.parse(claim.period).label(), title=title
    )
    received = payloads.encode(payloads.PaperDecision(claim.id, True))
    not_received = payloads.encode(payloads.PaperDecision(claim.id, False))
    return Reply(
        text,
        [
            [
                Button(_("Received on paper"), received),
                Button(_("Not received"), not_received),
            ]
        ],
    )


@dataclass
class Planned:
    """The reminders due now that the ledger has not seen, worded one by one as `items` is
    read: its queries are done, so the session may close and the first reminders go while the
    rest are worded. `skipped` (those the ledger has) is complete once `items` is exhausted."""

    items: Iterator[Outgoing]
    skipped: int = 0


async def plan(
    session: AsyncSession,
    calendar: Calendar,
    policy: Policy,
    now: datetime,
    channels: frozenset[str],
) -> tuple[list[Outgoing], int]:
    """Every reminder due now that the ledger has not seen; and how many it has."""
    found = await planned(session, calendar, policy, now, channels)
    out = list(found.items)
    return out, found.skipped


async def planned(
    session: AsyncSession,
    calendar: Calendar,
    policy: Policy,
    now: datetime,
    channels: frozenset[str],
) -> Planned:
    """`plan`, worded as it is read."""
    dues = due(calendar, policy, now)
    claims = await ledger.claimed_papers(session)
    sent_back = await reviews.changes_to_tell(session)
    fixed = await reviews.fixes_to_tell(session)
    periods = {str(d.period) for d in dues} | {c.period for c in claims}
    periods |= {r.period for r, _review in sent_back} | {new.period for new, _o, _r in fixed}
    if not periods:
        return Planned(iter(()))
    sent = await ledger.sent_kinds(session, periods)
    people = await ledger.active_people(session)
    chats = await ledger.active_chats(session)
    codes = await ledger.cluster_codes(session) if sent_back else {}
    admins = [p for p in people if p.role == Role.ADMIN]
    titles = await reviews.titles(
        session, [r.subject for r, _review in sent_back] + [n.subject for n, _o, _r in fixed]
    )
    waiting: defaultdict[int, list[review.Waiting]] = defaultdict(list)
    for report, decision in sent_back:
        for person in _owners(report.submitted_by_person_id, report.subject, people, codes):
            waiting[person.id].append(review.Waiting(report, decision, titles[report.subject]))
    # (period, its (person, ledger kind, message) as they are worded)
    sources: list[tuple[str, Iterable[tuple[Person, str, Reply | None]]]] = []
    slots_cache: dict[str, list[Slot]] = {}
    for item in dues:
        key = str(item.period)
        if key not in slots_cache:
            slots_cache[key] = await slots_for(session, item.period, calendar)
        slots = slots_cache[key]
        open_slots = [s for s in slots if not s.filled]
        found = await _plan_due(
            item,
            people,
            chats,
            admins,
            slots,
            open_slots,
            calendar,
            now,
            channels,
            session,
            waiting,
        )
        sources.append((key, found))
    notices: list[tuple[Person, str, str, Reply | None]] = []
    if not policy.quiet(now.astimezone(calendar.zone)):
        notices += _review_notices(sent_back, fixed, people, titles, codes)
    for claim in claims:
        title, claimant = await _claim_context(session, claim)
        notices += [
            (
                admin,
                claim.period,
                f"paper-{claim.id}",
                _claim_message(admin, claim, title, claimant),
            )
            for admin in admins
        ]
    result = Planned(iter(()))

    def outgoing(person: Person, period: str, kind: str, reply: Reply | None) -> Outgoing | None:
        if reply is None:
            return None
        if (person.id, period, kind) in sent:
            result.skipped += 1
            return None
        identity = _identity(chats.get(person.id, ()), channels)
        if identity is None:
            return None
        return Outgoing(
            person.id,
            period,
            kind,
            identity.channel,
            identity.external_id,
            reply,
            person.locale or "vi",
        )

    def items() -> Iterator[Outgoing]:
        for period, worded in sources:
            for person, kind, reply in worded:
                if (out := outgoing(person, period, kind, reply)) is not None:
                    yield out
        for person, period, kind, reply in notices:
            if (out := outgoing(person, period, kind, reply)) is not None:
                yield out

    result.items = items()
    return result


async def _plan_due(
    item: Due,
    people: list[Person],
    chats: dict[int, list[ledger.Chat]],
    admins: list[Person],
    slots: list[Slot],
    open_slots: list[Slot],
    calendar: Calendar,
    now: datetime,
    channels: frozenset[str],
    session: AsyncSession,
    waiting: dict[int, list[review.Waiting]] | None = None,
) -> Iterable[tuple[Person, str, Reply | None]]:
    """(person, ledger kind, message) for one due reminder; the reporters' worded as they
    are read (thousands of them), after the queries."""
    period = item.period
    out: list[tuple[Person, str, Reply | None]] = []
    if item.audience == "reporters":
        late = await _late_tasks(session, period, people)
        # a slot waiting for changes is listed with its comment, not as not received
        slots_of: defaultdict[int, list[Slot]] = defaultdict(list)
        for slot in open_slots:
            if slot.changes is None:
                for person_id in dict.fromkeys(slot.people):
                    slots_of[person_id].append(slot)
        merged = await merges(session)
        return _reporters(item, people, slots_of, calendar, now, waiting or {}, late, merged)
    if item.audience == "escalation":
        missed = await ledger.unreachable_people(session, str(period))
        unreachable = [
            p
            for p in people
            if p.role != Role.ADMIN
            and (
                (_identity(chats.get(p.id, ()), channels) is None and chats.get(p.id))
                or p.id in missed
            )
        ]
        uncertain = await ledger.uncertain_count(session)
        places = await cluster_places(session)
        for person in people:
            if person.role == Role.DISTRICT and (person.district or commune_of(person)):
                # a commune's or ward's committee: its clusters and itself (store.slots)
                mine = [s for s in open_slots if sees_slot(person, s, places)]
                out.append((person, item.kind, _escalation(person, period, mine, [], 0)))
            elif person.role == Role.ADMIN:
                out.append(
                    (
                        person,
                        item.kind,
                        _escalation(person, period, open_slots, unreachable, uncertain),
                    )
                )
    elif item.audience == "office":
        for admin in admins:
            out.append((admin, item.kind, _office_message(admin, period, slots, calendar, now)))
    return out


def _reporters(
    item: Due,
    people: list[Person],
    slots_of: dict[int, list[Slot]],
    calendar: Calendar,
    now: datetime,
    waiting: dict[int, list[review.Waiting]],
    late: dict[int, list[OwnTask]],
    merged: Mapping[int, Merge],
) -> Iterator[tuple[Person, str, Reply | None]]:
    for person in people:
        mine = slots_of.get(person.id, [])
        to_fix = waiting.get(person.id, [])
        if mine or to_fix:
            overdue = late.get(person.organisation_id, []) if person.organisation_id else []
            reply = _reporter_message(
                person, item.period, mine, calendar, now, to_fix, overdue, merged
            )
            yield person, item.kind, reply


async def _late_tasks(
    session: AsyncSession, period: Period, people: list[Person]
) -> dict[int, list[OwnTask]]:
    """Organisation id (a person's) → the Phụ lục 1 tasks late at the end of `period` that the
    organisation it reports for leads: itself, or from the period after a merge its successor,
    with the tasks of every organisation merged into that one."""
    heir = await successors(session, period)
    mine = {
        p.organisation_id: lead_group(p.role)
        for p in people
        if p.organisation_id is not None and p.role in ORG_ROLES
    }
    leads = {heir.get(org, org): group for org, group in mine.items()}
    late = await late_of(session, period, list(leads.items()))
    return {org: late[heir.get(org, org)] for org in mine if heir.get(org, org) in late}


def _owners(
    sender_id: int, subject: Subject, people: list[Person], codes: dict[int, set[str]]
) -> list[Person]:
    """Who is to correct a report sent back: its sender, or if they have left, whoever now
    reports on its subject."""
    sender = [p for p in people if p.id == sender_id]
    if sender:
        return sender
    if subject.code is not None:
        return [
            p for p in people if p.role == Role.INVESTOR and subject.code in codes.get(p.id, ())
        ]
    return [p for p in people if p.role != Role.ADMIN and p.organisation_id == subject.org_id]


def _review_notices(
    sent_back: list[tuple[Report, ReportReview]],
    fixed: list[tuple[Report, Report, ReportReview]],
    people: list[Person],
    titles: dict[Subject, str],
    codes: dict[int, set[str]],
) -> list[tuple[Person, str, str, Reply]]:
    """(person, period, ledger kind, message) of the review's notices: the sender of each
    report sent back, the reviewer of each correction (or every admin, for a decision taken
    from the command line or by someone who has left)."""
    out: list[tuple[Person, str, str, Reply]] = []
    by_id = {p.id: p for p in people}
    admins = [p for p in people if p.role == Role.ADMIN]
    for report, decision in sent_back:
        reviewer = by_id.get(decision.person_id) if decision.person_id is not None else None
        for person in _owners(report.submitted_by_person_id, report.subject, people, codes):
            _ = i18n.gettext_for(person.locale)
            who = _("Sở Công Thương")
            if reviewer is not None and reviewer.role == Role.DEPARTMENT and reviewer.organisation:
                who = reviewer.organisation.name
            reply = review.changes_notice(
                report, decision, titles[report.subject], who, person.locale
            )
            out.append((person, report.period, f"changes-{decision.id}", reply))
    for new, old, decision in fixed:
        reviewer = by_id.get(decision.person_id) if decision.person_id is not None else None
        sender = by_id.get(new.submitted_by_person_id)
        name = sender.full_name if sender is not None else ""
        for person in [reviewer] if reviewer is not None else admins:
            reply = review.fixed_notice(new, old, titles[new.subject], name, person.locale)
            out.append((person, new.period, f"fixed-{new.id}", reply))
    return out


async def _claim_context(session: AsyncSession, claim: PaperReceipt) -> tuple[str, str]:
    title = await ledger.subject_title(session, claim.subject)
    claimant = await ledger.person_name(session, claim.claimed_by_person_id)
    return title, claimant or "?"


# --- sending ------------------------------------------------------------------------------


async def _for_channel(
    sessions: async_sessionmaker[AsyncSession], notifier: Notifier, item: Outgoing
) -> tuple[Reply, list[list[str]]]:
    """On a channel without buttons, the reminder's choices as letters to type — letters, so
    they never clash with a figure typed for the question the person may have open."""
    typed: frozenset[str] = getattr(notifier, "typed_channels", frozenset())
    if item.channel not in typed or not item.reply.buttons:
        return item.reply, []
    async with sessions() as session:
        state = await chat_state(session, item.channel, item.chat_id)
    taken = choices.keys_of(state.get(choices.OFFER_KEY))
    [keyed] = choices.assign([item.reply], taken, letters=True)
    return choices.render(keyed, item.locale), choices.offer([keyed])


async def deliver(
    sessions: async_sessionmaker[AsyncSession],
    notifier: Notifier,
    item: Outgoing,
    now: datetime,
) -> Delivery | None:
    """Once the channel's pace lets it go: claim the ledger row, then send. None if another
    sender had already claimed it."""
    offered: list[list[str]] = []
    async with notifier.turn(item.channel, item.chat_id):
        if not await ledger.claim(
            sessions, item.person_id, item.period, item.kind, item.channel, now
        ):
            return None
        try:
            reply, offered = await _for_channel(sessions, notifier, item)
            result = await notifier.send(item.channel, item.chat_id, reply)
        except Exception:  # a failed send must still settle its ledger row
            log.exception("reminder %s to person %s failed", item.kind, item.person_id)
            result = Delivery.FAILED
    async with unit_of_work(sessions) as session:
        await ledger.settle(session, item.person_id, item.period, item.kind, result.value, now)
        if offered and result == Delivery.SENT:  # the reminder's choices can now be typed
            await update_chat_state(
                session,
                item.channel,
                item.chat_id,
                choices.OFFER_KEY,
                lambda previous: choices.merged(previous, offered),
            )
        if result == Delivery.BLOCKED:
            await mark_unreachable(session, item.channel, item.chat_id)
    return result


async def tick(
    sessions: async_sessionmaker[AsyncSession],
    calendar: Calendar,
    policy: Policy,
    notifier: Notifier,
    now: datetime,
    *,
    # sends waiting for their turn (claimed only when it comes) and on the wire at once
    concurrency: int = 16,
    dry_run: bool = False,
) -> TickResult:
    async with sessions() as session:
        found = await planned(session, calendar, policy, now, notifier.channels)
    result = TickResult()
    if dry_run:
        result.outgoing = list(found.items)
        result.skipped = found.skipped
        return result

    async def worker() -> None:
        # the workers share one iterator: each reminder is worded when a worker takes it, so
        # the first go out while the rest are worded
        for item in found.items:
            result.outgoing.append(item)
            delivery = await deliver(sessions, notifier, item, now)
            if delivery == Delivery.SENT:
                result.sent += 1
            elif delivery == Delivery.BLOCKED:
                result.blocked += 1
            elif delivery == Delivery.UNREACHABLE:
                result.unreachable += 1
            elif delivery == Delivery.FAILED:
                result.failed += 1
            else:
                result.skipped += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.skipped += found.skipped
    return result
