"""Sign-in and workspaces: accounts, workspaces and memberships; every record belongs to a workspace.

Records made before workspaces existed go to the "default" workspace (made here); the first admin
account, made later, becomes its admin. Nothing is deleted or rewritten but the new column.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCOPED = ("generations", "campaigns", "jobs")


def upgrade() -> None:
    workspaces = op.create_table(
        "workspaces",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("email", sa.String(254), nullable=True, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_login_at", sa.DateTime(), nullable=True),
        sa.Column("password_changed_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "memberships",
        sa.Column("workspace", sa.String(64), sa.ForeignKey("workspaces.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
    )
    op.create_table(
        "auth_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_auth_sessions_user_id", "auth_sessions", ["user_id"])
    op.create_table(
        "login_attempts",
        sa.Column("name", sa.String(254), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(), nullable=True),
        sa.Column("blocked_until", sa.DateTime(), nullable=True),
    )
    from datetime import UTC, datetime

    op.bulk_insert(
        workspaces,
        [{"name": "default", "title": "Default", "created_at": datetime.now(UTC).replace(tzinfo=None)}],
    )
    for table in SCOPED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("workspace", sa.String(64), nullable=False, server_default="default"))
        op.create_index(f"ix_{table}_workspace", table, ["workspace"])


def downgrade() -> None:
    for table in SCOPED:
        op.drop_index(f"ix_{table}_workspace", table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("workspace")
    for table in ("login_attempts", "auth_sessions", "memberships", "users", "workspaces"):
        op.drop_table(table)
