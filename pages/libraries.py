"""Libraries: the built-in picture sets and your own uploads."""

import re

import streamlit as st

from core.errors import MosaicError
from core.html import md
from core.jobs import ACTIVE
from core.libraries.jobs import import_params, keep_uploads
from core.roots import check_folder
from pages._shared import ensure_routed, get_libraries
from pages.parts.auth import current_access, explain_denied
from pages.parts.jobs import get_queue, latest, show_outcome, submit, watch

ensure_routed(__file__)

st.title("Libraries")
st.caption(
    "A library is the set of pictures new images are assembled from. Use a built-in set or upload your own: "
    "single images, a .zip, or a folder. Sub-folder names become classes (e.g. `shoes/`, `bags/`)."
)
libraries = get_libraries()
access = current_access()


def import_into(name: str, uploads, folder: str, title: str = "") -> None:
    """Submit an import job: the uploads are kept first, a worker adds them (all or nothing)."""
    path = None
    if folder.strip():
        path = check_folder(folder)  # only inside the data folder or the folders the administrator allows
        if not path.is_dir():
            raise MosaicError(f"Folder not found: {path}")
    kept = keep_uploads([(u.name, u.getvalue()) for u in uploads or []])
    params = import_params(name, title, kept, str(path) if path else None)
    job = submit("library-import", params, title=f"Import into {title or name}")
    st.session_state["import_job"] = job.id
    st.session_state["open_library"] = name


def show_import_job() -> None:
    """The progress of this session's import (or this browser's latest one), then its report."""
    job_id = st.session_state.get("import_job")
    if job_id is None:
        found = latest("library-import", states=ACTIVE)
        job_id = found.id if found is not None else None
    if job_id is None:
        return
    try:
        job = get_queue().get(job_id)
    except MosaicError:
        return
    if job.state in ACTIVE:
        watch(job.id, key="import", show_preview=False)
        return
    if job.state != "done":
        show_outcome(job)
        return
    result = job.result
    st.success(f"Added {result.get('added', 0)} picture(s) to **{md(result.get('library', ''))}**.")
    for notice in result.get("notices") or []:
        st.info(md(notice))
    skipped = result.get("skipped") or []
    if skipped:
        with st.expander(f"{len(skipped)} file(s) skipped", expanded=True):
            for name, reason in skipped:
                st.markdown(f"- {md(name)}: {md(reason)}")


def new_library_form() -> None:
    """Name, pictures or a folder: an import job makes the new library."""
    with st.form("new_library", clear_on_submit=False):
        title = st.text_input("Name", placeholder="Spring catalogue 2026")
        uploads = st.file_uploader(
            "Pictures or a .zip",
            type=["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff", "zip"],
            accept_multiple_files=True,
        )
        folder = st.text_input(
            "…or a folder on this computer",
            placeholder="/home/me/brand-assets",
            help="For safety only folders inside the studio's data folder, or folders your administrator "
            "allows (MOSAIC_ALLOWED_FOLDERS), can be read.",
        )
        submitted = st.form_submit_button("Create library", type="primary", key="create_library")
    if submitted:
        slug = re.sub(r"[^a-z0-9_-]+", "-", title.strip().lower()).strip("-")[:60]
        if not slug:
            st.error("Give the library a name first.")
        else:
            try:
                if slug in {i.name for i in libraries.list()}:
                    raise MosaicError("A library with this name already exists: choose another name, or add "
                                      "pictures to it under “Your libraries”.")
                # a failed import under a new name leaves no library behind (one all-or-nothing import)
                import_into(slug, uploads, folder, title=title.strip())
                st.rerun()
            except MosaicError as err:
                st.error(md(err))


show_import_job()

tab_list, tab_new = st.tabs(["Your libraries", "New library"])

with tab_new:
    if access.can("edit"):
        new_library_form()
    else:
        explain_denied(access, "edit")

with tab_list:
    for info in libraries.list():
        title = md(info.title)
        header = f"{title} · {info.count} pictures" if info.built else f"{title} · built at first use"
        with st.expander(header, expanded=st.session_state.get("open_library") == info.name):
            st.markdown(md(info.description or ""))
            st.caption(
                f"{md(info.name)} · {'built-in' if info.kind == 'builtin' else 'your library'} · "
                f"{'colour' if info.channels == 3 else 'greyscale'}"
                + (f" · classes: {md(', '.join(info.label_names))}" if info.label_names else "")
            )
            if info.kind == "builtin":
                st.caption("Built-in libraries are read-only. Create a new library to use your own pictures.")
            if not info.built:
                if st.button("Prepare now", key=f"prep_{info.name}"):
                    with st.spinner("Preparing…"):
                        libraries.ensure(info.name)
                    st.rerun()
                continue
            if info.count:
                shown = min(info.count, 16)
                step = max(1, info.count // shown)
                thumbs = [libraries.thumbnail(info.name, i) for i in range(0, info.count, step)[:shown]]
                st.image(thumbs, width=64)
            if info.kind != "builtin" and access.can("edit"):
                more = st.file_uploader("Add pictures or a .zip", accept_multiple_files=True, key=f"up_{info.name}")
                if st.button("Add", key=f"add_{info.name}", disabled=not more):
                    try:
                        import_into(info.name, more, "", title=info.title)
                        st.rerun()
                    except MosaicError as err:
                        st.error(md(err))
            if info.kind != "builtin" and access.can("delete"):
                confirm = st.checkbox("I want to delete this library", key=f"conf_{info.name}")
                if st.button("Delete library", key=f"del_{info.name}", disabled=not confirm, icon=":material/delete:"):
                    access.require("delete")
                    libraries.delete(info.name)
                    st.rerun()
