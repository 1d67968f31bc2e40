"""Creativity Lab: see for yourself that a diffusion model's output is a mosaic of library patches."""

import numpy as np
import streamlit as st

from core.engines.local_score import LocalScoreEngine, LocalScoreRequest
from core.engines.trained import TrainedModelEngine, TrainedModelRequest
from core.errors import MosaicError
from core.html import md
from core.images import from_tensor
from core.lab.demo import DEMO_MODEL_DIR
from core.score import PRESETS
from pages._lab_comparison import show_comparison
from pages._shared import enlarge, ensure_routed, get_libraries

ensure_routed(__file__)

st.title("Creativity Lab")
st.markdown(
    "Is a new image *really* new? Research by Kamb & Ganguli (ICML 2025) shows that image generators made of "
    "small convolutional filters build every picture from **patches of their training pictures**. Try it here."
)


@st.cache_resource(show_spinner=False)
def trained_engine() -> TrainedModelEngine:
    return TrainedModelEngine()


st.subheader("1 · Locality: small patches make new things, whole-image patches copy")
st.caption("Same noise, same digit class from the handwritten-digits library; only the patch size changes.")
seed = st.number_input("Seed", 0, 99999, 7, key="lab_seed")
presets = [p for p in ("fine", "balanced", "coarse", "whole-image") if p in PRESETS]
if st.button("Make one image per patch size", key="lab_locality"):
    engine = LocalScoreEngine(get_libraries())
    row = []
    for preset in presets:
        try:
            with st.spinner(f"{preset}…"):
                (image,) = engine.generate(
                    LocalScoreRequest(
                        seed=int(seed), library="digits", size=16, preset=preset, machine="bbels", label="random"
                    )
                )
        except MosaicError as err:
            st.error(md(err))
            break
        row.append((preset, image.image, len(np.unique(image.arrays["sources"][..., 0]))))
    st.session_state["lab_locality_row"] = row
row = st.session_state.get("lab_locality_row", [])
if row:
    cols = st.columns(len(row))
    for col, (preset, picture, sources) in zip(cols, row, strict=True):
        col.image(enlarge(picture, 160), caption=f"{preset}: {sources} library pictures")
        col.caption(PRESETS[preset])

st.subheader("2 · A trained network next to the patch machine")
engine = trained_engine()
try:
    info = engine.describe()
except MosaicError as err:
    st.error(md(err))
    st.stop()
st.caption(
    f"A small {info['model_kind'].upper()} trained by this studio on the *{info['library']}* library "
    f"({info['size']}×{info['size']} px, {info['step']} training steps). The machine uses no trained weights: "
    "only the library and the patch sizes calibrated on the network."
)
count = st.slider("Images", 1, 8, 4, key="lab_count")
if st.button("Compare", type="primary", key="lab_compare"):
    try:
        with st.spinner("Sampling the network and the machine from the same noise…"):
            images = engine.generate(
                TrainedModelRequest(seed=int(seed), count=int(count), label="random", compare_els=True)
            )
    except MosaicError as err:
        st.error(md(err))
    else:
        st.session_state["lab_results"] = images
for image in st.session_state.get("lab_results", []):
    a, b, c = st.columns([1, 1, 2], vertical_alignment="center")
    a.image(enlarge(image.image, 128), caption=f"network · class {image.params.get('label', '?')}")
    els = image.arrays.get("els_image")
    if els is not None:
        import torch

        b.image(enlarge(from_tensor(torch.from_numpy(els).clamp(-1, 1)), 128), caption="patch machine (ELS)")
    c.metric("Similarity (Pearson r)", f"{image.params.get('els_r', float('nan')):.2f}")

st.subheader("3 · How well does the machine predict the network?")
st.caption(
    "The network and each training-free machine made images from the same noise and class; the table compares "
    "them seed by seed. IS copies whole training images, LS uses patches at their own place, ELS and bbELS use "
    "patches from anywhere. ELS wraps around the border, so it cannot tell the middle of the picture from the "
    "edge; the network, padded with zeros, can, and so can bbELS (boundary-broken ELS)."
)
show_comparison(DEMO_MODEL_DIR)
