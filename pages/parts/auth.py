"""Sign-in before any page, the signed-in person's workspace and role, and signing out.

``app.py`` calls :func:`require_sign_in` before it routes to a page: whoever is not signed in sees
only the sign-in form (or, on a studio without accounts yet, the form that makes the first admin).

* Local accounts (the default): name and password, checked by :class:`core.accounts.Accounts`
  (argon2 hashes, failed attempts slowed down). A signed-in browser keeps a random session token in
  a cookie (only its hash is stored); it ends after ``MOSAIC_SESSION_IDLE_MINUTES`` without use, when
  the password changes or the account is disabled, or with "Sign out".
* An identity provider: when ``.streamlit/secrets.toml`` has an ``[auth]`` section, Streamlit's own
  OpenID Connect sign-in (``st.login``) is used instead, and the signed-in e-mail is matched to a user.

The current workspace (sidebar switcher) and the role in it make an :class:`~core.accounts.Access`;
:func:`current_access` gives it to the pages, which scope every store to its workspace and show
only what the role allows.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence

import streamlit as st

from core import config
from core.accounts import Access, Accounts, SignInError, SignInThrottled
from core.accounts.models import UserRecord
from core.errors import MosaicError
from core.html import md

logger = logging.getLogger(__name__)

COOKIE = "mosaic_session"
#: the workspace this browser used last (a workspace name, checked against the person's workspaces when read)
WORKSPACE_COOKIE = "mosaic_workspace"
_TOKEN = "_mosaic_session"
_ACCESS = "_mosaic_access"
_WORKSPACE = "_mosaic_workspace"
_SET_COOKIE = "_mosaic_set_cookie"
_WORKSPACE_WRITTEN = "_mosaic_workspace_written"
#: a token is what ``secrets.token_urlsafe(32)`` makes; any other cookie value is ignored
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
#: a failed sign-in waits this long before answering (on top of the growing lock-out of core.accounts)
FAILED_DELAY_S = 1.0


def get_accounts() -> Accounts:
    from pages.parts.shared import get_base_store

    return Accounts(get_base_store())


# ------------------------------------------------------------------------------------- the gate
def require_sign_in(paths: Sequence[str] = ()) -> Access:
    """The signed-in person's access to the current workspace; otherwise the sign-in page, and stop.

    ``paths`` are the URL paths of the studio's pages: a link to one of them opened before signing in
    shows the sign-in form too, and after signing in the page it pointed to.
    """
    user = _oidc_user() if oidc_configured() else _session_user()
    if user is None:
        _only(_sign_in_page, "Sign in", paths)
    access = _workspace_access(user)
    st.session_state[_ACCESS] = access
    return access


def _only(page, title: str, paths: Sequence[str] = ()) -> None:
    """Show ``page`` as the studio's only page (no menu, no other page reachable), then stop.

    It answers on ``paths`` too, so that a link to a page shows it instead of "page not found".
    """
    pages = [st.Page(page, title=title, url_path="welcome", default=True)]
    pages += [st.Page(page, title=title, url_path=path) for path in paths if path and path != "welcome"]
    st.navigation(pages, position="hidden").run()
    st.stop()


def current_access() -> Access:
    """The access ``app.py`` checked for this run (pages never run without it)."""
    access = st.session_state.get(_ACCESS)
    if access is None:  # a page run outside app.py: ensure_routed() sends it through the gate
        st.stop()
    return access


def current_workspace() -> str:
    return current_access().workspace


def owner_id() -> str:
    """Who submits jobs from this browser: the signed-in user."""
    return f"user:{current_access().user_name}"


# ------------------------------------------------------------------------------------- local accounts
def _session_user() -> UserRecord | None:
    token = st.session_state.get(_TOKEN)
    if not token:
        cookie = str(st.context.cookies.get(COOKIE) or "")
        token = cookie if _TOKEN_SHAPE.fullmatch(cookie) else None
    if not token:
        return None
    user = get_accounts().session_user(token, config.session_idle_seconds())
    if user is None:
        st.session_state.pop(_TOKEN, None)
        st.session_state.pop(_ACCESS, None)
        return None
    st.session_state[_TOKEN] = token
    return user


def _sign_in_page() -> None:
    accounts = get_accounts()
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        st.title("Mosaic Studio")
        if oidc_configured():
            _oidc_sign_in()
        elif accounts.needs_first_admin():
            _first_admin_form(accounts)
        else:
            _sign_in_form(accounts)


def _sign_in_form(accounts: Accounts) -> None:
    st.markdown("Sign in to see your team's images, libraries and campaigns.")
    with st.form("sign_in", border=True):
        name = st.text_input("Name", key="signin_name", autocomplete="username")
        password = st.text_input("Password", type="password", key="signin_password", autocomplete="current-password")
        go = st.form_submit_button("Sign in", type="primary", width="stretch")
    if not go:
        return
    try:
        user = accounts.authenticate(name, password)
    except SignInThrottled as err:
        st.error(md(str(err)), icon=":material/timer:")
        return
    except SignInError as err:
        time.sleep(FAILED_DELAY_S)  # every wrong guess costs time
        st.error(md(str(err)), icon=":material/lock:")
        return
    _start(accounts, user)


def _first_admin_form(accounts: Accounts) -> None:
    st.markdown(
        "Welcome! This studio has no accounts yet. **Create the administrator account**: it can add the "
        "rest of your team and owns the studio's first workspace."
    )
    with st.form("first_admin", border=True):
        name = st.text_input("Name", key="admin_name", autocomplete="username", placeholder="e.g. alex")
        email = st.text_input("E-mail (optional)", key="admin_email")
        password = st.text_input("Password (at least 8 characters)", type="password", key="admin_password",
                                 autocomplete="new-password")
        again = st.text_input("Password again", type="password", key="admin_password2", autocomplete="new-password")
        go = st.form_submit_button("Create the account and sign in", type="primary", width="stretch")
    if not go:
        return
    if password != again:
        st.error("The two passwords differ. Type the same password twice.")
        return
    try:
        user = accounts.create_first_admin(name, password, email=email.strip() or None)
    except MosaicError as err:
        st.error(md(str(err)))
        return
    _start(accounts, user)


def _start(accounts: Accounts, user: UserRecord) -> None:
    token = accounts.start_session(user)
    for key in ("signin_password", "admin_password", "admin_password2"):
        st.session_state.pop(key, None)
    st.session_state[_TOKEN] = token
    st.session_state[_SET_COOKIE] = token
    st.rerun()


def remember_browser() -> None:
    """Right after signing in: keep the session token in a cookie, so a reload stays signed in."""
    token = st.session_state.pop(_SET_COOKIE, None)
    if token and _TOKEN_SHAPE.fullmatch(token):  # our own random token: nothing from the user reaches the script
        secure = "; Secure" if st.context.url.startswith("https:") else ""
        st.html(
            f"<script>document.cookie = '{COOKIE}={token}; path=/; SameSite=Strict{secure}';</script>",
            unsafe_allow_javascript=True,
            width=1,
        )


def sign_out() -> None:
    token = st.session_state.get(_TOKEN)
    if token:
        get_accounts().end_session(token)
    for key in (_TOKEN, _ACCESS, _WORKSPACE, _SET_COOKIE):
        st.session_state.pop(key, None)
    if oidc_configured():
        st.logout()
    st.html(
        f"<script>document.cookie = '{COOKIE}=; path=/; max-age=0; SameSite=Strict';</script>",
        unsafe_allow_javascript=True,
        width=1,
    )
    st.rerun()


# ------------------------------------------------------------------------------------- identity provider
def oidc_configured() -> bool:
    """True when the deployment set up single sign-on (an ``[auth]`` section in ``.streamlit/secrets.toml``)."""
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file at all: local accounts
        return False


def _provider() -> str | None:
    """The ``[auth.<name>]`` provider to use, when the secrets name one (else the ``[auth]`` section's own)."""
    try:
        section = st.secrets["auth"]
    except Exception:  # noqa: BLE001
        return None
    names = [key for key in section if hasattr(section[key], "keys")]
    return names[0] if names else None


def _oidc_sign_in() -> None:
    st.markdown("Sign in with your company account to see your team's images, libraries and campaigns.")
    if st.button("Sign in", type="primary", width="stretch", key="oidc_sign_in"):
        provider = _provider()
        if provider:
            st.login(provider)
        else:
            st.login()


def _oidc_user() -> UserRecord | None:
    if not st.user.is_logged_in:
        return None
    email = str(st.user.get("email") or "")
    try:
        return get_accounts().user_for_email(email)
    except SignInError as err:
        problem = str(err)

    def refused() -> None:
        _, middle, _ = st.columns([1, 2, 1])
        with middle:
            st.title("Mosaic Studio")
            st.error(md(problem), icon=":material/lock:")
            if st.button("Sign out", key="oidc_sign_out"):
                st.logout()

    _only(refused, "Sign in")
    return None


# ------------------------------------------------------------------------------------- workspaces
def _workspace_access(user: UserRecord) -> Access:
    accounts = get_accounts()
    choices = accounts.workspaces_of(user)
    if not choices:

        def no_workspace() -> None:
            st.title("Mosaic Studio")
            st.info(
                md(f"Signed in as {user.name}, but you are not a member of any workspace yet. "
                   "Ask an administrator to add you to one."),
                icon=":material/group_off:",
            )
            if st.button("Sign out", key="nows_sign_out"):
                sign_out()

        _only(no_workspace, "Mosaic Studio")
    names = [workspace.name for workspace, _role in choices]
    titles = {workspace.name: workspace.title or workspace.name for workspace, _role in choices}
    remembered = str(st.context.cookies.get(WORKSPACE_COOKIE) or "")
    current = st.session_state.get(_WORKSPACE)
    if current not in names:  # a new visit: the workspace this browser used last, else the default one
        current = remembered if remembered in names else None
    if current not in names:
        current = config.DEFAULT_WORKSPACE if config.DEFAULT_WORKSPACE in names else names[0]
    with st.sidebar:
        if len(names) > 1:
            current = st.selectbox(
                "Workspace",
                names,
                index=names.index(current),
                format_func=lambda name: titles[name],
                key="_mosaic_workspace_choice",
                help="Each workspace (e.g. one per client) has its own images, libraries, campaigns and brand kit.",
            )
    previous = st.session_state.get(_WORKSPACE)
    if previous is not None and previous != current:
        _forget_page_state()
    st.session_state[_WORKSPACE] = current
    written = st.session_state.get(_WORKSPACE_WRITTEN, remembered)
    if current != written and config.SLUG_PATTERN.fullmatch(current):  # a checked slug: safe in the script
        st.session_state[_WORKSPACE_WRITTEN] = current
        with st.sidebar:
            st.html(
                f"<script>document.cookie = '{WORKSPACE_COOKIE}={current}; path=/; max-age=31536000; "
                "SameSite=Strict';</script>",
                unsafe_allow_javascript=True,
                width=1,
            )
    return accounts.access(user, current)


#: session keys that outlive a change of workspace (everything else belongs to the workspace left)
_KEEP_ON_SWITCH = {_TOKEN, _WORKSPACE, _WORKSPACE_WRITTEN, "_mosaic_workspace_choice", "_mosaic_routed"}


def _forget_page_state() -> None:
    """A change of workspace: forget what the pages showed of the workspace left (open images, jobs, forms)."""
    for key in [k for k in st.session_state if k not in _KEEP_ON_SWITCH]:
        del st.session_state[key]


def account_panel(access: Access) -> None:
    """Who is signed in, in which workspace and role, and "Sign out" (in the sidebar)."""
    role = {"viewer": "viewer (look and export)", "editor": "editor", "admin": "admin"}.get(access.role, access.role)
    workspace = get_accounts().get_workspace(access.workspace)
    st.caption(f"Signed in as **{md(access.user_name)}** · {md(workspace.title or workspace.name)} · {role}")
    if st.button("Sign out", key="sign_out", icon=":material/logout:"):
        sign_out()


def explain_denied(access: Access, action: str) -> None:
    """A calm note in place of a form the role does not allow."""
    try:
        access.require(action)
    except MosaicError as err:
        st.info(md(str(err)), icon=":material/lock:")
