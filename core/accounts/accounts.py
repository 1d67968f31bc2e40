"""People, sign-in, sessions and workspaces, in the store's database.

* Passwords are kept only as argon2id hashes (:mod:`core.accounts.passwords`); no password is ever
  logged or put in a message.
* Failed sign-ins are slowed down per typed name (known or not): from the third failure in a row,
  each further attempt must wait 1, 2, 4 … up to 300 seconds (:data:`MAX_WAIT_S`), whatever the
  password; a success starts the count again, and so does an hour without failures.
* A signed-in browser holds a random token; only its SHA-256 is stored. A session ends after
  ``idle_timeout_s`` without use, when the password changes, when the account is disabled, or on
  sign-out.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from core import config
from core.accounts.access import Access, PermissionDenied
from core.accounts.models import (
    ADMIN,
    ROLES,
    LoginAttemptRecord,
    MembershipRecord,
    SessionRecord,
    UserRecord,
    WorkspaceRecord,
)
from core.accounts.passwords import dummy_hash, hash_password, needs_rehash, verify_password
from core.errors import BadInputError
from core.store import Store
from core.store.models import utcnow

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
EMAIL_PATTERN = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}")
#: failures in a row before each further attempt has to wait
FREE_FAILURES = 2
MAX_WAIT_S = 300
#: failures older than this are forgotten
FAILURE_MEMORY = timedelta(hours=1)
#: a session's last use is written at most this often
TOUCH_EVERY = timedelta(minutes=1)
WRONG = "That name and password do not match an account."


class SignInError(BadInputError):
    """Signing in did not work (the message never says whether the name exists)."""


class SignInThrottled(SignInError):
    """Too many failed attempts for this name: wait ``wait_seconds`` before trying again."""

    def __init__(self, wait_seconds: int) -> None:
        self.wait_seconds = wait_seconds
        super().__init__(f"Too many failed attempts. Try again in {wait_seconds} second(s).")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_user_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name.strip().lower()):
        raise BadInputError(
            "A sign-in name is 1 to 64 lower-case letters, digits, '.', '_', '-' or '@', starting with a letter "
            "or digit (for example 'sam' or 'sam.lee')."
        )
    return name.strip().lower()


def _check_email(email: str | None) -> str | None:
    if email is None or not email.strip():
        return None
    email = email.strip().lower()
    if not EMAIL_PATTERN.fullmatch(email):
        raise BadInputError(f"{email!r} is not an e-mail address.")
    return email


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise BadInputError(f"{role!r} is not a role. Roles: {', '.join(ROLES)}.")
    return role


class Accounts:
    """Accounts and workspaces in the database of ``store`` (default: a new Store). ``clock`` is for tests."""

    def __init__(self, store: Store | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store or Store(recover=False)
        self._sessions = self.store._sessions
        self.now = clock or utcnow

    # ------------------------------------------------------------------ people
    def needs_first_admin(self) -> bool:
        """True while the studio has no account at all (the first start asks for the administrator)."""
        with self._sessions() as session:
            return not session.scalar(select(func.count()).select_from(UserRecord))

    def create_first_admin(self, name: str, password: str, email: str | None = None) -> UserRecord:
        """The studio's first account: a studio administrator and admin of the default workspace."""
        if not self.needs_first_admin():
            raise BadInputError("This studio already has an administrator: sign in instead.")
        return self.add_user(name, password, email=email, role=ADMIN, is_admin=True)

    def add_user(
        self,
        name: str,
        password: str | None = None,
        *,
        email: str | None = None,
        role: str | None = None,
        workspace: str | None = None,
        is_admin: bool = False,
    ) -> UserRecord:
        """A new account; with ``role``, a member of ``workspace`` (default: the default workspace).

        The very first account is always a studio administrator and admin of the default workspace.
        ``password`` None: the account signs in only through the identity provider (by ``email``).
        """
        name = check_user_name(name)
        email = _check_email(email)
        if role is not None:
            _check_role(role)
        workspace = workspace or config.DEFAULT_WORKSPACE
        hashed = hash_password(password) if password is not None else None
        first = self.needs_first_admin()
        if role is not None or first:
            self.get_workspace(workspace)
        user = UserRecord(
            id=uuid.uuid4().hex[:16],
            name=name,
            email=email,
            password_hash=hashed,
            is_admin=bool(is_admin or first),
            disabled=False,
        )
        try:
            with self._sessions.begin() as session:
                if session.scalar(select(UserRecord.id).where(UserRecord.name == name)):
                    raise BadInputError(f"There is already an account called {name!r}.")
                if email and session.scalar(select(UserRecord.id).where(func.lower(UserRecord.email) == email)):
                    raise BadInputError(f"Another account already uses the e-mail {email}.")
                session.add(user)
                session.flush()
                if first:
                    session.add(MembershipRecord(workspace=config.DEFAULT_WORKSPACE, user_id=user.id, role=ADMIN))
                    if role is not None and workspace != config.DEFAULT_WORKSPACE:
                        session.add(MembershipRecord(workspace=workspace, user_id=user.id, role=role))
                elif role is not None:
                    session.add(MembershipRecord(workspace=workspace, user_id=user.id, role=role))
        except IntegrityError as err:  # two adds of one name at once
            raise BadInputError(f"There is already an account called {name!r} or with that e-mail.") from err
        logger.info("added account %s%s", name, " (studio administrator)" if user.is_admin else "")
        return self.get_user(name)

    def get_user(self, name: str) -> UserRecord:
        key = str(name or "").strip().lower()
        with self._sessions() as session:
            user = session.scalar(select(UserRecord).where(UserRecord.name == key))
        if user is None:
            raise BadInputError(f"No account called {key!r} (see 'python -m core users list').")
        return user

    def list_users(self) -> list[UserRecord]:
        with self._sessions() as session:
            return list(session.scalars(select(UserRecord).order_by(UserRecord.name)))

    def disable_user(self, name: str) -> UserRecord:
        """The account can no longer sign in; its signed-in browsers are signed out. Nothing it made is lost."""
        user = self.get_user(name)
        if user.is_admin and not user.disabled and self._active_admins() <= 1:
            raise BadInputError("This is the studio's only active administrator: make another one first.")
        self._change_user(user.id, disabled=True)
        self._end_sessions_of(user.id)
        logger.info("disabled account %s", user.name)
        return self.get_user(user.name)

    def enable_user(self, name: str) -> UserRecord:
        user = self.get_user(name)
        self._change_user(user.id, disabled=False)
        logger.info("enabled account %s", user.name)
        return self.get_user(user.name)

    def set_password(self, name: str, password: str) -> UserRecord:
        """A new password (hashed); the account's signed-in browsers must sign in again."""
        user = self.get_user(name)
        hashed = hash_password(password)
        self._change_user(user.id, password_hash=hashed, password_changed_at=self.now())
        self._end_sessions_of(user.id)
        with self._sessions.begin() as session:
            session.execute(delete(LoginAttemptRecord).where(LoginAttemptRecord.name == user.name))
        logger.info("changed the password of account %s", user.name)
        return self.get_user(user.name)

    def _active_admins(self) -> int:
        with self._sessions() as session:
            query = select(func.count()).select_from(UserRecord).where(UserRecord.is_admin, ~UserRecord.disabled)
            return int(session.scalar(query) or 0)

    def _change_user(self, user_id: str, **values: object) -> None:
        with self._sessions.begin() as session:
            user = session.get(UserRecord, user_id)
            for key, value in values.items():
                setattr(user, key, value)

    # ------------------------------------------------------------------ signing in
    def authenticate(self, name: str, password: str) -> UserRecord:
        """The account of ``name`` if ``password`` is its password; :class:`SignInError` otherwise.

        While the name is locked out (too many failures), :class:`SignInThrottled` is raised without
        looking at the password at all.
        """
        key = str(name or "").strip().lower()[:254]
        wait = self._wait_seconds(key)
        if wait:
            raise SignInThrottled(wait)
        with self._sessions() as session:
            user = session.scalar(select(UserRecord).where(UserRecord.name == key)) if key else None
        stored = user.password_hash if user is not None else None
        matched = verify_password(stored or dummy_hash(), password if isinstance(password, str) else "")
        if user is None or not stored or not matched:
            self._failed(key)
            logger.info("failed sign-in for name %r", key[:64])
            raise SignInError(WRONG)
        if user.disabled:
            raise SignInError("This account is disabled; ask an administrator.")
        values: dict[str, object] = {"last_login_at": self.now()}
        if needs_rehash(stored):
            values["password_hash"] = hash_password(password)
        self._change_user(user.id, **values)
        with self._sessions.begin() as session:
            session.execute(delete(LoginAttemptRecord).where(LoginAttemptRecord.name == key))
        logger.info("%s signed in", user.name)
        return self.get_user(user.name)

    def _wait_seconds(self, key: str) -> int:
        with self._sessions() as session:
            attempt = session.get(LoginAttemptRecord, key)
        if attempt is None or attempt.blocked_until is None:
            return 0
        left = (attempt.blocked_until - self.now()).total_seconds()
        return max(0, int(left + 0.999))

    def _failed(self, key: str) -> None:
        now = self.now()
        with self._sessions.begin() as session:
            attempt = session.get(LoginAttemptRecord, key)
            if attempt is None:
                attempt = LoginAttemptRecord(name=key, failures=0)
                session.add(attempt)
            elif attempt.last_failed_at is not None and now - attempt.last_failed_at > FAILURE_MEMORY:
                attempt.failures = 0
            attempt.failures = int(attempt.failures or 0) + 1
            attempt.last_failed_at = now
            if attempt.failures > FREE_FAILURES:
                wait = min(2 ** (attempt.failures - FREE_FAILURES - 1), MAX_WAIT_S)
                attempt.blocked_until = now + timedelta(seconds=wait)

    def user_for_email(self, email: str) -> UserRecord:
        """The account an identity provider's signed-in e-mail belongs to (single sign-on)."""
        key = str(email or "").strip().lower()
        with self._sessions() as session:
            user = session.scalar(select(UserRecord).where(func.lower(UserRecord.email) == key)) if key else None
        if user is None:
            shown = key or "this e-mail"
            raise SignInError(f"No account in this studio uses {shown}; ask an administrator to add you.")
        if user.disabled:
            raise SignInError("This account is disabled; ask an administrator.")
        return user

    # ------------------------------------------------------------------ sessions
    def start_session(self, user: UserRecord) -> str:
        """A new session for ``user``: returns its token (to keep in the browser); only its hash is stored."""
        token = secrets.token_urlsafe(32)
        now = self.now()
        with self._sessions.begin() as session:
            session.add(SessionRecord(token_hash=_token_hash(token), user_id=user.id, created_at=now, last_seen_at=now))
        return token

    def session_user(self, token: str, idle_timeout_s: float) -> UserRecord | None:
        """The account signed in with ``token``, or None when the session is unknown or has ended."""
        if not token:
            return None
        digest = _token_hash(token)
        now = self.now()
        with self._sessions() as session:
            record = session.get(SessionRecord, digest)
            user = session.get(UserRecord, record.user_id) if record is not None else None
        if record is None or user is None:
            return None
        ended = (
            user.disabled
            or now - record.last_seen_at > timedelta(seconds=idle_timeout_s)
            or (user.password_changed_at is not None and record.created_at < user.password_changed_at)
        )
        if ended:
            self.end_session(token)
            return None
        if now - record.last_seen_at >= TOUCH_EVERY:
            with self._sessions.begin() as session:
                stored = session.get(SessionRecord, digest)
                if stored is not None:
                    stored.last_seen_at = now
        return user

    def end_session(self, token: str) -> None:
        with self._sessions.begin() as session:
            session.execute(delete(SessionRecord).where(SessionRecord.token_hash == _token_hash(token)))

    def _end_sessions_of(self, user_id: str) -> None:
        with self._sessions.begin() as session:
            session.execute(delete(SessionRecord).where(SessionRecord.user_id == user_id))

    # ------------------------------------------------------------------ workspaces
    def add_workspace(self, name: str, title: str = "") -> WorkspaceRecord:
        name = config.check_workspace_name(name)
        try:
            with self._sessions.begin() as session:
                if session.get(WorkspaceRecord, name) is not None:
                    raise BadInputError(f"There is already a workspace called {name!r}.")
                session.add(WorkspaceRecord(name=name, title=(title or "").strip()[:120] or name))
        except IntegrityError as err:
            raise BadInputError(f"There is already a workspace called {name!r}.") from err
        logger.info("added workspace %s", name)
        return self.get_workspace(name)

    def list_workspaces(self) -> list[WorkspaceRecord]:
        with self._sessions() as session:
            return list(session.scalars(select(WorkspaceRecord).order_by(WorkspaceRecord.name)))

    def get_workspace(self, name: str) -> WorkspaceRecord:
        with self._sessions() as session:
            workspace = session.get(WorkspaceRecord, str(name or ""))
        if workspace is None:
            raise BadInputError(_no_workspace(name))
        return workspace

    def set_member(self, workspace: str, user_name: str, role: str) -> None:
        """Make ``user_name`` a member of ``workspace`` with ``role`` (or change their role)."""
        _check_role(role)
        self.get_workspace(workspace)
        user = self.get_user(user_name)
        with self._sessions.begin() as session:
            membership = session.get(MembershipRecord, (workspace, user.id))
            if membership is not None and membership.role == ADMIN and role != ADMIN:
                self._keep_an_admin(session, workspace, user.id)
            if membership is None:
                session.add(MembershipRecord(workspace=workspace, user_id=user.id, role=role))
            else:
                membership.role = role
        logger.info("%s is %s of workspace %s", user.name, role, workspace)

    def remove_member(self, workspace: str, user_name: str) -> None:
        self.get_workspace(workspace)
        user = self.get_user(user_name)
        with self._sessions.begin() as session:
            membership = session.get(MembershipRecord, (workspace, user.id))
            if membership is None:
                raise BadInputError(f"{user.name} is not a member of workspace {workspace!r}.")
            if membership.role == ADMIN:
                self._keep_an_admin(session, workspace, user.id)
            session.delete(membership)
        logger.info("%s left workspace %s", user.name, workspace)

    @staticmethod
    def _keep_an_admin(session, workspace: str, leaving: str) -> None:
        others = session.scalar(
            select(func.count())
            .select_from(MembershipRecord)
            .where(
                MembershipRecord.workspace == workspace,
                MembershipRecord.role == ADMIN,
                MembershipRecord.user_id != leaving,
            )
        )
        if not others:
            raise BadInputError(f"Workspace {workspace!r} needs an admin: make someone else admin first.")

    def members(self, workspace: str) -> list[tuple[UserRecord, str]]:
        self.get_workspace(workspace)
        with self._sessions() as session:
            rows = session.execute(
                select(UserRecord, MembershipRecord.role)
                .join(MembershipRecord, MembershipRecord.user_id == UserRecord.id)
                .where(MembershipRecord.workspace == workspace)
                .order_by(UserRecord.name)
            ).all()
        return [(user, role) for user, role in rows]

    def workspaces_of(self, user: UserRecord) -> list[tuple[WorkspaceRecord, str]]:
        """The workspaces ``user`` may open, with their role (a studio administrator: all, as admin)."""
        if user.disabled:
            return []
        with self._sessions() as session:
            if user.is_admin:
                return [(w, ADMIN) for w in session.scalars(select(WorkspaceRecord).order_by(WorkspaceRecord.name))]
            rows = session.execute(
                select(WorkspaceRecord, MembershipRecord.role)
                .join(MembershipRecord, MembershipRecord.workspace == WorkspaceRecord.name)
                .where(MembershipRecord.user_id == user.id)
                .order_by(WorkspaceRecord.name)
            ).all()
        return [(workspace, role) for workspace, role in rows]

    def access(self, user: UserRecord, workspace: str) -> Access:
        """What ``user`` may do in ``workspace``; a workspace they do not belong to reads as missing."""
        for record, role in self.workspaces_of(user):
            if record.name == workspace:
                return Access(user.id, user.name, workspace, role, bool(user.is_admin))
        raise PermissionDenied(_no_workspace(workspace))


def _no_workspace(name: object) -> str:
    return f"No workspace {name!r} (see 'python -m core workspaces list')."
