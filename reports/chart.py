"""The summary chart: groundbreakings by quarter (the quarterly targets of the plan of the
period's year), plan against actual — for a year without a plan the actual alone — and the
reporting rate by district. Rendered headless with matplotlib."""

from __future__ import annotations

from pathlib import Path

from domain import i18n
from reports.plan import NO_PLAN
from reports.summary import Summary


def render(summary: Summary, path: Path, locale: str = "vi") -> Path:
    # imported here: half a second that start-up and every CLI command need not pay
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _ = i18n.gettext_for(locale)
    quarters = [t for t in summary.targets if t.quarterly]
    districts = [(d or _("City departments"), r) for d, r in summary.by_district]
    height = max(4.0, 1.5 + 0.32 * len(districts))
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, height), dpi=110)
    labels = [i18n.quarter(t.period, locale) for t in quarters]  # the plan's year
    x = range(len(quarters))
    actual = [float(t.actual or 0) for t in quarters]
    if summary.plan is not None:
        plan = [float(t.plan_min or 0) for t in quarters]
        left.bar([i - 0.2 for i in x], plan, width=0.4, label=_("Plan"), color="#9db4d3")
        left.bar([i + 0.2 for i in x], actual, width=0.4, label=_("Actual"), color="#1f5fa8")
        for i, (p, a) in enumerate(zip(plan, actual, strict=True)):
            left.text(i - 0.2, p, f"{p:.0f}", ha="center", va="bottom", fontsize=9)
            left.text(i + 0.2, a, f"{a:.0f}", ha="center", va="bottom", fontsize=9)
        left.set_title(_("Groundbreakings by quarter"))
    else:  # no target to draw: the actual alone, and the year said to have no plan
        left.bar(list(x), actual, width=0.5, label=_("Actual"), color="#1f5fa8")
        for i, a in enumerate(actual):
            left.text(i, a, f"{a:.0f}", ha="center", va="bottom", fontsize=9)
        no_plan = _(NO_PLAN).format(year=summary.period.year)
        left.set_title(
            _("Groundbreakings by quarter ({no_plan})").format(no_plan=no_plan), fontsize=10
        )
    left.set_xticks(list(x), labels)
    left.legend()
    names = [d for d, _r in districts]
    rates = [r.percent for _d, r in districts]
    right.barh(names, rates, color="#2e8b57")
    right.set_xlim(0, 100)
    right.invert_yaxis()
    right.set_title(
        _("Reporting rate by district, {period} (%)").format(period=summary.period.label())
    )
    for i, value in enumerate(rates):
        right.text(
            min(value + 1, 92), i, i18n.number(round(value, 1), locale), va="center", fontsize=8
        )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    plt.close(figure)
    return path
