"""Creativity Lab: see for yourself that a diffusion model's output is a mosaic of library patches."""

import streamlit as st
from PIL import Image

from core.errors import MosaicError
from core.html import md
from core.jobs import ACTIVE
from core.lab.demo import DEMO_MODEL_DIR
from core.lab.jobs import compare_params, describe_demo_model, load_lab_result, locality_params
from core.score import PRESETS
from pages._lab_comparison import show_comparison
from pages._shared import enlarge, ensure_routed
from pages.parts.auth import current_access, explain_denied
from pages.parts.jobs import get_queue, latest, show_outcome, submit, watch

ensure_routed(__file__)

st.title("Creativity Lab")
st.markdown(
    "Is a new image *really* new? Research by Kamb & Ganguli (ICML 2025) shows that image generators made of "
    "small convolutional filters build every picture from **patches of their training pictures**. Try it here."
)


def _lab_job(key: str, experiment: str):
    """This session's Lab job of one experiment (or this browser's latest one, on a new visit)."""
    job_id = st.session_state.get(key)
    if job_id is None:
        found = latest("lab", experiment=experiment)
        job_id = found.id if found is not None else None
        st.session_state[key] = job_id
    if job_id is None:
        return None
    try:
        return get_queue().get(job_id)
    except MosaicError:
        return None


def _show_lab_job(job, key: str):
    """Progress while it runs; the outcome when it failed; its saved result when done."""
    if job is None:
        return None
    if job.state in ACTIVE:
        watch(job.id, key=key, show_preview=False)
        return None
    if job.state != "done":
        show_outcome(job)
        return None
    return load_lab_result(job)


st.subheader("1 · Locality: small patches make new things, whole-image patches copy")
st.caption("Same noise, same digit class from the handwritten-digits library; only the patch size changes.")
seed = st.number_input("Seed", 0, 99999, 7, key="lab_seed")
can_run = current_access().can("generate")
if not can_run:
    explain_denied(current_access(), "generate")
if st.button("Make one image per patch size", key="lab_locality", disabled=not can_run):
    job = submit("lab", locality_params(int(seed)), title=f"Lab: patch sizes, seed {int(seed)}")
    st.session_state["lab_locality_job"] = job.id
result = _show_lab_job(_lab_job("lab_locality_job", "locality"), "lab_locality")
rows = (result or {}).get("rows", [])
if rows:
    cols = st.columns(len(rows))
    for col, row in zip(cols, rows, strict=True):
        if row.get("image"):
            col.image(
                enlarge(Image.open(row["image"]), 160), caption=f"{row['preset']}: {row['sources']} library pictures"
            )
        col.caption(PRESETS.get(row["preset"], ""))

st.subheader("2 · A trained network next to the patch machine")
try:
    info = describe_demo_model()
except MosaicError as err:
    st.error(md(err))
    st.stop()
st.caption(
    f"A small {md(info['model_kind'].upper())} trained by this studio on the *{md(info['library'])}* library "
    f"({info['size']}×{info['size']} px, {info['step']} training steps). The machine uses no trained weights: "
    "only the library and the patch sizes calibrated on the network."
)
count = st.slider("Images", 1, 8, 4, key="lab_count")
with st.expander("Advanced"):
    reference = st.toggle(
        "Authors' time grid",
        value=False,
        key="lab_reference_grid",
        help="Network and machine take the 19 steps of Kamb & Ganguli's code (from 95 % noise down to 5 %) "
        "instead of 20 even steps; for comparing with the paper's figures.",
    )
if st.button("Compare", type="primary", key="lab_compare", disabled=not can_run):
    params = compare_params(int(seed), int(count), "reference" if reference else "uniform")
    job = submit("lab", params, title=f"Lab: network vs machine, seed {int(seed)}")
    st.session_state["lab_compare_job"] = job.id
result = _show_lab_job(_lab_job("lab_compare_job", "compare"), "lab_compare")
for row in (result or {}).get("rows", []):
    a, b, c = st.columns([1, 1, 2], vertical_alignment="center")
    if row.get("network"):
        a.image(enlarge(Image.open(row["network"]), 128), caption=f"network · class {md(row.get('label') or '?')}")
    if row.get("machine"):
        b.image(enlarge(Image.open(row["machine"]), 128), caption="patch machine (ELS)")
    r = row.get("r")
    c.metric("Similarity (Pearson r)", f"{r:.2f}" if isinstance(r, (int, float)) else "–")

st.subheader("3 · How well does the machine predict the network?")
st.caption(
    "The network and each training-free machine made images from the same noise and class; the table compares "
    "them seed by seed. IS copies whole training images, LS uses patches at their own place, ELS and bbELS use "
    "patches from anywhere. ELS wraps around the border, so it cannot tell the middle of the picture from the "
    "edge; the network, padded with zeros, can, and so can bbELS (boundary-broken ELS)."
)
show_comparison(DEMO_MODEL_DIR)
