"""Photos that may not prove what they show (store.integrity): checked as they are recorded,
what was noticed is kept for the reviewer and told to the sender at once.

The sender is told, not asked: the photo is kept either way (a photo used before may be the
right one — a site where nothing changed), the reviewer sees the same flags and decides, and a
question here would stop the report's own question (and come once per photo of an album). The
message says what was noticed and what to do if it was a mistake: send a new photo."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from domain import i18n
from domain.calendar import Period
from domain.draft import valid_where
from domain.subjects import Subject
from handlers.context import Ctx
from handlers.port import Reply
from handlers.subjects import subjects_of
from store import integrity
from store.drafts import open_draft
from store.models import Photo


def rules(ctx: Ctx) -> integrity.Rules:
    config = ctx.deps.config
    return integrity.Rules(config.photo_max_age_days, config.photo_max_distance_m)


async def target(ctx: Ctx) -> integrity.Target | None:
    """What the photos of this update are for: the open report's subject and period; outside
    a report, the person's only subject and the period /baocao would open (None if they report
    on several: the photos are checked when the reviewer looks at the report)."""
    if ctx.person is None:
        return None
    draft = await open_draft(ctx.session, ctx.state.draft) if ctx.state.step.in_report else None
    if draft is not None:
        shared = integrity.shared_location(draft.answers)
        return integrity.Target(draft.subject, draft.period, draft.cluster_id, shared)
    subjects = subjects_of(ctx.person)
    if len(subjects) != 1:
        return None
    kept = ctx.state.pending_location
    shared = None
    if kept is not None and valid_where(kept):
        lat, lon = kept.split(",")
        shared = (float(lat), float(lon))
    period = str(ctx.deps.calendar.period_at(ctx.now))
    return integrity.Target(subjects[0].subject, period, subjects[0].cluster_id, shared)


async def check_photo(ctx: Ctx, photo: Photo, new: bool) -> None:
    """Check a photo just recorded for this update's report (`new`: stored by it): keep its
    flags, and note what to tell the sender (`notices`)."""
    aim = await target(ctx)
    if aim is None:
        return
    flags = await integrity.check(ctx.session, photo, aim, rules(ctx), ctx.deps.config.zone)
    await integrity.record(ctx.session, photo.id, aim, flags, ctx.now, new_photo=new)
    if flags:
        ctx.photo_notices.append(told(ctx, flags))


def notices(ctx: Ctx) -> list[Reply]:
    """What was noticed about this update's photos, one message, or none."""
    if not ctx.photo_notices:
        return []
    closing = ctx._(
        "The photo is kept with your report, and Sở Công Thương will see this note. "
        "If it was sent by mistake, please send a photo taken at the site this month."
    )
    return [Reply("\n".join([*ctx.photo_notices, closing]))]


def told(ctx: Ctx, flags: list[dict[str, Any]]) -> str:
    """The sentences telling the sender what was noticed about one photo."""
    _ = ctx._
    lines = []
    for flag in flags:
        kind = flag.get("kind")
        if kind == "reused":
            lines.append(
                _(
                    "This photo looks like one already sent for {period} (report {reference})."
                ).format(
                    period=Period.parse(str(flag["period"])).label(), reference=flag["reference"]
                )
            )
        elif kind == "old":
            lines.append(
                _("This photo was taken on {day}, more than {days} days before its month.").format(
                    day=_day(flag, ctx.locale), days=ctx.deps.config.photo_max_age_days
                )
            )
        elif kind == "far" and flag.get("source") == "shared":
            lines.append(
                _("The location shared in the report is {distance} from the cluster.").format(
                    distance=distance(int(flag["metres"]), ctx.locale)
                )
            )
        elif kind == "far":
            lines.append(
                _("This photo was taken {distance} from the cluster.").format(
                    distance=distance(int(flag["metres"]), ctx.locale)
                )
            )
    return " ".join(lines)


def described(flags: list[dict[str, Any]], locale: str) -> str:
    """The flags of a photo in a few words, for the reviewer ("" if none)."""
    _ = i18n.gettext_for(locale)
    words = []
    for flag in flags:
        kind = flag.get("kind")
        if kind == "reused":
            words.append(
                _("photo used before: {reference}, {period}").format(
                    reference=flag["reference"], period=Period.parse(str(flag["period"])).label()
                )
            )
        elif kind == "old":
            words.append(_("photo taken on {day}").format(day=_day(flag, locale)))
        elif kind == "far":
            words.append(
                _("taken {distance} from the cluster").format(
                    distance=distance(int(flag["metres"]), locale)
                )
            )
    return "; ".join(words)


def distance(metres: int, locale: str) -> str:
    """`850 m`, `5,2 km` (Vietnamese decimals)."""
    if metres < 1000:
        return f"{i18n.number(metres, locale)} m"
    km = (Decimal(metres) / 1000).quantize(Decimal("0.1"))
    return f"{i18n.number(km, locale)} km"


def _day(flag: dict[str, Any], locale: str) -> str:
    return i18n.day(date.fromisoformat(str(flag["taken"])), locale)


async def noted(ctx: Ctx, code: str, photo_ids: list[int]) -> dict[int, str]:
    """For a photo caption: " — " and the flags kept for each of these photos of a cluster's
    reports ("" for a photo with none)."""
    kept = await integrity.flags_by_photo(ctx.session, Subject.cluster(code), photo_ids)
    words = {i: described(kept.get(i, []), ctx.locale) for i in photo_ids}
    return {i: f" — ⚠️ {text}" if text else "" for i, text in words.items()}
