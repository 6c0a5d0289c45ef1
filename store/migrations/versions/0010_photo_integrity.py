"""photo integrity: perceptual hash, capture time and place of each photo; a cluster's location

Each photo gets its perceptual hash (`photos.phash`) and the bands of it that find a photo a
few bits away by index (`photo_hash_bands`); what was noticed about a photo sent for a report
(used before, taken long before the period, far from the cluster) is kept in `photo_checks`;
a cluster gets a location. Photos stored before this revision have no hash until they are sent
again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("latitude", sa.Numeric(precision=9, scale=6), nullable=True))
        batch_op.add_column(sa.Column("longitude", sa.Numeric(precision=9, scale=6), nullable=True))
    with op.batch_alter_table("photos", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phash", sa.String(length=16), nullable=True))
    with op.batch_alter_table("report_photos", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_photos_photo_id"), ["photo_id"], unique=False)
    op.create_table(
        "photo_hash_bands",
        sa.Column("key", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["photo_id"],
            ["photos.id"],
            name=op.f("fk_photo_hash_bands_photo_id_photos"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key", "photo_id", name=op.f("pk_photo_hash_bands")),
    )
    op.create_table(
        "photo_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["photo_id"],
            ["photos.id"],
            name=op.f("fk_photo_checks_photo_id_photos"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photo_checks")),
        sa.UniqueConstraint("photo_id", "subject", "period", name=op.f("uq_photo_checks_photo_id")),
    )


def downgrade() -> None:
    op.drop_table("photo_checks")
    op.drop_table("photo_hash_bands")
    with op.batch_alter_table("report_photos", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_photos_photo_id"))
    with op.batch_alter_table("photos", schema=None) as batch_op:
        batch_op.drop_column("phash")
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        batch_op.drop_column("longitude")
        batch_op.drop_column("latitude")
