"""link attempts: wrong /lienket codes, counted per chat and city-wide

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "link_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_attempts")),
    )
    with op.batch_alter_table("link_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_link_attempts_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_link_attempts_chat_id"), ["chat_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("link_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_link_attempts_chat_id"))
        batch_op.drop_index(batch_op.f("ix_link_attempts_at"))
    op.drop_table("link_attempts")
