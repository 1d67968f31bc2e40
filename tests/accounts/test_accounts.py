"""Accounts: only hashes are stored, wrong passwords are slowed down, sessions end when they should."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from core.accounts import Accounts, SignInError, SignInThrottled
from core.accounts.accounts import MAX_WAIT_S
from core.errors import BadInputError

PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 5, 9, 0, 0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def accounts(clock) -> Accounts:
    return Accounts(clock=clock)


def test_the_users_table_holds_only_argon2_hashes(accounts):
    accounts.add_user("ann", PASSWORD, email="ann@example.com")
    accounts.add_user("bob", "another secret 42")
    accounts.set_password("bob", "a third secret 43")
    with accounts.store.session() as session:
        rows = [dict(r._mapping) for r in session.execute(text("SELECT * FROM users"))]
    assert len(rows) == 2
    for row in rows:
        assert str(row["password_hash"]).startswith("$argon2id$")
        flat = " ".join(str(v) for v in row.values())
        for secret in (PASSWORD, "another secret 42", "a third secret 43"):
            assert secret not in flat
    with accounts.store.session() as session:  # and no other table holds one either
        for table in ("auth_sessions", "login_attempts", "memberships", "workspaces"):
            for row in session.execute(text(f"SELECT * FROM {table}")):
                assert PASSWORD not in " ".join(map(str, row))


def test_sign_in_with_the_right_password_only(accounts):
    accounts.add_user("ann", PASSWORD)
    assert accounts.authenticate("Ann", PASSWORD).name == "ann"  # names are not case-sensitive
    with pytest.raises(SignInError, match="do not match"):
        accounts.authenticate("ann", "wrong password!")
    with pytest.raises(SignInError, match="do not match") as unknown:
        accounts.authenticate("nobody", PASSWORD)
    assert not isinstance(unknown.value, SignInThrottled)


def test_wrong_passwords_are_slowed_down_even_for_the_right_one(accounts, clock):
    accounts.add_user("ann", PASSWORD)
    for _ in range(2):  # two slips are free
        with pytest.raises(SignInError) as slip:
            accounts.authenticate("ann", "wrong")
        assert not isinstance(slip.value, SignInThrottled)
    waits = []
    for _ in range(4):
        with pytest.raises(SignInError) as failed:
            accounts.authenticate("ann", "wrong")
        assert not isinstance(failed.value, SignInThrottled)
        with pytest.raises(SignInThrottled) as locked:
            accounts.authenticate("ann", PASSWORD)  # locked: not even the right password is looked at
        assert "Try again in" in str(locked.value)
        waits.append(locked.value.wait_seconds)
        clock.advance(locked.value.wait_seconds)
    assert waits == [1, 2, 4, 8]
    assert accounts.authenticate("ann", PASSWORD).name == "ann"
    with pytest.raises(SignInError) as fresh:  # the success started the count again
        accounts.authenticate("ann", "wrong")
    assert not isinstance(fresh.value, SignInThrottled)


def test_the_wait_grows_to_five_minutes_and_applies_to_unknown_names(accounts, clock):
    for _ in range(20):
        with pytest.raises(SignInError):
            accounts.authenticate("ghost", "guess")
        try:
            accounts.authenticate("ghost", "guess")
        except SignInThrottled as err:
            wait = err.wait_seconds
            clock.advance(wait)
        except SignInError:
            wait = 0
    assert wait == MAX_WAIT_S


def test_failures_are_forgotten_after_an_hour(accounts, clock):
    accounts.add_user("ann", PASSWORD)
    for _ in range(3):
        with pytest.raises(SignInError):
            accounts.authenticate("ann", "wrong")
    clock.advance(3600 + 60)
    with pytest.raises(SignInError) as err:
        accounts.authenticate("ann", "wrong")
    assert not isinstance(err.value, SignInThrottled)
    assert accounts.authenticate("ann", PASSWORD)


def test_a_disabled_account_cannot_sign_in_and_its_sessions_end(accounts):
    accounts.add_user("root", PASSWORD)  # the first account: the studio administrator
    accounts.add_user("ann", PASSWORD, role="editor")
    token = accounts.start_session(accounts.get_user("ann"))
    assert accounts.session_user(token, 3600).name == "ann"
    accounts.disable_user("ann")
    assert accounts.session_user(token, 3600) is None
    with pytest.raises(SignInError, match="disabled"):
        accounts.authenticate("ann", PASSWORD)
    accounts.enable_user("ann")
    assert accounts.authenticate("ann", PASSWORD)


def test_sessions_end_when_idle_or_when_the_password_changes(accounts, clock):
    accounts.add_user("ann", PASSWORD)
    user = accounts.get_user("ann")
    token = accounts.start_session(user)
    with accounts.store.session() as session:
        stored = [r[0] for r in session.execute(text("SELECT token_hash FROM auth_sessions"))]
    assert stored and token not in stored  # only the hash of the token
    clock.advance(50 * 60)
    assert accounts.session_user(token, 60 * 60).name == "ann"  # used: the idle time starts again
    clock.advance(50 * 60)
    assert accounts.session_user(token, 60 * 60).name == "ann"
    clock.advance(61 * 60)
    assert accounts.session_user(token, 60 * 60) is None  # idle for longer than the timeout
    token = accounts.start_session(user)
    clock.advance(1)
    accounts.set_password("ann", "a new password 1")
    assert accounts.session_user(token, 60 * 60) is None
    assert accounts.session_user("not-a-token", 60 * 60) is None
    token = accounts.start_session(accounts.get_user("ann"))
    accounts.end_session(token)
    assert accounts.session_user(token, 60 * 60) is None


def test_password_rules_and_names(accounts):
    with pytest.raises(BadInputError, match="at least 8"):
        accounts.add_user("ann", "short")
    with pytest.raises(BadInputError, match="sign-in name"):
        accounts.add_user("Ann Smith", PASSWORD)
    accounts.add_user("ann", PASSWORD, email="Ann@Example.com")
    with pytest.raises(BadInputError, match="already"):
        accounts.add_user("ANN", PASSWORD)
    with pytest.raises(BadInputError, match="e-mail"):
        accounts.add_user("ann2", PASSWORD, email="ann@example.com")
    assert accounts.user_for_email("ANN@example.com").name == "ann"
    with pytest.raises(SignInError, match="ask an administrator"):
        accounts.user_for_email("eve@example.com")


def test_the_first_account_administers_the_default_workspace(accounts):
    assert accounts.needs_first_admin()
    admin = accounts.create_first_admin("root", PASSWORD)
    assert admin.is_admin and not accounts.needs_first_admin()
    assert [(w.name, role) for w, role in accounts.workspaces_of(admin)] == [("default", "admin")]
    with pytest.raises(BadInputError, match="already has an administrator"):
        accounts.create_first_admin("eve", PASSWORD)
    with pytest.raises(BadInputError, match="only active administrator"):
        accounts.disable_user("root")


def test_logs_never_contain_a_password(accounts, caplog):
    caplog.set_level(logging.DEBUG)
    accounts.add_user("ann", PASSWORD, role="editor")
    accounts.authenticate("ann", PASSWORD)
    with pytest.raises(SignInError):
        accounts.authenticate("ann", "a wrong secret 99")
    accounts.set_password("ann", "the newest secret 77")
    accounts.authenticate("ann", "the newest secret 77")
    logged = caplog.text
    assert "ann" in logged  # something was logged
    for secret in (PASSWORD, "a wrong secret 99", "the newest secret 77"):
        assert secret not in logged


def test_the_session_idle_timeout_is_read_from_the_environment(monkeypatch):
    from core import config
    from core.errors import MosaicError

    monkeypatch.delenv(config.SESSION_IDLE_ENV, raising=False)
    assert config.session_idle_seconds() == 60 * 60
    monkeypatch.setenv(config.SESSION_IDLE_ENV, "15")
    assert config.session_idle_seconds() == 15 * 60
    for bad in ("0", "soon", "-5", "1e9"):
        monkeypatch.setenv(config.SESSION_IDLE_ENV, bad)
        with pytest.raises(MosaicError, match="MOSAIC_SESSION_IDLE_MINUTES"):
            config.session_idle_seconds()
