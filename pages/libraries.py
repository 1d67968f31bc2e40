"""Libraries: the built-in picture sets and your own uploads."""

import re

import streamlit as st

from core.errors import MosaicError
from core.html import md
from core.jobs import ACTIVE, DONE
from core.libraries.builtins import PHOTO_WORDS
from core.libraries.jobs import added_message, import_params, keep_uploads, prepare_params
from core.libraries.sources import is_tar
from core.roots import check_folder
from core.words import plural
from pages.parts.auth import current_access, current_workspace, explain_denied
from pages.parts.jobs import get_queue, latest, show_outcome, submit, watch
from pages.parts.messages import show_problem
from pages.parts.shared import ensure_routed, get_libraries
from pages.parts.stopped_imports import show_stopped_imports

ensure_routed(__file__)

st.title("Libraries")
st.caption(
    "A library is the set of pictures new images are assembled from. Use a built-in set or bring your own: "
    "single pictures, a .zip or .tar archive, a folder of any size, or a dataset (.parquet). Pictures in "
    "sub-folders (for example shoes/ and bags/) are grouped by the folder's name."
)
libraries = get_libraries()
access = current_access()


def import_into(name: str, uploads, folder: str, title: str = "") -> None:
    """Submit an import job: the uploads are kept first, a worker adds them (all or nothing)."""
    path = None
    if folder.strip():
        path = check_folder(folder)  # only inside the data folder or the folders the administrator allows
        if not (path.is_dir() or path.is_file() and (path.suffix.lower() in (".parquet", ".zip") or is_tar(path))):
            raise MosaicError(
                f"Folder not found: {path}. Check the spelling of the folder (or of the .zip, .tar or .parquet "
                "file), or upload the pictures instead."
            )
    kept = keep_uploads([(u.name, u.getvalue()) for u in uploads or []])
    params = import_params(name, title, kept, str(path) if path else None)
    job = submit("library-import", params, title=f"Pictures into {title or name}")
    st.session_state["import_job"] = job.id
    st.session_state["open_library"] = name


def prepare(name: str, title: str) -> None:
    """Submit a job that makes a built-in library's pictures (a few seconds, with moving progress)."""
    job = submit("library-import", prepare_params(name), title=f"Prepare {title}")
    st.session_state["import_job"] = job.id
    st.session_state["open_library"] = name


def preparing(name: str) -> bool:
    """True while a job of this browser prepares built-in library ``name``."""
    return latest("library-import", states=ACTIVE, library=name, prepare=True) is not None


def group_words(library: str, label: str) -> str:
    """A group of pictures as people say it (the built-in photos are named by what they show)."""
    if library == "photos":
        return PHOTO_WORDS.get(label) or label.replace("_", " ")
    return label


def show_skipped(skipped: list, expanded: bool) -> None:
    """The files an import could not use, each with the reason in plain words."""
    if not skipped:
        return
    with st.expander(f"{plural(len(skipped), 'file')} could not be used", expanded=expanded):
        for name, reason in skipped:
            st.markdown(f"- {md(name)}: {md(reason)}")


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
    result = job.result or {}
    if job.state != DONE:
        show_outcome(job)  # says why; the full list of files is one click away
        show_skipped(result.get("skipped") or [], expanded=False)
        return
    if result.get("prepared"):
        st.success(md(job.message or "The library is ready."), icon=":material/check_circle:")
        return
    title = result.get("title") or result.get("library", "")
    st.success(md(added_message(result.get("added", 0), title)), icon=":material/check_circle:")
    for notice in result.get("notices") or []:
        st.info(md(notice))
    show_skipped(result.get("skipped") or [], expanded=True)


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
            help="A folder of pictures (any number), a .zip or .tar archive, or a dataset: a .parquet file or a "
            "downloaded dataset folder (its class names become the groups). An import that stops goes on where it "
            "stopped when you start it again. For safety, only folders inside the studio's data folder, or folders "
            "your administrator allows, can be read.",
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
                show_problem(md(err), detail=err.detail)


def library_details(info) -> None:
    """One library: what it is, a few of its pictures, and (for your own) adding and deleting."""
    st.markdown(md(info.description or ""))
    facts = ["Built-in" if info.kind == "builtin" else "Your library", "colour" if info.channels == 3 else
             "black and white"]
    if info.label_names:
        facts.append(f"groups: {', '.join(group_words(info.name, label) for label in info.label_names)}")
    st.caption(md(" · ".join(facts)), help=f"Short name, for the command line: {info.name}")
    if info.kind == "builtin":
        st.caption("Built-in libraries are read-only. Create a new library to use your own pictures.")
    if not info.built:
        st.caption("Its pictures are made the first time it is used (a few seconds).")
        if preparing(info.name):
            return  # its progress is shown at the top of the page
        if access.can("edit") and st.button("Prepare now", key=f"prep_{info.name}", icon=":material/play_arrow:"):
            try:
                prepare(info.name, info.title)
                st.rerun()
            except MosaicError as err:
                show_problem(md(err), detail=err.detail)
        return
    if info.count:
        shown = min(info.count, 16)
        step = max(1, info.count // shown)
        try:
            thumbs = libraries.thumbnails(info.name, range(0, info.count, step)[:shown])
            st.image(thumbs, width=64)
        except MosaicError as err:
            show_problem(md(err), detail=err.detail, kind="warning")
    if info.kind != "builtin" and access.can("edit"):
        more = st.file_uploader("Add pictures or a .zip", accept_multiple_files=True, key=f"up_{info.name}")
        if st.button("Add pictures", key=f"add_{info.name}", disabled=not more, icon=":material/add_photo_alternate:"):
            try:
                import_into(info.name, more, "", title=info.title)
                st.rerun()
            except MosaicError as err:
                show_problem(md(err), detail=err.detail)
    if info.kind != "builtin" and access.can("delete"):
        confirm = st.checkbox("I want to delete this library", key=f"conf_{info.name}")
        if st.button("Delete library", key=f"del_{info.name}", disabled=not confirm, icon=":material/delete:"):
            try:
                access.require("delete")
                libraries.delete(info.name)
                st.rerun()
            except MosaicError as err:
                show_problem(md(err), detail=err.detail)


def importing(name: str) -> bool:
    """True while an import of this browser into library ``name`` is queued or working."""
    return latest("library-import", states=ACTIVE, library=name) is not None


def go_on(params: dict, title: str) -> None:
    """Submit a stopped import again: it takes over the pictures already read."""
    job = submit("library-import", params, title=f"Pictures into {title}")
    st.session_state["import_job"] = job.id
    st.session_state["open_library"] = params["library"]


show_import_job()
show_stopped_imports(libraries, access.can("edit"), importing, go_on, workspace=current_workspace())

tab_list, tab_new = st.tabs(["Your libraries", "New library"])

with tab_new:
    if access.can("edit"):
        new_library_form()
    else:
        explain_denied(access, "edit")

with tab_list:
    for info in libraries.list():
        title = md(info.title)
        header = f"{title} · {plural(info.count, 'picture')}" if info.built else f"{title} · prepared on first use"
        with st.expander(header, expanded=st.session_state.get("open_library") == info.name):
            library_details(info)
