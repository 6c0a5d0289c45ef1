"""ORM models. Reports, photos, invitations, conversation state and reminders hang off
`people`, `clusters` and `organisations` in later migrations."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from domain.subjects import Subject

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def _part_of(column: str) -> Mapped[int]:
    """A key column of a row that belongs to the row `column` names: deleting that row deletes
    this one (an association row, a photo's hash band)."""
    return mapped_column(ForeignKey(column, ondelete="CASCADE"), primary_key=True)


class UTCDateTime(TypeDecorator[datetime]):
    """A moment in time: stored in UTC, read back aware on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: say which time zone it is in")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class SubjectText(TypeDecorator[Subject]):
    """A report's subject, stored as its text (`cluster:<code>`, `org:<id>`). Compared with a
    plain string (a prefix in a query), the string is bound as it is."""

    impl = String(64)
    cache_ok = True

    def process_bind_param(self, value: Subject | str | None, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Subject | None:
        return None if value is None else Subject.parse(value)

    def coerce_compared_value(self, op: Any, value: Any) -> Any:
        return String(64) if isinstance(value, str) else self


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {  # noqa: RUF012
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        Subject: SubjectText,
    }


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
    # organisations as data (`ccn-bot orgs import`): the one above it (a district's board →
    # its committee), when it existed (None: since always / still), the one it became
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)  # its last day
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))

    district: Mapped[District | None] = relationship()
    parent: Mapped[Organisation | None] = relationship(foreign_keys=[parent_id], remote_side=[id])
    merged_into: Mapped[Organisation | None] = relationship(
        foreign_keys=[merged_into_id], remote_side=[id]
    )


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
    # where the cluster is (the registry's `location` column, or a proposal from its first
    # located reports that an admin confirmed): site photos far from it are flagged
    latitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    longitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    # its place since 1 July 2025: the People's Committee of its commune or ward (`district`
    # stays the district the plan names)
    commune_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    district: Mapped[District | None] = relationship()
    # the districts that share the cluster besides `district` (migration 0012): the plan
    # prints one row for two districts ("Quận Nam Từ Liêm - Bắc Từ Liêm"); each one's officer
    # sees it and reports on it, and its slot is owed once
    shared_districts: Mapped[list[District]] = relationship(
        secondary="cluster_districts", order_by="District.id"
    )
    commune: Mapped[Organisation | None] = relationship(foreign_keys=[commune_id])
    investor: Mapped[Organisation | None] = relationship(foreign_keys=[investor_id])
    lead_org: Mapped[Organisation | None] = relationship(foreign_keys=[lead_org_id])
    steps: Mapped[list[ClusterStep]] = relationship(
        back_populates="cluster", order_by="ClusterStep.seq", cascade="all, delete-orphan"
    )


class ClusterDistrict(Base):
    """A district that shares a cluster with the district the plan files it under."""

    __tablename__ = "cluster_districts"

    cluster_id: Mapped[int] = _part_of("clusters.id")
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id"), primary_key=True)


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


class Duty(Base):
    """A duty section III of the plan gives an organisation that no Phụ lục 1 task it leads
    already covers (store/registry/duties.csv); asked in its monthly task report."""

    __tablename__ = "duties"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)  # the report's item key: d5-1
    section: Mapped[str] = mapped_column(String(16))  # III.5
    who: Mapped[str] = mapped_column(Text)  # the section's heading, as the plan names them
    text: Mapped[str] = mapped_column(Text)
    source_line: Mapped[int | None] = mapped_column(Integer)

    assignments: Mapped[list[DutyAssignment]] = relationship(
        back_populates="duty", cascade="all, delete-orphan"
    )


class DutyAssignment(Base):
    """Whose duty it is: a named organisation, or a group (all_districts, ...)."""

    __tablename__ = "duty_assignments"

    id: Mapped[int] = mapped_column(primary_key=True)
    duty_id: Mapped[int] = mapped_column(ForeignKey("duties.id", ondelete="CASCADE"))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    group_code: Mapped[str | None] = mapped_column(String(32))

    duty: Mapped[Duty] = relationship(back_populates="assignments")
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
    revoked_at: Mapped[datetime | None] = mapped_column()

    organisation: Mapped[Organisation | None] = relationship()
    district: Mapped[District | None] = relationship()
    identities: Mapped[list[ChannelIdentity]] = relationship(back_populates="person")
    clusters: Mapped[list[Cluster]] = relationship(secondary="person_clusters")


class PersonCluster(Base):
    """An investor's (or officer's) scope: the clusters they report on."""

    __tablename__ = "person_clusters"

    person_id: Mapped[int] = _part_of("people.id")
    cluster_id: Mapped[int] = _part_of("clusters.id")


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


# --- the report conversation (migration 0002) ----------------------------------------------


class Invitation(Base):
    """A single-use token that binds a chat to a role and scope."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    district_id: Mapped[int | None] = mapped_column(ForeignKey("districts.id"))
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()
    used_by_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    revoked_at: Mapped[datetime | None] = mapped_column()

    organisation: Mapped[Organisation | None] = relationship()
    district: Mapped[District | None] = relationship()
    clusters: Mapped[list[Cluster]] = relationship(secondary="invitation_clusters")


