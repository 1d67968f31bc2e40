"""SQLAlchemy tables of accounts and workspaces, on the store's ``Base`` (same database as the gallery).

* :class:`WorkspaceRecord` — a workspace (e.g. one per client); everything a team makes belongs to one.
* :class:`UserRecord` — a person who signs in: a local account (argon2 password hash, never the
  password) or an identity-provider account matched by e-mail.
* :class:`MembershipRecord` — a user's role in a workspace: ``viewer``, ``editor`` or ``admin``.
* :class:`SessionRecord` — a signed-in browser: only the SHA-256 of its random token is stored.
* :class:`LoginAttemptRecord` — failed sign-ins per typed name, to slow down password guessing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.config import DEFAULT_WORKSPACE
from core.store.models import Base, utcnow

__all__ = ["DEFAULT_WORKSPACE"]

VIEWER, EDITOR, ADMIN = "viewer", "editor", "admin"
ROLES = (VIEWER, EDITOR, ADMIN)


class WorkspaceRecord(Base):
    __tablename__ = "workspaces"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class UserRecord(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: the sign-in name (lower case)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    #: matched against the identity provider's e-mail when single sign-on is configured
    email: Mapped[str | None] = mapped_column(String(254), unique=True, nullable=True)
    #: argon2id hash (``$argon2id$…``); None for an account that only signs in through the identity provider
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: a studio administrator: adds, disables and resets users, and may manage every workspace
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: set when the password changes: sessions signed in earlier end
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class MembershipRecord(Base):
    __tablename__ = "memberships"

    workspace: Mapped[str] = mapped_column(
        String(64), ForeignKey("workspaces.name", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), default=VIEWER)


class SessionRecord(Base):
    __tablename__ = "auth_sessions"

    #: SHA-256 (hex) of the token kept in the browser's cookie; the token itself is never stored
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class LoginAttemptRecord(Base):
    __tablename__ = "login_attempts"

    #: the name as typed (lower case), known account or not, so guessing names is slowed down too
    name: Mapped[str] = mapped_column(String(254), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
