"""Libraries: the built-in picture sets and your own uploads."""

import re

import streamlit as st

from core.errors import MosaicError
from core.html import md
from core.roots import check_folder
from pages._shared import ensure_routed, get_libraries

ensure_routed(__file__)

st.title("Libraries")
st.caption(
    "A library is the set of pictures new images are assembled from. Use a built-in set or upload your own: "
    "single images, a .zip, or a folder. Sub-folder names become classes (e.g. `shoes/`, `bags/`)."
)
libraries = get_libraries()


def show_problems() -> None:
    for problem in st.session_state.pop("import_problems", []):
        st.warning(md(problem))


def show_report(report) -> None:
    st.success(f"Added {report.added} picture(s) to **{md(report.library)}**.")
    for notice in report.notices:
        st.info(md(notice))
    if report.skipped:
        with st.expander(f"{len(report.skipped)} file(s) skipped", expanded=True):
            for name, reason in report.skipped:
                st.markdown(f"- {md(name)}: {md(reason)}")


def import_into(name: str, uploads, folder: str) -> None:
    """Import every source; a source with nothing usable is reported, the others still land."""
    sources: list[tuple[str, object]] = []
    files = []
    for upload in uploads or []:
        if upload.name.lower().endswith(".zip"):
            data = upload.getvalue()
            sources.append((upload.name, lambda data=data: libraries.add_zip(name, data)))
        else:
            files.append((upload.name, upload.getvalue()))
    if files:
        sources.append((f"{len(files)} picture(s)", lambda: libraries.add_files(name, files)))
    if folder.strip():
        path = check_folder(folder)  # only inside the data folder or the folders the administrator allows
        if not path.is_dir():
            raise MosaicError(f"Folder not found: {path}")
        sources.append((str(path), lambda: libraries.add_folder(name, path)))
    if not sources:
        raise MosaicError("Choose some pictures, a .zip or a folder first.")
    reports, problems = [], []
    for label, run in sources:
        try:
            reports.append(run())
        except MosaicError as err:
            problems.append(f"{label}: {err}")
    if not reports:
        raise MosaicError(" ".join(problems))
    st.session_state["import_reports"] = reports
    st.session_state["import_problems"] = problems


tab_list, tab_new = st.tabs(["Your libraries", "New library"])

with tab_new:
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
                libraries.create(slug, title=title.strip())
                try:
                    import_into(slug, uploads, folder)
                except MosaicError:
                    libraries.delete(slug)  # nothing valid: leave no empty library behind
                    raise
                st.session_state["open_library"] = slug
            except MosaicError as err:
                st.error(md(err))
    for report in st.session_state.pop("import_reports", []):
        show_report(report)
    show_problems()

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
            if info.kind != "builtin":
                more = st.file_uploader("Add pictures or a .zip", accept_multiple_files=True, key=f"up_{info.name}")
                if st.button("Add", key=f"add_{info.name}", disabled=not more):
                    try:
                        import_into(info.name, more, "")
                        st.session_state["open_library"] = info.name
                        st.rerun()
                    except MosaicError as err:
                        st.error(md(err))
                confirm = st.checkbox("I want to delete this library", key=f"conf_{info.name}")
                if st.button("Delete library", key=f"del_{info.name}", disabled=not confirm, icon=":material/delete:"):
                    libraries.delete(info.name)
                    st.rerun()
    for report in st.session_state.pop("import_reports", []):
        show_report(report)
    show_problems()
