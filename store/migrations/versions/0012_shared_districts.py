"""districts that share a cluster: the plan prints one row for a cluster of two districts
("Quận Nam Từ Liêm - Bắc Từ Liêm"); each district's officer sees it and reports on it

A cluster keeps the district the plan files it under (`clusters.district_id`); the districts
its cell names are rows of `cluster_districts`. Filled here for the clusters already stored,
as `clusters import` and the registry's loader fill it from then on.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26
"""

from __future__ import annotations

import re
import unicodedata

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "cluster_districts",
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["clusters.id"],
            name=op.f("fk_cluster_districts_cluster_id_clusters"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["districts.id"],
            name=op.f("fk_cluster_districts_district_id_districts"),
        ),
        sa.PrimaryKeyConstraint("cluster_id", "district_id", name=op.f("pk_cluster_districts")),
    )
    _fill(op.get_bind())


def _fill(bind: sa.Connection) -> None:
    """Each stored district whose name names several: its parts (created when missing) share
    its clusters."""
    districts = sa.table(
        "districts", sa.column("id", sa.Integer), sa.column("code"), sa.column("name")
    )
    clusters = sa.table("clusters", sa.column("id", sa.Integer), sa.column("district_id"))
    shared = sa.table("cluster_districts", sa.column("cluster_id"), sa.column("district_id"))
    known = {
        district_short(name): id_
        for id_, name in bind.execute(sa.select(districts.c.id, districts.c.name))
    }
    for id_, name in list(bind.execute(sa.select(districts.c.id, districts.c.name))):
        parts = district_parts(name)
        if len(parts) < 2:
            continue
        members = list(
            bind.execute(sa.select(clusters.c.id).where(clusters.c.district_id == id_)).scalars()
        )
        for part in parts:
            key = district_short(part)
            if key not in known:
                bind.execute(sa.insert(districts).values(code=slug(key), name=part))
                known[key] = bind.execute(
                    sa.select(districts.c.id).where(districts.c.name == part)
                ).scalar_one()
            if members:
                rows = [{"cluster_id": c, "district_id": known[key]} for c in members]
                bind.execute(sa.insert(shared), rows)


# The rules as they were when this revision was written (domain.text, store.orgs): a migration
# runs the same on any later checkout, whatever those modules become.
_DISTRICT_PREFIXES = ("huyen ", "thi xa ", "quan ")


def fold(text: str) -> str:
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.lower().split())


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", fold(text)).strip("-")


def district_short(name: str) -> str:
    folded = fold(name)
    for prefix in _DISTRICT_PREFIXES:
        if folded.startswith(prefix):
            return folded[len(prefix) :]
    return folded


def district_parts(name: str) -> list[str]:
    name = " ".join(name.split())
    parts = [p.strip() for p in name.split(" - ") if p.strip()]
    if len(parts) < 2:
        return [name] if name else []
    folded = fold(parts[0])
    prefix = next((p for p in _DISTRICT_PREFIXES if folded.startswith(p)), None)
    if prefix is None:
        return [name]
    carried = parts[0][: len(prefix)]
    out = [parts[0]]
    for part in parts[1:]:
        out.append(part if fold(part).startswith(_DISTRICT_PREFIXES) else carried + part)
    return out


def downgrade() -> None:
    op.drop_table("cluster_districts")
