"""Generate: pick a library and settings, make images, see them in a grid."""

import random

import streamlit as st

from core.engines.base import Progress
from core.engines.local_score import MAX_COUNT, SIZES, LocalScoreEngine, LocalScoreRequest
from core.errors import MosaicError
from core.score import MACHINE_KINDS, MACHINE_LABELS, PRESETS
from pages._shared import enlarge, get_libraries, get_store, open_mosaic

st.title("Generate")
st.caption("Make new images from a library. Every pixel can be traced back to the library picture it came from.")

libraries = get_libraries()
store = get_store()
infos = {info.name: info for info in libraries.list()}

left, right = st.columns([1, 2], gap="large")
with left:
    st.selectbox(
        "Engine",
        ["local-score"],
        format_func=lambda _: LocalScoreEngine.label,
        help="The local score engine needs no model download and runs on any laptop.",
        key="gen_engine",
    )
    library = st.selectbox(
        "Library",
        list(infos),
        index=list(infos).index("faces") if "faces" in infos else 0,
        format_func=lambda n: f"{infos[n].title} ({infos[n].count} pictures)" if infos[n].built else infos[n].title,
        help="The pictures new images are assembled from. Add your own on the Libraries page.",
        key="gen_library",
    )
    machine = st.selectbox(
        "Machine",
        list(MACHINE_KINDS),
        index=list(MACHINE_KINDS).index("bbels"),
        format_func=lambda k: MACHINE_LABELS[k][0],
        help="How each pixel looks for matching patches. "
        + " ".join(f"**{v[0]}**: {v[1]}" for v in MACHINE_LABELS.values()),
        key="gen_machine",
    )
    preset = st.selectbox(
        "Locality",
        list(PRESETS),
        index=list(PRESETS).index("balanced") if "balanced" in PRESETS else 0,
        format_func=lambda p: p.replace("-", " ").capitalize(),
        help="How large the borrowed patches are. Smaller patches give more original mosaics.",
        key="gen_preset",
    )
    st.caption(PRESETS[preset])
    size = st.select_slider("Image size (pixels)", options=list(SIZES), value=32, key="gen_size")
    count = st.slider("Number of images", 1, MAX_COUNT, 4, key="gen_count")
    if "gen_seed" not in st.session_state:
        st.session_state["gen_seed"] = 0
    seed_col, dice_col = st.columns([3, 1], vertical_alignment="bottom")
    seed = seed_col.number_input(
        "Seed",
        min_value=0,
        max_value=2**31 - 1,
        step=1,
        key="gen_seed",
        help="The same seed and settings always give the same image.",
    )
    if dice_col.button("🎲", help="New random seed"):
        st.session_state["gen_seed"] = random.randint(0, 99999)
        st.rerun()
    label_options = ["Any"]
    info = infos[library]
    if info.label_names:
        label_options += ["Random class"] + list(info.label_names)
    label_choice = st.selectbox(
        "Class",
        label_options,
        key="gen_label",
        help="Restrict the library to one class (from sub-folder names) for each image.",
    )
    label = None if label_choice == "Any" else ("random" if label_choice == "Random class" else label_choice)

    request = LocalScoreRequest(
        seed=int(seed), count=int(count), library=library, machine=machine, size=int(size), preset=preset, label=label
    )
    engine = LocalScoreEngine(libraries)
    plan_error = None
    try:
        with st.spinner("Preparing the library…"):
            plan = engine.plan(request)
        st.caption(f"Estimated time: about {max(1, round(plan['cost'].seconds_estimate))} s on this machine.")
    except MosaicError as err:
        plan_error = str(err)
        st.error(plan_error)
    go = st.button("Generate", type="primary", disabled=plan_error is not None, width="stretch", key="gen_go")

with right:
    if go:
        bar = st.progress(0.0, text="Starting…")
        preview = st.empty()

        def report(progress: Progress) -> None:
            bar.progress(progress.fraction, text=progress.message)
            if progress.preview is not None:
                preview.image(enlarge(progress.preview, 96 * max(1, count)), caption="Forming…")

        try:
            images = engine.generate(request, on_progress=report)
            records = store.save(images)
            st.session_state["last_batch"] = [r.id for r in records]
            bar.progress(1.0, text=f"Done: {len(records)} image(s) saved to the gallery.")
        except MosaicError as err:
            bar.empty()
            st.error(str(err))
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
                st.image(enlarge(store.image(record), 192), caption=f"seed {record.seed}")
                if st.button("Open mosaic", key=f"open_{record_id}", icon=":material/grid_view:"):
                    open_mosaic(record_id)
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
        st.info("Choose your settings and press **Generate**. Results appear here and in the Gallery.")
