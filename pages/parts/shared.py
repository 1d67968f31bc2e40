"""Helpers shared by the pages: cached store and library manager, image display."""

from __future__ import annotations

import io

import streamlit as st
from PIL import Image

from core import config
from core.errors import MosaicError
from core.libraries import LibraryInfo, LibraryManager
from core.store import Store
from core.templates import TemplateLibrary
from core.words import plural


@st.cache_resource(show_spinner=False)
def _store(url: str, images_dir: str) -> Store:
    from pathlib import Path

    return Store(url=url, images_dir=Path(images_dir))


def get_base_store() -> Store:
    """The store of the current data folder and database (cached), before choosing a workspace."""
    return _store(config.database_url(), str(config.images_dir()))


def get_store() -> Store:
    """The gallery of the signed-in person's current workspace: every query is scoped to it."""
    from pages.parts.auth import current_workspace

    return get_base_store().in_workspace(current_workspace())


def get_libraries() -> LibraryManager:
    """The libraries of the current workspace, and the built-in ones."""
    from pages.parts.auth import current_workspace

    return LibraryManager(workspace=current_workspace())


def get_templates() -> TemplateLibrary:
    """The built-in templates and the current workspace's own."""
    from pages.parts.auth import current_workspace

    return TemplateLibrary(workspace=current_workspace())


def with_requested(store: Store, records: list, wanted: str | None) -> bool:
    """Put the saved image ``wanted`` (asked for by a link) first in ``records`` when the list does not hold it
    already. False when it no longer exists (the page says so in its own words)."""
    if not wanted or any(r.id == wanted for r in records):
        return True
    try:
        records.insert(0, store.get(wanted))
    except MosaicError:
        return False
    return True


def library_label(info: LibraryInfo) -> str:
    """How a library is named in the Generate and Campaigns pickers: "Faces and backgrounds (200 pictures)";
    a built-in library not made yet has no count."""
    return f"{info.title} ({plural(info.count, 'picture')})" if info.built else info.title


def enlarge(image: Image.Image, side: int = 256) -> Image.Image:
    """Small generated images shown crisp (nearest-neighbour) instead of blurred by the browser."""
    factor = max(1, side // max(image.width, image.height))
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def open_mosaic(record_id: str) -> None:
    """Go to the Mosaic view of a saved image."""
    st.session_state["mosaic_id"] = record_id
    st.switch_page("pages/mosaic.py", query_params={"id": record_id})


def open_analysis(record_id: str) -> None:
    """Go to the originality check of a saved image."""
    st.session_state["analyze_id"] = record_id
    st.switch_page("pages/analyze.py", query_params={"id": record_id})


ROUTED = "_mosaic_routed"
PENDING = "_mosaic_pending_page"


def ensure_routed(page_file: str) -> None:
    """Send a page opened without ``app.py`` (a deep link on a freshly started server) through it.

    Streamlit runs ``pages/*.py`` directly until some session has called ``st.navigation``; the
    page would then miss the studio's layout and menu. ``app.py`` finishes the trip.
    """
    if st.session_state.get(ROUTED):
        return
    from pathlib import Path

    st.session_state[PENDING] = (f"pages/{Path(page_file).name}", st.query_params.to_dict())
    st.switch_page("app.py")
