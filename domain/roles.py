"""Who reports and on what: roles of people, kinds of clusters and of organisations."""

from __future__ import annotations

import enum


class OrgKind(enum.StrEnum):
    COMPANY = "company"
    DISTRICT_BOARD = "district_board"
    DISTRICT_COMMITTEE = "district_committee"
    # since 1 July 2025 (no district level): a commune's or a ward's People's Committee reports
    # as a district's did, with the role `district`
    COMMUNE_COMMITTEE = "commune_committee"
    WARD_COMMITTEE = "ward_committee"
    DEPARTMENT = "department"
    OTHER = "other"

    @property
    def local_committee(self) -> bool:
        """A People's Committee below the city: reports with the role `district`."""
        return self in LOCAL_COMMITTEES


LOCAL_COMMITTEES = frozenset(
    {OrgKind.DISTRICT_COMMITTEE, OrgKind.COMMUNE_COMMITTEE, OrgKind.WARD_COMMITTEE}
)


class ClusterKind(enum.StrEnum):
    OPERATING_COMPLETE = "operating_complete"
    OPERATING_INCOMPLETE = "operating_incomplete"
    FOUNDED_2018_2020 = "founded_2018_2020"
    FOUNDED_2021 = "founded_2021"  # new clusters founded under the plan; Sở adds them by import

    @property
    def founding(self) -> bool:
        """Still being built (Phụ lục 2, 3), as opposed to operating (Phụ lục 1)."""
        return self in (ClusterKind.FOUNDED_2018_2020, ClusterKind.FOUNDED_2021)

    @property
    def form(self) -> str:
        """The report form a cluster of this kind answers."""
        return "founded" if self.founding else "operating"


class Role(enum.StrEnum):
    ADMIN = "admin"
    DEPARTMENT = "department"
    DISTRICT = "district"
    INVESTOR = "investor"


REPORTER_ROLES = (Role.INVESTOR, Role.DISTRICT, Role.DEPARTMENT)
