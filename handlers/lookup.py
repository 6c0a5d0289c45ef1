"""Looking a cluster up by name and answering with its registry card."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.context import Ctx
from handlers.port import Button, Reply
from store import i18n
from store.clusters import Match, all_clusters, search
from store.models import Cluster, ClusterKind, ReportDraft
from store.text import bare_cluster_name

KIND_LABELS = {
    ClusterKind.OPERATING_COMPLETE: i18n.N_("operating, infrastructure finished"),
    ClusterKind.OPERATING_INCOMPLETE: i18n.N_("operating, infrastructure unfinished"),
    ClusterKind.FOUNDED_2018_2020: i18n.N_("founded 2018–2020"),
}


async def has_open_draft(session: AsyncSession, person_id: int) -> bool:
    found = await session.scalar(
        select(ReportDraft.id)
        .where(ReportDraft.person_id == person_id, ReportDraft.status == "open")
        .limit(1)
    )
    return found is not None


def card(cluster: Cluster, locale: str) -> str:
    _ = i18n.gettext_for(locale)
    lines = [cluster.name]
    if cluster.district:
        lines.append(_("District: {district}").format(district=cluster.district.name))
    lines.append(_("Kind: {kind}").format(kind=_(KIND_LABELS[ClusterKind(cluster.kind)])))
    if cluster.investor:
        lines.append(_("Investor: {investor}").format(investor=cluster.investor.name))
    if cluster.occupancy_rate is not None:
        lines.append(
            _("Occupancy: {rate}").format(rate=i18n.percent(cluster.occupancy_rate, locale))
        )
    if cluster.planned_groundbreaking:
        lines.append(
            _("Planned groundbreaking: {month}").format(
                month=i18n.month(cluster.planned_groundbreaking, locale)
            )
        )
    if cluster.planned_completion:
        lines.append(
            _("Infrastructure due: {quarter}").format(
                quarter=i18n.quarter(cluster.planned_completion, locale)
            )
        )
    return "\n".join(lines)


async def answer(ctx: Ctx) -> list[Reply]:
    """A cluster's name typed (or a cluster button tapped): its card, or buttons to choose."""
    locale = ctx.locale
    _ = ctx._
    text = (ctx.incoming.payload or ctx.incoming.text).strip()
    clusters = await all_clusters(ctx.session)
    if text.startswith("cluster:"):
        code = text.removeprefix("cluster:")
        chosen = [c for c in clusters if c.code == code]
        if chosen:
            return [Reply(card(chosen[0], locale))]
    matches = search(clusters, text)
    if not matches:
        lines = [_("No cluster matches “{query}”. Please check the name.").format(query=text)]
        if ctx.person is not None and await has_open_draft(ctx.session, ctx.person.id):
            lines.append(_("You have a report in progress: send /baocao to continue."))
        lines.append(_("Send /trogiup for help."))
        return [Reply("\n".join(lines))]
    first = matches[0]
    if first.exact and (len(matches) == 1 or not matches[1].exact):
        # the cluster asked for, and a way to the ones whose names contain it ("Bình Phú I")
        others = [m for m in matches[1:] if m.score >= 90]
        return [Reply(card(first.cluster, locale), _buttons(others, locale))]
    return [Reply(_("Which cluster do you mean?"), _buttons(matches, locale))]


def _buttons(matches: list[Match], locale: str) -> list[list[Button]]:
    """One button per cluster; two clusters of the same name are told apart by their kind."""
    _ = i18n.gettext_for(locale)
    names = Counter(bare_cluster_name(m.cluster.name) for m in matches)
    rows = []
    for m in matches:
        label = m.cluster.name
        if names[bare_cluster_name(label)] > 1:
            label = f"{label} ({_(KIND_LABELS[ClusterKind(m.cluster.kind)])})"
        rows.append([Button(label, f"cluster:{m.cluster.code}")])
    return rows
