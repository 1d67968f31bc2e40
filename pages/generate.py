"""Generate: pick an engine and settings, make images, see them in a grid."""

import streamlit as st

from core.engines.base import GeneratedImage, Progress
from core.errors import MosaicError
from core.html import md
from core.store.store import new_batch_id
from pages._generate_local import local_score_form
from pages._shared import enlarge, ensure_routed, get_libraries, get_store, open_analysis, open_mosaic

ensure_routed(__file__)

ENGINES = {
    "local-score": "Local score — offline, from a library (no model needed)",
    "sd": "Stable Diffusion — from a text prompt (needs a model)",
}

st.title("Generate")
st.caption("Make new images. Every image is saved in the Gallery with the settings that made it.")

libraries = get_libraries()
store = get_store()

left, right = st.columns([1, 2], gap="large")
with left:
    engine_name = st.selectbox("Engine", list(ENGINES), format_func=ENGINES.get, key="gen_engine")
    if engine_name == "sd":
        from pages._generate_sd import reuse_settings_box, sd_form

        reuse_settings_box()
        engine, request, problem = sd_form()
    else:
        engine, request, problem = local_score_form(libraries)
    if problem:
        st.error(md(problem))
    go = st.button("Generate", type="primary", disabled=request is None, width="stretch", key="gen_go")

with right:
    if go and request is not None:
        bar = st.progress(0.0, text="Starting…")
        preview = st.empty()

        def report(progress: Progress) -> None:
            bar.progress(progress.fraction, text=md(progress.message) if progress.message else "Working…")
            if progress.preview is not None:
                preview.image(enlarge(progress.preview, 256), caption="Forming…")

        batch_id = new_batch_id()
        saved: list[str] = []
        st.session_state["last_batch"] = saved

        def keep(image: GeneratedImage) -> None:
            """Save each image as soon as it is finished: closing the page later keeps the finished ones."""
            saved.append(store.save_one(image, batch_id=batch_id).id)

        try:
            engine.generate(request, on_progress=report, on_image=keep)
            bar.progress(1.0, text=f"Done: {len(saved)} image(s) saved to the gallery.")
        except MosaicError as err:
            bar.empty()
            st.error(md(err))
            if saved:
                st.info(f"{len(saved)} image(s) finished before the problem and were saved to the gallery.")
        preview.empty()

    batch = st.session_state.get("last_batch", [])
    if batch:
        st.subheader("Results")
        cols = st.columns(4)
        for i, record_id in enumerate(batch):
            try:
                record = store.get(record_id)
            except MosaicError:
                continue
            with cols[i % 4]:
                try:
                    st.image(enlarge(store.image(record), 192), caption=f"seed {record.seed}")
                except MosaicError as err:
                    st.warning(md(err))
                    continue
                for notice in record.params.get("notices") or []:
                    st.warning(md(notice))
                if record.engine == "local-score" and st.button(
                    "Open mosaic", key=f"open_{record_id}", icon=":material/grid_view:"
                ):
                    open_mosaic(record_id)
                if st.button("Check originality", key=f"orig_{record_id}", icon=":material/verified:"):
                    open_analysis(record_id)
                st.download_button(
                    "PNG",
                    store.image_bytes(record),
                    file_name=f"mosaic_{record.seed}.png",
                    mime="image/png",
                    key=f"dl_{record_id}",
                    icon=":material/download:",
                    on_click="ignore",
                )
    elif not go:
        st.info("Choose your settings and press **Generate**. Your images appear here and in the Gallery.")
