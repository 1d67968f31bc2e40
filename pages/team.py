"""Team: the current workspace's members; for studio administrators also people and workspaces."""

import streamlit as st

from core.html import md
from pages.parts.auth import current_access, explain_denied, get_accounts
from pages.parts.shared import ensure_routed
from pages.parts.team import flash, members_view, people_view, workspaces_view

ensure_routed(__file__)

access = current_access()
accounts = get_accounts()
workspace = accounts.get_workspace(access.workspace)

st.title("Team")
st.caption(
    "Who can use this workspace and what they may do. Viewers look and export; editors also generate and "
    "edit; admins also manage members and delete."
)
flash()
sections = ["members"] + (["people", "workspaces"] if access.is_admin else [])
words = {
    "members": f"Members of {md(workspace.title or workspace.name)}",
    "people": "People",
    "workspaces": "Workspaces",
}
view = st.radio("Section", sections, format_func=words.get, horizontal=True, key="team_view",
                label_visibility="collapsed")
if view == "members":
    if access.can("members"):
        members_view(accounts, access)
    else:
        explain_denied(access, "members")
elif view == "people":
    people_view(accounts, access)
else:
    workspaces_view(accounts)
