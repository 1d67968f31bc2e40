"""Who is using this browser: a stable id kept in a cookie, so "your jobs" survive reloads and closed tabs.

The id is made here (random hex), never taken from the user: a cookie that is not 32 hex characters is
ignored and replaced. Sign-in, when it comes, replaces this with the signed-in user.
"""

from __future__ import annotations

import re
import uuid

import streamlit as st

COOKIE = "mosaic_owner"
_VALID = re.compile(r"[0-9a-f]{32}")
_KEY = "_mosaic_owner"


def owner_id() -> str:
    """This browser's owner id (``browser:<hex>``)."""
    owner = st.session_state.get(_KEY)
    if owner:
        return owner
    cookie = str(st.context.cookies.get(COOKIE) or "")
    if _VALID.fullmatch(cookie):
        value = cookie
    else:
        value = uuid.uuid4().hex
        # the value is our own hex id: nothing from the user reaches this script
        st.html(
            f"<script>document.cookie = '{COOKIE}={value}; path=/; max-age=31536000; SameSite=Strict';</script>",
            unsafe_allow_javascript=True,
            width=1,
        )
    owner = f"browser:{value}"
    st.session_state[_KEY] = owner
    return owner
