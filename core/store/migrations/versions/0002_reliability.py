"""Reliability fixes: 64-bit seeds; campaign items claimed in the database by the run making them.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _seed_is_32_bit(table: str) -> bool:
    columns = {c["name"]: c["type"] for c in sa.inspect(op.get_bind()).get_columns(table)}
    return "seed" in columns and not isinstance(columns["seed"], sa.BigInteger)


def upgrade() -> None:
    with op.batch_alter_table("campaign_items") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(128), nullable=True))
        batch.add_column(sa.Column("claimed_at", sa.DateTime(), nullable=True))
    # SQLite's INTEGER is already 64-bit; PostgreSQL's is 32-bit
    if op.get_bind().dialect.name == "sqlite":
        return
    for table in ("generations", "campaigns"):
        if _seed_is_32_bit(table):
            op.alter_column(table, "seed", type_=sa.BigInteger(), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("campaign_items") as batch:
        batch.drop_column("claimed_at")
        batch.drop_column("claimed_by")
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("campaigns", "seed", type_=sa.Integer(), existing_nullable=False)
        op.alter_column("generations", "seed", type_=sa.Integer(), existing_nullable=False)
