"""Mosaic Studio — entry point: `streamlit run app.py`. Routes to the pages in pages/."""

import logging

import streamlit as st

from pages.parts.auth import account_panel, remember_browser, require_sign_in
from pages.parts.jobs import ensure_workers, sidebar_panel

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

st.set_page_config(page_title="Mosaic Studio", page_icon="🧩", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/generate.py", title="Generate", icon=":material/auto_awesome:"),
    st.Page("pages/campaigns.py", title="Campaigns", icon=":material/campaign:"),
    st.Page("pages/mosaic.py", title="Mosaic view", icon=":material/grid_view:"),
    st.Page("pages/analyze.py", title="Originality check", icon=":material/verified:"),
    st.Page("pages/gallery.py", title="Gallery", icon=":material/photo_library:"),
    st.Page("pages/libraries.py", title="Libraries", icon=":material/collections:"),
    st.Page("pages/lab.py", title="Creativity Lab", icon=":material/science:"),
]
TEAM = st.Page("pages/team.py", title="Team", icon=":material/group:")

# whoever is not signed in sees only the sign-in form, whichever page a link pointed to
access = require_sign_in([page.url_path for page in [*PAGES, TEAM]])
if access.can("members") or access.is_admin:
    PAGES.append(TEAM)

#: settings (widget keys) kept while the user visits other pages; buttons and uploads cannot be kept
KEPT_SETTINGS = {
    *(f"gen_{k}" for k in ("engine", "library", "machine", "preset", "size", "label", "approximate", "count", "seed")),
    *(f"sd_{k}" for k in ("model", "model_custom", "prompt", "negative", "task", "preset", "scheduler", "size",
                         "steps", "guidance", "width", "height", "strength", "memory")),
    "lab_seed",
    "lab_count",
}

page = st.navigation(PAGES)
st.session_state["_mosaic_routed"] = True
pending = st.session_state.pop("_mosaic_pending_page", None)
if pending:  # a deep link opened before any session had called st.navigation (see pages/parts/shared.py)
    st.switch_page(pending[0], query_params=pending[1])
# keep the settings of forms across pages (Streamlit forgets a widget's value when its page is left)
for key in [k for k in st.session_state if k in KEPT_SETTINGS]:
    st.session_state[key] = st.session_state[key]

ensure_workers()  # the studio's worker processes (started once, restarted if one stopped)
with st.sidebar:
    remember_browser()
    account_panel(access)
    st.caption("Mosaic Studio · every image shows the library patches it is made of.")
    sidebar_panel()
page.run()
