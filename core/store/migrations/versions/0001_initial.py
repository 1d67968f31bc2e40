"""The schema before migrations: gallery generations and campaigns.

Studios made before migrations existed already have some of these tables (``campaigns`` only once a
campaign was made): each table is created only when it is missing, so this revision also adopts them.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _missing(table: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if _missing("generations"):
        _generations()
    if _missing("campaigns"):
        _campaigns()
    if _missing("campaign_items"):
        _campaign_items()


def _generations() -> None:
    op.create_table(
        "generations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("batch_id", sa.String(32), nullable=False),
        sa.Column("engine", sa.String(64), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("library", sa.String(128), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("image_file", sa.String(256), nullable=False),
        sa.Column("arrays_file", sa.String(256), nullable=True),
    )
    op.create_index("ix_generations_created_at", "generations", ["created_at"])
    op.create_index("ix_generations_batch_id", "generations", ["batch_id"])


def _campaigns() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("template", sa.String(64), nullable=False),
        sa.Column("template_snapshot", sa.JSON(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("engine", sa.String(64), nullable=False),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("notices", sa.JSON(), nullable=False),
        sa.Column("brand_kit", sa.JSON(), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=False),
    )
    op.create_index("ix_campaigns_template", "campaigns", ["template"])
    op.create_index("ix_campaigns_created", "campaigns", ["created"])


def _campaign_items() -> None:
    op.create_table(
        "campaign_items",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("campaign_id", sa.String(32), sa.ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.String(32), nullable=True),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.Column("starred", sa.Boolean(), nullable=False),
        sa.Column("rejected", sa.Boolean(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("originality", sa.Float(), nullable=True),
        sa.Column("copy_risk", sa.Float(), nullable=True),
        sa.Column("copy_risk_label", sa.String(64), nullable=True),
        sa.Column("analysis", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_campaign_items_campaign_id", "campaign_items", ["campaign_id"])
    op.create_index("ix_campaign_items_status", "campaign_items", ["status"])


def downgrade() -> None:
    op.drop_table("campaign_items")
    op.drop_table("campaigns")
    op.drop_table("generations")
