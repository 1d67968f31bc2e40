"""Home: what the studio is, in plain words, and how to start."""

from pathlib import Path

import streamlit as st

from pages._shared import ensure_routed

ensure_routed(__file__)

st.title("Mosaic Studio")
st.markdown(
    "#### Make new images — and see exactly what they borrow.\n"
    "Mosaic Studio creates images from a **library** of pictures (your brand assets, product shots, or one "
    "of our built-in sets). Every new image is a *mosaic*: each pixel comes from a small patch of a library "
    "picture, recombined into something new. The studio shows you **which pictures, and which parts**, so you "
    "always know how original an image is."
)

hero = Path(__file__).resolve().parent.parent / "assets" / "home_example.png"
if hero.exists():
    st.image(
        str(hero),
        caption="A generated face (left), its source map (middle: one colour per library picture) "
        "and the library pictures it borrowed from (right).",
        width=720,
    )

st.subheader("Start in three steps")
c1, c2, c3 = st.columns(3, border=True)
with c1:
    st.markdown("**1. Pick a library**\n\nUse a built-in set (faces, photos, digits) or upload your own pictures.")
    st.page_link("pages/libraries.py", label="Open libraries", icon=":material/collections:")
with c2:
    st.markdown("**2. Generate**\n\nChoose how many images and how *local* the mosaic should be, then press Generate.")
    st.page_link("pages/generate.py", label="Generate images", icon=":material/auto_awesome:")
with c3:
    st.markdown("**3. See the mosaic**\n\nHover over any pixel to see which library picture it comes from.")
    st.page_link("pages/mosaic.py", label="Open the mosaic view", icon=":material/grid_view:")

with st.expander("How does this work?"):
    st.markdown(
        "Diffusion models, the technology behind today's image generators, turn noise into pictures step by step. "
        "Research by Kamb & Ganguli (ICML 2025) showed that image generators built from small convolutional "
        "filters behave like *patch-mosaic machines*: each pixel of a new image is assembled from patches of the "
        "training pictures, matched locally. Mosaic Studio runs that machine directly on your library — no "
        "trained model, no internet — so you can see every borrowed patch.\n\n"
        "- **Small patches** → new combinations, more original images.\n"
        "- **Large patches** → images closer to library pictures.\n"
        "- **Whole-image patches** → copies of library pictures (useful to see what *copying* looks like)."
    )
