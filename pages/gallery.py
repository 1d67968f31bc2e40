"""Gallery: every saved generation, newest first."""

import streamlit as st
from PIL import Image, ImageOps

from core.errors import MosaicError
from core.html import md
from core.words import plural
from pages.parts.auth import current_access
from pages.parts.messages import show_problem
from pages.parts.shared import enlarge, ensure_routed, get_libraries, get_store, open_analysis, open_mosaic

ensure_routed(__file__)

st.title("Gallery")
store = get_store()
can_delete = current_access().can("delete")

PAGE_SIZE = 24
#: cards per row (each row is its own set of columns, so the cards of a row line up)
COLUMNS = 3
#: every picture is shown in a square of this side (small ones enlarged crisply, others fitted and centred)
SIDE = 192
ENGINE_WORDS = {"local-score": "Mosaic image", "sd": "Stable Diffusion", "trained": "Trained model"}

total = store.count()
if total == 0:
    st.info("Nothing here yet: generated images are saved automatically and appear here.")
    st.page_link("pages/generate.py", label="Generate images", icon=":material/auto_awesome:")
    st.stop()

pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
page = st.number_input(f"Page (of {pages})", 1, pages, 1) if pages > 1 else 1
records = store.list(limit=page * PAGE_SIZE)[(page - 1) * PAGE_SIZE :]
st.caption(f"{plural(total, 'image')} saved. They stay here after a restart.")
titles = {info.name: info.title for info in get_libraries().list()}


def square(image: Image.Image) -> Image.Image:
    """The picture fitted into a SIDE×SIDE square, so every card of a row has the same height."""
    image = enlarge(image, SIDE).convert("RGB")
    return ImageOps.pad(image, (SIDE, SIDE), color=(255, 255, 255))


def describe(record) -> str:
    """What a person recognises the image by: its title, the library it was made from, or its prompt."""
    if record.title:
        return record.title
    if record.library:
        return f"From {titles.get(record.library, record.library)}"
    prompt = str((record.params or {}).get("prompt") or "").strip()
    words = ENGINE_WORDS.get(record.engine, "Image")
    return f"{words}: “{prompt[:80]}{'…' if len(prompt) > 80 else ''}”" if prompt else words


def confirm_delete(record) -> None:
    st.warning("Delete this image and its mosaic data? This cannot be undone.")
    yes, no = st.columns(2)
    if yes.button("Delete", key=f"xy_{record.id}", type="primary", icon=":material/delete:", width="stretch"):
        st.session_state.pop("gallery_confirm_delete", None)
        try:
            current_access().require("delete")
            store.delete(record.id)
        except MosaicError as err:
            show_problem(md(err), detail=err.detail)
            return
        st.rerun()
    if no.button("Keep", key=f"xn_{record.id}", width="stretch"):
        st.session_state.pop("gallery_confirm_delete", None)
        st.rerun()


def card(record) -> None:
    """One saved image: the picture, what to do with it, and what it is."""
    when = f"{record.created_at:%d %b %H:%M}"
    try:
        st.image(square(store.image(record)))
    except MosaicError:
        st.warning(
            f"Image file missing ({when}, seed {record.seed}). The entry is kept: it may be in another data folder."
        )
        if can_delete and st.button("Delete this entry", key=f"xm_{record.id}", icon=":material/delete:"):
            store.delete(record.id)
            st.rerun()
        return
    has_mosaic = record.engine == "local-score"  # only Mosaic images know where every pixel came from
    first = st.columns(2) if has_mosaic else [None, st.container()]
    second = st.columns(2)
    if has_mosaic and first[0].button(
        "Mosaic",
        key=f"m_{record.id}",
        icon=":material/grid_view:",
        help="Open the mosaic view: which library pictures every part of this image comes from",
        width="stretch",
    ):
        open_mosaic(record.id)
    if first[1].button(
        "Originality",
        key=f"o_{record.id}",
        icon=":material/verified:",
        help="Check originality: how close this image is to any library picture",
        width="stretch",
    ):
        open_analysis(record.id)
    second[0].download_button(
        "Download",
        store.image_bytes(record),
        file_name=f"{record.id}.png",
        mime="image/png",
        key=f"d_{record.id}",
        icon=":material/download:",
        help="Download this image as a PNG file",
        on_click="ignore",
        width="stretch",
    )
    if can_delete and second[1].button(
        "Delete", key=f"x_{record.id}", icon=":material/delete:", help="Delete this image", width="stretch"
    ):
        st.session_state["gallery_confirm_delete"] = record.id
        st.rerun()
    st.caption(f"{md(describe(record))}  \n{when} · seed {record.seed}")
    if can_delete and st.session_state.get("gallery_confirm_delete") == record.id:
        confirm_delete(record)


for start in range(0, len(records), COLUMNS):
    row = st.columns(COLUMNS)
    for column, record in zip(row, records[start : start + COLUMNS], strict=False):
        with column, st.container(border=True):
            card(record)
