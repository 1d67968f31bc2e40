"""Home: what the studio is, in plain words, and the three things a marketer comes for."""

from pathlib import Path

import streamlit as st

from pages.parts.shared import ensure_routed

ensure_routed(__file__)

#: (page, heading, what it does, button label, icon) of the three first steps, in the order people need them
FIRST_STEPS = (
    (
        "pages/generate.py",
        "1. Generate",
        "Make new images from a library of pictures: one of ours, or your own brand assets and product shots.",
        "Make images",
        ":material/auto_awesome:",
    ),
    (
        "pages/analyze.py",
        "2. Check originality",
        "See how original an image is and which library pictures it borrows from, before you publish it.",
        "Check an image",
        ":material/verified:",
    ),
    (
        "pages/campaigns.py",
        "3. Plan a campaign",
        "Make a whole set of images for one campaign, each checked for originality, ready for your client.",
        "Open campaigns",
        ":material/campaign:",
    ),
)

st.title("Mosaic Studio")
st.markdown(
    "#### Make new images — and see exactly what they borrow.\n"
    "Every image the studio makes is a *mosaic* of small pieces of the pictures in a **library**. "
    "The studio shows you **which pictures, and which parts**, so you always know how original an image is."
)

st.subheader("Start in three steps")
for column, (page, heading, text, label, icon) in zip(st.columns(3, border=True), FIRST_STEPS, strict=True):
    with column:
        st.markdown(f"**{heading}**\n\n{text}")
        if st.button(label, key=f"home_{Path(page).stem}", icon=icon, type="primary", width="stretch"):
            st.switch_page(page)

hero = Path(__file__).resolve().parent.parent / "assets" / "home_example.png"
if hero.exists():
    st.subheader("What you will see")
    picture, _ = st.columns([3, 2])  # on a phone the columns stack: the picture takes the screen's width
    picture.image(
        str(hero),
        caption="A new face (left), its source map (middle: one colour per library picture) "
        "and the library pictures it borrowed from (right).",
        width="stretch",
    )

st.markdown("**Also in the studio**")
more = st.columns(4)
more[0].page_link("pages/libraries.py", label="Libraries: your pictures", icon=":material/collections:")
more[1].page_link("pages/mosaic.py", label="Mosaic view: where each pixel comes from", icon=":material/grid_view:")
more[2].page_link("pages/gallery.py", label="Gallery: every image made", icon=":material/photo_library:")
more[3].page_link("pages/lab.py", label="Creativity Lab: how original can it get?", icon=":material/science:")

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
