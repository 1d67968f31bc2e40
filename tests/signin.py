"""Signing in for tests: a real account and a real session token (checked by the studio like any other).

The AppTest helpers put the token where the sign-in form would (the session state); the browser
helpers put it in the cookie a signed-in browser keeps. Nothing is bypassed: the studio checks the
token against the database on every run.
"""

from __future__ import annotations

from core.accounts import Accounts
from core.config import DEFAULT_WORKSPACE
from core.errors import BadInputError

PASSWORD = "correct horse battery"
SESSION_KEY = "_mosaic_session"
COOKIE = "mosaic_session"


def session_token(
    name: str = "tester", role: str = "admin", workspace: str = DEFAULT_WORKSPACE, is_admin: bool = False
) -> str:
    """A session token of user ``name`` (made, with ``role`` in ``workspace``, if it does not exist)."""
    accounts = Accounts()
    try:
        user = accounts.get_user(name)
    except BadInputError:  # not made yet
        if workspace != DEFAULT_WORKSPACE and workspace not in {w.name for w in accounts.list_workspaces()}:
            accounts.add_workspace(workspace, title=workspace.title())
        user = accounts.add_user(name, PASSWORD, role=role, workspace=workspace, is_admin=is_admin)
    return accounts.start_session(user)


def signed_in(at, name: str = "tester", role: str = "admin", workspace: str = DEFAULT_WORKSPACE):
    """An AppTest of ``app.py`` signed in as ``name`` (an admin of the default workspace unless told)."""
    at.session_state[SESSION_KEY] = session_token(name, role, workspace)
    return at


def sign_in_browser(page, url: str, name: str = "tester", role: str = "admin",
                    workspace: str = DEFAULT_WORKSPACE) -> None:
    """Give a Chromium page's context the session cookie of ``name``."""
    page.context.add_cookies([{"name": COOKIE, "value": session_token(name, role, workspace), "url": url}])
