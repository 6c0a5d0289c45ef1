"""section III duties: what "TỔ CHỨC THỰC HIỆN" gives each department and district committee
beyond the Phụ lục 1 tasks it leads, asked in its monthly task report.

A database that already holds the registry gets the duties as store/registry/duties.csv has
them when migrated, their organisations matched by name or alias as the registry's loader
matches them (a department the plan names and the database lacks is added, as the loader
would); an empty database gets them from the loader with the rest of the registry.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26
"""

from __future__ import annotations

import csv
import unicodedata
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None

DUTIES = Path(__file__).parents[2] / "registry" / "duties.csv"


def fold(text: str) -> str:
    """domain.text.fold as it was when this revision was written."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.lower().split())


def upgrade() -> None:
    duties = op.create_table(
        "duties",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("section", sa.String(length=16), nullable=False),
        sa.Column("who", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("source_line", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duties")),
        sa.UniqueConstraint("code", name=op.f("uq_duties_code")),
    )
    assignments = op.create_table(
        "duty_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("duty_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("group_code", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["duty_id"],
            ["duties.id"],
            name=op.f("fk_duty_assignments_duty_id_duties"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_duty_assignments_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duty_assignments")),
    )
    _load(duties, assignments)


def _load(duties: sa.Table, assignments: sa.Table) -> None:
    connection = op.get_bind()
    tasks = sa.table("tasks", sa.column("id", sa.Integer()))
    if connection.execute(sa.select(sa.func.count()).select_from(tasks)).scalar_one() == 0:
        return  # an empty database: the registry's loader adds the duties
    orgs = sa.table(
        "organisations",
        sa.column("id", sa.Integer()),
        sa.column("name", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("aliases", sa.Text()),
    )
    known: dict[str, int] = {}
    for org_id, name, aliases in connection.execute(
        sa.select(orgs.c.id, orgs.c.name, orgs.c.aliases)
    ).all():
        known[fold(name)] = org_id
        for alias in filter(None, (aliases or "").split("|")):
            known.setdefault(fold(alias), org_id)
    with DUTIES.open(encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if not r["covered_by"]]
    for row in rows:
        duty_id = connection.execute(
            duties.insert()
            .values(
                code=row["code"],
                section=row["section"],
                who=row["who"],
                text=row["text"],
                source_line=int(row["source_line"]) if row["source_line"] else None,
            )
            .returning(duties.c.id)
        ).scalar_one()
        for name in filter(None, row["orgs"].split("|")):
            if fold(name) not in known:
                known[fold(name)] = connection.execute(
                    orgs.insert()
                    .values(name=" ".join(name.split()), kind="department", aliases="")
                    .returning(orgs.c.id)
                ).scalar_one()
            connection.execute(
                assignments.insert().values(duty_id=duty_id, organisation_id=known[fold(name)])
            )
        for group in filter(None, row["groups"].split("|")):
            connection.execute(assignments.insert().values(duty_id=duty_id, group_code=group))


def downgrade() -> None:
    op.drop_table("duty_assignments")
    op.drop_table("duties")
