"""The Team page's parts: a workspace's members, and (for studio administrators) people and workspaces."""

from __future__ import annotations

import streamlit as st

from core.accounts import ROLES, Access, Accounts
from core.errors import MosaicError
from core.html import md
from pages.parts.messages import show_problem

ROLE_WORDS = {
    "viewer": "Viewer — looks and exports",
    "editor": "Editor — also generates and edits",
    "admin": "Admin — also manages members and deletes",
}


def _done(message: str) -> None:
    st.session_state["team_flash"] = message
    st.rerun()


def flash() -> None:
    message = st.session_state.pop("team_flash", None)
    if message:
        st.success(md(message), icon=":material/check_circle:")


def members_view(accounts: Accounts, access: Access) -> None:
    """Who belongs to the current workspace, with their roles; add, change and remove members."""
    access.require("members")
    members = accounts.members(access.workspace)
    st.dataframe(
        [
            {
                "Name": user.name,
                "E-mail": user.email or "",
                "Role": role.capitalize(),
                "Account": "disabled" if user.disabled else "active",
            }
            for user, role in members
        ],
        hide_index=True,
        width="stretch",
    )
    with st.form("team_member", border=True):
        st.markdown("**Add a member or change a role**")
        name = st.text_input("Their sign-in name", key="team_member_name")
        role = st.selectbox("Role", ROLES, format_func=ROLE_WORDS.get, key="team_member_role")
        go = st.form_submit_button("Save", type="primary")
    if go:
        try:
            accounts.set_member(access.workspace, name.strip(), role)
        except MosaicError as err:
            show_problem(md(err), detail=err.detail)
        else:
            article = "an" if role[0] in "aeiou" else "a"
            _done(f"{name.strip()} is now {article} {role} of this workspace.")
    names = [user.name for user, _role in members]
    if names:
        with st.form("team_remove", border=True):
            st.markdown("**Remove a member** (their images and campaigns stay in the workspace)")
            who = st.selectbox("Member", names, key="team_remove_name")
            go = st.form_submit_button("Remove from this workspace")
        if go:
            try:
                accounts.remove_member(access.workspace, who)
            except MosaicError as err:
                show_problem(md(err), detail=err.detail)
            else:
                _done(f"{who} was removed from this workspace.")


def people_view(accounts: Accounts, access: Access) -> None:
    """Every account of the studio (studio administrators only): add, disable and reset."""
    users = accounts.list_users()
    st.dataframe(
        [
            {
                "Name": user.name,
                "E-mail": user.email or "",
                "Studio admin": "yes" if user.is_admin else "",
                "Account": "disabled" if user.disabled else "active",
                "Last sign-in": f"{user.last_login_at:%d %b %Y %H:%M}" if user.last_login_at else "never",
            }
            for user in users
        ],
        hide_index=True,
        width="stretch",
    )
    add, manage = st.columns(2, gap="large")
    with add, st.form("team_add_user", border=True):
        st.markdown("**Add a person**")
        name = st.text_input("Sign-in name", key="team_new_name", placeholder="e.g. sam")
        email = st.text_input("E-mail (optional; needed for company sign-in)", key="team_new_email")
        password = st.text_input("First password (they can get a new one from you)", type="password",
                                 key="team_new_password", autocomplete="new-password")
        role = st.selectbox("Role in this workspace", ROLES, format_func=ROLE_WORDS.get, key="team_new_role")
        go = st.form_submit_button("Add", type="primary")
    if go:
        try:
            accounts.add_user(
                name.strip(), password or None, email=email.strip() or None, role=role, workspace=access.workspace
            )
        except MosaicError as err:
            show_problem(md(err), detail=err.detail)
        else:
            st.session_state.pop("team_new_password", None)
            _done(f"{name.strip()} can now sign in.")
    names = [user.name for user in users if user.name != access.user_name]
    with manage:
        if not names:
            st.caption("Add people to manage their accounts here.")
            return
        with st.form("team_manage_user", border=True):
            st.markdown("**Manage an account**")
            who = st.selectbox("Person", names, key="team_manage_name")
            new_password = st.text_input("New password (leave empty to keep it)", type="password",
                                         key="team_manage_password", autocomplete="new-password")
            action = st.radio("Account", ["keep", "disable", "enable"], horizontal=True, key="team_manage_action",
                              format_func={"keep": "Leave as it is", "disable": "Disable", "enable": "Enable"}.get)
            go = st.form_submit_button("Apply")
        if go:
            try:
                if new_password:
                    accounts.set_password(who, new_password)
                if action == "disable":
                    accounts.disable_user(who)
                elif action == "enable":
                    accounts.enable_user(who)
            except MosaicError as err:
                show_problem(md(err), detail=err.detail)
            else:
                st.session_state.pop("team_manage_password", None)
                _done(f"{who}'s account is updated.")


def workspaces_view(accounts: Accounts) -> None:
    """The studio's workspaces (studio administrators only): list and add."""
    st.dataframe(
        [{"Name": w.name, "Title": w.title, "Created": f"{w.created_at:%d %b %Y}"} for w in accounts.list_workspaces()],
        hide_index=True,
        width="stretch",
    )
    with st.form("team_add_workspace", border=True):
        st.markdown("**Add a workspace** (e.g. one per client)")
        title = st.text_input("Title", key="team_ws_title", placeholder="Acme Shoes")
        name = st.text_input("Short name (lower-case letters, digits, - and _)", key="team_ws_name",
                             placeholder="acme-shoes")
        go = st.form_submit_button("Add", type="primary")
    if go:
        try:
            accounts.add_workspace(name.strip(), title=title.strip())
        except MosaicError as err:
            show_problem(md(err), detail=err.detail)
        else:
            _done(f"Workspace {title.strip() or name.strip()} added. You can switch to it in the sidebar.")
