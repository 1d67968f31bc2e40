"""Generate: pick an engine and settings, make images, see them in a grid."""

import streamlit as st

from core.errors import MosaicError
from core.html import md
from core.jobs import ACTIVE, FAILED
from core.jobs.requests import device_for, encode_request
from core.words import plural
from pages.parts.auth import current_access, explain_denied
from pages.parts.generate_local import local_score_form
from pages.parts.jobs import get_queue, latest, show_outcome, submit, watch
from pages.parts.messages import show_problem
from pages.parts.shared import enlarge, ensure_routed, get_libraries, get_store, open_analysis, open_mosaic

ensure_routed(__file__)

#: short enough to fit the box at 1400 px and on a phone; the help says more
ENGINES = {
    "local-score": "From a picture library (offline)",
    "sd": "From a text prompt (Stable Diffusion)",
}
ENGINE_HELP = (
    "**From a picture library**: new images assembled from small pieces of a library's pictures, on this "
    "computer, with a map of where every piece came from. **From a text prompt**: an AI model (Stable "
    "Diffusion) paints what you describe; it needs a model on this computer."
)

st.title("Generate")
st.caption("Make new images. Every image is saved in the Gallery with the settings that made it.")

libraries = get_libraries()
store = get_store()

access = current_access()
left, right = st.columns([1, 2], gap="large")
with left:
    if not access.can("generate"):
        explain_denied(access, "generate")
        st.page_link("pages/gallery.py", label="See the gallery", icon=":material/photo_library:")
        st.stop()
    engine_name = st.selectbox(
        "Engine", list(ENGINES), format_func=ENGINES.get, key="gen_engine", help=ENGINE_HELP
    )
    if engine_name == "sd":
        from pages.parts.generate_sd import reuse_settings_box, sd_form

        reuse_settings_box()
        engine, request = sd_form()
    else:
        engine, request = local_score_form(libraries)
    go = st.button("Generate", type="primary", disabled=request is None, width="stretch", key="gen_go")

with right:
    if go and request is not None:
        # the page only submits: a worker makes the images and saves each one as it is finished, so
        # leaving the page, closing the tab or clicking twice loses nothing and makes one job
        params = dict(encode_request(engine_name, request), title="")
        what = getattr(request, "prompt", "") or engine_name
        if getattr(request, "library", None):
            try:
                what = libraries.get(request.library).title
            except MosaicError:
                what = request.library
        job = submit(
            "generate", params, title=f"{plural(request.count, 'image')}: {str(what)[:60]}",
            device=device_for(engine_name),
        )
        st.session_state["gen_job"] = job.id
    job_id = st.session_state.get("gen_job")
    if job_id is None:  # a new visit: this browser's latest generation, running or finished
        found = latest("generate")
        job_id = found.id if found is not None else None
        st.session_state["gen_job"] = job_id
    job = None
    if job_id is not None:
        try:
            job = get_queue().get(job_id)
        except MosaicError:
            job = None
    if job is not None and job.state in ACTIVE:
        watch(job.id, key="generate")
    elif job is not None and job.state == FAILED:
        # a failed job's technical detail (commands, settings) is kept apart from its message, for whoever
        # sets up the studio
        show_problem(job.error or job.message or "It failed.", detail=(job.result or {}).get("error_detail"))
    elif job is not None:
        show_outcome(job)
    batch = list(job.result.get("records") or []) if job is not None else []
    if job is not None and job.state in ACTIVE and batch:
        st.caption(f"{plural(len(batch), 'image')} finished so far (already in the Gallery):")
    if batch:
        st.subheader("Results")
        cols = st.columns(3)
        for i, record_id in enumerate(batch):
            try:
                record = store.get(record_id)
            except MosaicError:
                continue
            with cols[i % 3]:
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
    elif job is None:
        st.info("Choose your settings and press **Generate**. Your images appear here and in the Gallery.")
