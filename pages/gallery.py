"""Gallery: every saved generation, newest first."""

import streamlit as st

from core.errors import MosaicError
from core.html import md
from pages._shared import enlarge, ensure_routed, get_store, open_analysis, open_mosaic
from pages.parts.auth import current_access

ensure_routed(__file__)

st.title("Gallery")
store = get_store()
can_delete = current_access().can("delete")

PAGE_SIZE = 24
total = store.count()
if total == 0:
    st.info("Nothing here yet: generated images are saved automatically and appear here.")
    st.page_link("pages/generate.py", label="Generate images", icon=":material/auto_awesome:")
    st.stop()

pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
page = st.number_input(f"Page (of {pages})", 1, pages, 1) if pages > 1 else 1
records = store.list(limit=page * PAGE_SIZE)[(page - 1) * PAGE_SIZE :]
st.caption(f"{total} image(s) saved. They stay here after a restart.")

cols = st.columns(4)
for i, record in enumerate(records):
    with cols[i % 4]:
        try:
            st.image(enlarge(store.image(record), 160))
        except MosaicError:
            st.warning(
                f"Image file missing (seed {record.seed}, {record.created_at:%d %b %H:%M}). The entry is kept: "
                "it may be in another data folder."
            )
            if can_delete and st.button("Delete this entry", key=f"xm_{record.id}"):
                store.delete(record.id)
                st.rerun()
            continue
        st.caption(f"{record.created_at:%d %b %H:%M} · {md(record.library or record.engine)} · seed {record.seed}")
        a, v, b, c = st.columns(4)
        if record.engine == "local-score" and a.button(
            "", key=f"m_{record.id}", icon=":material/grid_view:", help="Mosaic view: exact sources"
        ):
            open_mosaic(record.id)
        if v.button("", key=f"o_{record.id}", icon=":material/verified:", help="Check originality"):
            open_analysis(record.id)
        b.download_button(
            "",
            store.image_bytes(record),
            file_name=f"{record.id}.png",
            mime="image/png",
            key=f"d_{record.id}",
            icon=":material/download:",
            help="Download PNG",
            on_click="ignore",
        )
        if can_delete and c.button("", key=f"x_{record.id}", icon=":material/delete:", help="Delete"):
            st.session_state["gallery_confirm_delete"] = record.id
            st.rerun()
        if can_delete and st.session_state.get("gallery_confirm_delete") == record.id:
            st.warning("Delete this image and its mosaic data? This cannot be undone.")
            yes, no = st.columns(2)
            if yes.button("Delete", key=f"xy_{record.id}", type="primary"):
                st.session_state.pop("gallery_confirm_delete", None)
                try:
                    current_access().require("delete")
                    store.delete(record.id)
                except MosaicError as err:
                    st.error(md(err))
                st.rerun()
            if no.button("Keep", key=f"xn_{record.id}"):
                st.session_state.pop("gallery_confirm_delete", None)
                st.rerun()
