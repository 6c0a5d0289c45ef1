"""ORM models. Reports, photos, invitations, conversation state and reminders hang off
`people`, `clusters` and `organisations` in later migrations."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON}  # noqa: RUF012


class OrgKind(enum.StrEnum):
    COMPANY = "company"
    DISTRICT_BOARD = "district_board"
    DISTRICT_COMMITTEE = "district_committee"
    DEPARTMENT = "department"
    OTHER = "other"


class ClusterKind(enum.StrEnum):
    OPERATING_COMPLETE = "operating_complete"
    OPERATING_INCOMPLETE = "operating_incomplete"
    FOUNDED_2018_2020 = "founded_2018_2020"


class Role(enum.StrEnum):
    ADMIN = "admin"
    DEPARTMENT = "department"
    DISTRICT = "district"
    INVESTOR = "investor"


class District(Base):
    __tablename__ = "districts"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    district_id: Mapped[int | None] = mapped_column(ForeignKey("districts.id"))
    aliases: Mapped[str] = mapped_column(Text, default="")  # "|"-separated other spellings

    district: Mapped[District | None] = relationship()


class Cluster(Base):
    __tablename__ = "clusters"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    appendix: Mapped[int] = mapped_column(Integer)
    section: Mapped[str] = mapped_column(String(16), default="")
    number: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    district_id: Mapped[int | None] = mapped_column(ForeignKey("districts.id"))
    kind: Mapped[str] = mapped_column(String(32))
    investor_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    occupancy_rate: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    planned_groundbreaking: Mapped[str | None] = mapped_column(String(7))  # YYYY-MM
    planned_completion: Mapped[str | None] = mapped_column(String(7))  # YYYY-Qn
    lead_org_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    missing: Mapped[str] = mapped_column(Text, default="")
    source_line: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    district: Mapped[District | None] = relationship()
    investor: Mapped[Organisation | None] = relationship(foreign_keys=[investor_id])
    lead_org: Mapped[Organisation | None] = relationship(foreign_keys=[lead_org_id])
    steps: Mapped[list[ClusterStep]] = relationship(
        back_populates="cluster", order_by="ClusterStep.seq", cascade="all, delete-orphan"
    )


class ClusterStep(Base):
    """One assignment of the plan for a cluster (Phụ lục 2 task blocks, Phụ lục 3 steps)."""

    __tablename__ = "cluster_steps"
    __table_args__ = (UniqueConstraint("cluster_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    owner_role: Mapped[str] = mapped_column(String(16))  # investor | district | department | other
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    due: Mapped[str | None] = mapped_column(String(7))
    source_line: Mapped[int | None] = mapped_column(Integer)

    cluster: Mapped[Cluster] = relationship(back_populates="steps")
    owner: Mapped[Organisation | None] = relationship()


class Task(Base):
    """A city-level task of Phụ lục 1."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    title: Mapped[str] = mapped_column(Text)
    lead_text: Mapped[str] = mapped_column(Text)
    partners_text: Mapped[str] = mapped_column(Text)
    due_text: Mapped[str] = mapped_column(Text)
    due_kind: Mapped[str] = mapped_column(String(32))
    due_value: Mapped[str] = mapped_column(String(16), default="")
    source_line: Mapped[int | None] = mapped_column(Integer)

    assignments: Mapped[list[TaskAssignment]] = relationship(
        back_populates="task", cascade="all, delete-orphan"
    )


class TaskAssignment(Base):
    """Who leads a task: a named organisation, or a group (all_districts, all_departments, ...)."""

    __tablename__ = "task_assignments"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))  # lead
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    group_code: Mapped[str | None] = mapped_column(String(32))

    task: Mapped[Task] = relationship(back_populates="assignments")
    organisation: Mapped[Organisation | None] = relationship()


class Target(Base):
    """A target of the plan (section I.2 and the quarterly groundbreaking plan)."""

    __tablename__ = "targets"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(Text)
    value_min: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    value_max: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    unit: Mapped[str] = mapped_column(String(16))
    period: Mapped[str] = mapped_column(String(16), default="")
    source_line: Mapped[int | None] = mapped_column(Integer)


class Person(Base):
    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    full_name: Mapped[str] = mapped_column(String(255), default="")
    phone: Mapped[str | None] = mapped_column(String(32))
    role: Mapped[str | None] = mapped_column(String(16))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    district_id: Mapped[int | None] = mapped_column(ForeignKey("districts.id"))
    locale: Mapped[str] = mapped_column(String(8), default="vi")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    organisation: Mapped[Organisation | None] = relationship()
    district: Mapped[District | None] = relationship()
    identities: Mapped[list[ChannelIdentity]] = relationship(back_populates="person")
    clusters: Mapped[list[Cluster]] = relationship(secondary="person_clusters")


class PersonCluster(Base):
    """An investor's (or officer's) scope: the clusters they report on."""

    __tablename__ = "person_clusters"

    person_id: Mapped[int] = mapped_column(
        ForeignKey("people.id", ondelete="CASCADE"), primary_key=True
    )
    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True
    )


class ChannelIdentity(Base):
    """A person on one messenger: (channel, external id) is unique."""

    __tablename__ = "channel_identities"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))  # telegram | zalo | terminal
    external_id: Mapped[str] = mapped_column(String(64))
    username: Mapped[str | None] = mapped_column(String(255))
    reachable: Mapped[bool] = mapped_column(Boolean, default=True)
    last_seen_at: Mapped[datetime | None] = mapped_column()

    person: Mapped[Person] = relationship(back_populates="identities")


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    actor: Mapped[str] = mapped_column(String(64), default="")  # "cli", "system", ...
    channel: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64), default="")
    entity_id: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
