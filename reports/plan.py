"""The plan the upward report answers, and the office that sends it: one place for the plan's
number, date and subject (the plan-by-year work replaces this constant with the registry's plan
of each year) and for the words of the document's heading."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from domain.i18n import N_


@dataclass(frozen=True)
class Plan:
    number: str  # the number and symbol, as printed: 68/KH-UBND
    signed: date
    year: int
    issuer: str  # who issued it (a message id)
    subject: str  # what it is about (a message id)

    def signed_text(self) -> str:
        """`17/3/2021`, as administrative documents cite a date."""
        return f"{self.signed.day}/{self.signed.month}/{self.signed.year}"


PLAN = Plan(
    number="68/KH-UBND",
    signed=date(2021, 3, 17),
    year=2021,
    issuer=N_("the city People's Committee"),
    subject=N_(
        "on the management, investment and development of industrial clusters in Hà Nội in {year}"
    ),
)

# The sender: the governing body above it, itself, the symbol of its reports (Nghị định
# 30/2020/NĐ-CP, Phụ lục III: BC = báo cáo) and the title of who signs.
GOVERNING_BODY = N_("HANOI PEOPLE'S COMMITTEE")
OFFICE = N_("DEPARTMENT OF INDUSTRY AND TRADE")
OFFICE_NAME = N_("Department of Industry and Trade")
SYMBOL = "BC-SCT"
SIGNER = N_("DIRECTOR")
PLACE = N_("Hà Nội")
# Section IV of the plan: Sở Công Thương reports to the city People's Committee and the Ministry.
RECIPIENTS = (
    N_("The city People's Committee (to report)"),
    N_("The Ministry of Industry and Trade (to report)"),
    N_("Archive: VT"),
)