class InvitationCluster(Base):
    __tablename__ = "invitation_clusters"

    invitation_id: Mapped[int] = _part_of("invitations.id")
    cluster_id: Mapped[int] = _part_of("clusters.id")


class Conversation(Base):
    """Where a chat is in its conversation: kept here so a restart loses nothing."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("channel", "chat_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ProcessedUpdate(Base):
    """A channel update already handled: one delivered twice is handled once."""

    __tablename__ = "processed_updates"
    __table_args__ = (UniqueConstraint("channel", "update_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    update_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    # what the bot answered it (handlers.outbox's JSON), written in the same transaction
    replies: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)


class InboxEvent(Base):
    """An event a webhook acknowledged before handling it (Zalo wants its answer within 2 s):
    kept until it is handled, so one acknowledged just before a crash is handled after it."""

    __tablename__ = "inbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    body: Mapped[dict[str, Any]] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReportDraft(Base):
    """A report being filled in; survives /huy, restarts and silence until it is submitted."""

    __tablename__ = "report_drafts"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    subject: Mapped[Subject]
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey("clusters.id"))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    form: Mapped[str] = mapped_column(String(32))
    answers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | submitted
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Report(Base):
    """A submitted report. Never edited: a correction is a new version of the same subject and
    period."""

    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("subject", "period", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    subject: Mapped[Subject]
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey("clusters.id"), index=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    period: Mapped[str] = mapped_column(String(7), index=True)
    form: Mapped[str] = mapped_column(String(32))
    form_version: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    answers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_by_person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    channel: Mapped[str] = mapped_column(String(16))
    deadline_at: Mapped[datetime] = mapped_column()
    on_time: Mapped[bool] = mapped_column(Boolean)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"))
    draft_id: Mapped[int | None] = mapped_column(ForeignKey("report_drafts.id"))
    # the review (migration 0009): new | accepted | needs_changes (domain.slots.Review); the
    # answers are never edited, the state is the report's status as a draft's is; who set it,
    # when and why is in report_reviews and the audit log
    review_state: Mapped[str] = mapped_column(
        String(16), default="new", server_default="new", index=True
    )


class Photo(Base):
    """A stored image, by the SHA-256 of its bytes (the same photo twice is stored once)."""

    __tablename__ = "photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    mime: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(255))  # relative to DATA_DIR
    thumb_path: Mapped[str] = mapped_column(String(255))
    taken_at: Mapped[datetime | None] = mapped_column()
    latitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    longitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    # the perceptual hash (imagehash's pHash, 64 bits as 16 hex digits): the same picture
    # re-encoded or resized has a hash a few bits away (store.integrity)
    phash: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReportPhoto(Base):
    """A photo sent for a report: linked to the draft while it is filled, then to the report."""

    __tablename__ = "report_photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id"), index=True)  # reuse lookup
    draft_id: Mapped[int | None] = mapped_column(
        ForeignKey("report_drafts.id", ondelete="SET NULL")
    )
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"))
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey("clusters.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    caption: Mapped[str] = mapped_column(Text, default="")
    channel: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)

    photo: Mapped[Photo] = relationship()


class PhotoHashBand(Base):
    """One band of a photo's perceptual hash, as a key `band << 16 | bits`: a photo within a
    few bits of another shares a band with it, or one a bit away (store.integrity)."""

    __tablename__ = "photo_hash_bands"

    key: Mapped[int] = mapped_column(Integer, primary_key=True)
    photo_id: Mapped[int] = _part_of("photos.id")


class PhotoCheck(Base):
    """What was noticed about a photo sent for a subject's report of a period, when it was sent:
    `flags` is a list of {"kind": "reused" | "old" | "far", ...} (store.integrity), empty when
    nothing was. Every version of that report shows the same photo with the same flags."""

    __tablename__ = "photo_checks"
    __table_args__ = (UniqueConstraint("photo_id", "subject", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"))
    subject: Mapped[Subject]
    period: Mapped[str] = mapped_column(String(7))
    flags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- reminders (migration 0003) ---------------------------------------------------------------


class PaperReceipt(Base):
    """A report received on paper: claimed by the reporter ("Đã gửi bằng văn bản") and
    confirmed by Sở Công Thương, or recorded by an admin directly. Confirmed, it fills the slot."""

    __tablename__ = "paper_receipts"
    __table_args__ = (UniqueConstraint("subject", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[Subject]
    period: Mapped[str] = mapped_column(String(7))
    status: Mapped[str] = mapped_column(String(16))  # claimed | confirmed | rejected
    note: Mapped[str] = mapped_column(Text, default="")
    claimed_by_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    claimed_at: Mapped[datetime | None] = mapped_column()
    confirmed_by_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    confirmed_at: Mapped[datetime | None] = mapped_column()


class ReminderLedger(Base):
    """One row per (person, period, kind) of reminder. Written before the message is sent,
    so a crash can lose a reminder but never send it twice (at most once)."""

    __tablename__ = "reminder_ledger"
    __table_args__ = (UniqueConstraint("person_id", "period", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(7))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # sending | sent | blocked | failed
    channel: Mapped[str] = mapped_column(String(16), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


# --- Zalo and linked channels (migration: zalo) ------------------------------------------------


class ZaloToken(Base):
    """The Zalo OA access token and its single-use refresh token, rotated together."""

    __tablename__ = "zalo_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    access_token: Mapped[str] = mapped_column(Text)
    refresh_token: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class LinkCode(Base):
    """A short code from /lienket that links a second messenger to the same person."""

    __tablename__ = "link_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()


# --- link code attempts (migration 0005) -------------------------------------------------------


class LinkAttempt(Base):
    """A wrong /lienket code typed by a chat: counted per chat and city-wide to stop guessing."""

    __tablename__ = "link_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


# --- plans by year (migration 0008) ------------------------------------------------------------


class YearPlan(Base):
    """A year's plan: its number and date, the annual report's deadlines, and its targets
    (Kế hoạch 68/KH-UBND of 17/3/2021 is 2021's; Sở Công Thương imports the others)."""

    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column(Integer, unique=True)
    number: Mapped[str] = mapped_column(String(64))  # as printed: 68/KH-UBND
    signed: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD
    # the annual report is due before these days (YYYY-MM-DD): the reporters', Sở Công Thương's
    annual_due_reporters: Mapped[str] = mapped_column(String(10))
    annual_due_office: Mapped[str] = mapped_column(String(10))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    targets: Mapped[list[PlanTarget]] = relationship(
        back_populates="plan", order_by="PlanTarget.seq", cascade="all, delete-orphan"
    )


class PlanTarget(Base):
    """A target of a year's plan: the year's (period YYYY) or a quarter's (YYYY-Qn)."""

    __tablename__ = "plan_targets"
    __table_args__ = (UniqueConstraint("plan_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(Text)
    value_min: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    value_max: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    unit: Mapped[str] = mapped_column(String(16))  # cluster | percent
    period: Mapped[str] = mapped_column(String(16))
    source_line: Mapped[int | None] = mapped_column(Integer)

    plan: Mapped[YearPlan] = relationship(back_populates="targets")


# --- review of reports (migration 0009) -------------------------------------------------------


class ReportReview(Base):
    """A reviewer's decision on a report: accepted, or needs changes with a comment and the
    answers concerned (question ids). Each decision is a row; the report keeps the latest as
    its `review_state`."""

    __tablename__ = "report_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    state: Mapped[str] = mapped_column(String(16))  # accepted | needs_changes
    comment: Mapped[str] = mapped_column(Text, default="")
    questions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))  # None: the CLI
    actor: Mapped[str] = mapped_column(String(64), default="")
    channel: Mapped[str] = mapped_column(String(16), default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)
