"""Mosaic view: which library picture every pixel of a generated image comes from."""

import streamlit as st

from core.analyzer.verdict import mosaic_verdict, pct
from core.errors import MosaicError
from core.html import colour_mark, md
from core.mosaic import (
    boxed_source,
    build_mosaic,
    clearest_step,
    clearest_step_reason,
    fast_draft_caption,
    mosaic_image,
    prediction_image,
    source_map_figure,
    step_readings,
    top_sources,
)
from core.score.kinds import MACHINE_LABELS
from pages.parts.shared import enlarge, ensure_routed, get_libraries, get_store, with_requested
from pages.parts.verdict import show_verdict

ensure_routed(__file__)

st.title("Mosaic view")
store = get_store()
libraries = get_libraries()

records = [r for r in store.list(limit=200) if r.engine == "local-score"]
if not records:
    st.info("No generated images yet. Make some on the Generate page, then come back here.")
    st.page_link("pages/generate.py", label="Generate images", icon=":material/auto_awesome:")
    st.stop()

wanted = st.query_params.get("id") or st.session_state.get("mosaic_id")
if not with_requested(store, records, wanted):
    st.warning("That image no longer exists; showing the latest one instead.")
    wanted = None
ids = [r.id for r in records]
by_id = {r.id: r for r in records}
titles: dict[str, str] = {}


def _library_title(name: str) -> str:
    if name not in titles:
        try:
            titles[name] = libraries.get(name).title or name
        except MosaicError:
            titles[name] = name
    return titles[name]


def _image_label(record_id: str) -> str:
    """A short choice (it must fit a phone's select box): when, and the image's title or its library."""
    record = by_id[record_id]
    name = record.title or _library_title(record.library)
    return f"{record.created_at:%d %b %H:%M} · {name[:22] + '…' if len(name) > 23 else name}"


choice = st.selectbox("Image", ids, index=ids.index(wanted) if wanted in ids else 0, format_func=_image_label)
st.query_params["id"] = choice
record = by_id[choice]
if not store.has_file(record):
    st.warning("The image file of this image is missing from the data folder, so its mosaic cannot be shown.")
    st.stop()
arrays = store.arrays(record)
if "sources" not in arrays:
    st.warning("This image was saved without source information, so its mosaic cannot be shown.")
    st.stop()

try:
    mosaic = build_mosaic(arrays, record.library, libraries)
    library = libraries.load(record.library, mosaic.size)
except MosaicError as err:
    st.error(f"The library of this image is not available: {md(err)}")
    st.stop()
if int(record.params.get("library_count", len(library.item_ids))) != len(library.item_ids):
    st.caption("ℹ️ The library changed since this image was made; removed pictures show as 'removed'.")

lib_np = library.images.numpy()
params = record.params
st.caption(
    f"Made from the library **{md(_library_title(record.library))}** · {record.width}×{record.height} px"
    + (f" · kind of picture: **{md(params['label'])}**" if params.get("label") else "")
    + (f" · {md(fast_draft_caption(params))}" if params.get("approximate") else "")
)
with st.expander("Advanced: how this image was made"):
    machine = str(params.get("machine") or "")
    st.markdown(
        f"Machine **{md(MACHINE_LABELS.get(machine, (machine,))[0])}** ({md(machine)}) · "
        f"locality preset **{md(params.get('preset'))}** · seed **{record.seed}** · "
        f"library **{md(record.library)}** · image id **{md(record.id)}** · "
        f"patch sizes by step: {md(', '.join(str(p) for p in mosaic.patch_sizes))}"
    )

st.subheader("Copy verdict")
show_verdict(
    mosaic_verdict(mosaic, libraries),
    note="The Originality check shows this same verdict for this image; its own library search sees only the "
    "finished picture, so the figures it finds can be lower.",
)

readings = step_readings(mosaic)  # once: the clearest step and its reason read the same figures
best = clearest_step(mosaic, readings)
if st.session_state.get("mosaic_step_of") != choice or not 1 <= st.session_state.get("mosaic_step", 0) <= mosaic.steps:
    st.session_state["mosaic_step_of"] = choice  # each image opens at its own clearest step
    st.session_state["mosaic_step"] = best + 1


def _show_step(value: int) -> None:
    st.session_state["mosaic_step"] = value


st.subheader("How the image formed")
st.markdown(clearest_step_reason(mosaic, best, readings))
step = st.slider(
    "Step (watch the mosaic form from coarse to fine)",
    1,
    mosaic.steps,
    key="mosaic_step",
    help="Early steps use large pieces and high noise; the last step uses the smallest pieces.",
)
b1, b2 = st.columns(2)
b1.button(
    "Show the final step",
    key="mosaic_final",
    on_click=_show_step,
    args=(mosaic.steps,),
    disabled=step == mosaic.steps,
    icon=":material/last_page:",
    width="stretch",
)
if best + 1 < mosaic.steps:
    b2.button(
        f"Show the clearest step ({best + 1})",
        key="mosaic_clearest",
        on_click=_show_step,
        args=(best + 1,),
        disabled=step == best + 1,
        icon=":material/visibility:",
        width="stretch",
    )
index = step - 1
final = step == mosaic.steps
patch = mosaic.patch_sizes[index]

c1, c2, c3 = st.columns([1, 1, 1.4])
with c1:
    st.markdown("**Image**" if final else f"**Prediction at step {step}**")
    st.image(enlarge(store.image(record) if final else prediction_image(mosaic, index), 256))
with c2:
    st.markdown(f"**Rebuilt from library patches** (patch {patch}×{patch})")
    st.image(enlarge(mosaic_image(mosaic, lib_np, None if final else index), 256))
with c3:
    st.markdown("**Source map** — one colour per main library picture (grey: smaller sources); hover a pixel")
    st.plotly_chart(
        source_map_figure(mosaic, None if final else index, height=300),
        key="source_map",
        config={"displayModeBar": False},
    )

shares = top_sources(mosaic, k=6, step=None if final else index)
finished = top_sources(mosaic, k=1)[0]
distinct = len({int(v) for v in (mosaic.sources if final else mosaic.step_sources[index])[..., 0].ravel()})
distinct_final = len({int(v) for v in mosaic.sources[..., 0].ravel()})
st.subheader("Where it comes from")
st.markdown(
    f"The finished image is assembled from **{distinct_final} library pictures**. "
    f"The largest single source supplies **{pct(finished.share)}** of the pixels."
    + (
        ""
        if final
        else f"\n\nAt step {step} the image is assembled from **{distinct} library pictures**; "
        f"the largest supplies **{pct(shares[0].share)}**. Its main sources:"
    )
)
cols = st.columns(3)
for i, share in enumerate(shares):
    with cols[i % 3]:
        if share.index < 0:
            st.markdown(f"**{pct(share.share)}** from a picture since removed from the library")
            continue
        picture = libraries.item_image(record.library, share.index).resize((mosaic.size, mosaic.size))
        st.image(boxed_source(picture, share.locations, patch, share.colour, scale=6))
        st.markdown(
            f"{colour_mark(share.colour)} **{pct(share.share)}** of pixels · {md(share.name)}",
            unsafe_allow_html=True,
        )
