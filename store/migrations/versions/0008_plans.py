"""plans by year: a plan (number, date, year, the annual report's deadlines) and its targets.
A database that already holds the registry's targets gets them as the 2021 plan, Kế hoạch
68/KH-UBND of 17/3/2021, the plan they were transcribed from.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

# Kế hoạch 68/KH-UBND as the registry transcribes it (store/registry/plans.csv), as of this
# revision: the plan the `targets` rows of an existing database belong to.
PLAN_2021 = {
    "year": 2021,
    "number": "68/KH-UBND",
    "signed": "2021-03-17",
    "annual_due_reporters": "2021-12-20",
    "annual_due_office": "2021-12-25",
}


def upgrade() -> None:
    plans = op.create_table(
        "plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("signed", sa.String(length=10), nullable=False),
        sa.Column("annual_due_reporters", sa.String(length=10), nullable=False),
        sa.Column("annual_due_office", sa.String(length=10), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
        sa.UniqueConstraint("year", name=op.f("uq_plans_year")),
    )
    plan_targets = op.create_table(
        "plan_targets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("value_min", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("value_max", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("source_line", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["plans.id"],
            name=op.f("fk_plan_targets_plan_id_plans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_targets")),
        sa.UniqueConstraint("plan_id", "code", name=op.f("uq_plan_targets_plan_id")),
    )
    _targets_become_the_2021_plan(plans, plan_targets)


def _targets_become_the_2021_plan(plans: sa.Table, plan_targets: sa.Table) -> None:
    connection = op.get_bind()
    targets = sa.table(
        "targets",
        sa.column("id", sa.Integer()),
        sa.column("code", sa.String()),
        sa.column("label", sa.Text()),
        sa.column("value_min", sa.Numeric(10, 2)),
        sa.column("value_max", sa.Numeric(10, 2)),
        sa.column("unit", sa.String()),
        sa.column("period", sa.String()),
        sa.column("source_line", sa.Integer()),
    )
    rows = connection.execute(sa.select(targets).order_by(targets.c.id)).mappings().all()
    year = str(PLAN_2021["year"])
    rows = [r for r in rows if (r["period"] or year).startswith(year)]
    if not rows:
        return  # an empty database: the registry's loader adds the plan
    connection.execute(plans.insert().values(**PLAN_2021, updated_at=sa.func.current_timestamp()))
    plan_id = connection.execute(
        sa.select(plans.c.id).where(plans.c.year == PLAN_2021["year"])
    ).scalar_one()
    connection.execute(
        plan_targets.insert(),
        [
            {
                "plan_id": plan_id,
                "seq": seq,
                "code": r["code"],
                "label": r["label"],
                "value_min": r["value_min"],
                "value_max": r["value_max"],
                "unit": r["unit"],
                "period": r["period"] or year,
                "source_line": r["source_line"],
            }
            for seq, r in enumerate(rows, start=1)
        ],
    )


def downgrade() -> None:
    op.drop_table("plan_targets")
    op.drop_table("plans")
