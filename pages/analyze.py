"""Originality check: how much of an image comes from a reference library, and is any of it a copy."""

import logging

import streamlit as st

from core.analyzer import Analyzer
from core.errors import MosaicError
from core.html import md
from pages._analyze_inputs import choose_library, choose_method, choose_subject
from pages._analyze_views import (
    choose_scale,
    show_exact_comparison,
    show_headline,
    show_how_we_score,
    show_near_copy,
    show_notices,
    show_pictures,
    show_sources,
)
from pages._shared import enlarge, ensure_routed, get_libraries, get_store

ensure_routed(__file__)

logger = logging.getLogger(__name__)
KEPT_RESULTS = 6  # results kept in the session (switching back and forth does not re-run a check)

st.title("Originality check")
st.caption(
    "Find out how much of an image comes from the pictures in a reference library, "
    "and whether any part of it is a recognisable copy."
)
store = get_store()
libraries = get_libraries()

pick, preview = st.columns([3, 1], gap="large")
with pick:
    subject = choose_subject(store)
    if subject is None:
        show_how_we_score()
        st.stop()
    for notice in subject.notices:
        st.caption(f":material/info: {md(notice)}")
    library = choose_library(subject, libraries)
    method = choose_method()
with preview:
    st.image(
        enlarge(subject.image, 192) if max(subject.image.size) < 192 else subject.image,
        caption=f"{subject.image.width}×{subject.image.height} px",
        width=192,
    )

if library is None:
    st.stop()
if method.problem:
    st.warning(method.problem)
key = (subject.key, library.name, library.count, *method.key)
results: dict = st.session_state.setdefault("analyze_results", {})
go = st.button(
    "Check originality",
    type="primary",
    icon=":material/verified:",
    key="analyze_go",
    disabled=method.problem is not None,
)

if go:
    bar = st.progress(0.0, text="Starting…")

    def report(fraction: float, message: str) -> None:
        bar.progress(min(1.0, max(0.0, float(fraction))), text=md(message) if message else "Working…")

    try:
        vae = None
        if method.space == "latent":
            from core.engines.sd import StableDiffusionEngine

            bar.progress(0.0, text="Loading the image model (the first time takes a while)…")
            vae = StableDiffusionEngine().vae_for(method.model).vae
        result = Analyzer(libraries, method.settings).analyze(
            subject.image, library.name, method.space, vae, on_progress=report
        )
    except MosaicError as err:
        bar.empty()
        st.error(f"The check could not run. {md(err)}")
    except Exception:  # noqa: BLE001 - a failed check must not lose the page
        logger.exception("originality check failed")
        bar.empty()
        st.error("Something went wrong during the check; the details are in the studio's log. Nothing was changed.")
    else:
        bar.empty()
        results.pop(key, None)
        results[key] = result
        while len(results) > KEPT_RESULTS:
            results.pop(next(iter(results)))

result = results.get(key)
if result is None:
    if not go:
        st.info(
            f"Press **Check originality** to compare this image with **{md(library.title)}**. "
            "It takes from a few seconds to a minute; the first check of a library takes longer "
            "because its pictures are prepared once."
        )
    show_how_we_score()
    st.stop()

st.divider()
space = "pixels" if result.space == "pixel" else "the image-model view"
detail = "standard detail" if result.work_size >= 128 else "quick check"
took = result.timings.get("total")
st.caption(
    f"Checked against **{md(library.title)}** ({library.count} pictures) · compared on {space} · "
    f"{detail}" + (f" · took {took:.0f} s" if took else "")
)
show_headline(result)
show_near_copy(result, libraries)
show_notices(result, [])

scale = choose_scale(result)
show_pictures(result, subject.image, libraries, scale)
show_sources(result, libraries, scale)

record = subject.record
if record is not None and record.engine == "local-score":
    arrays = store.arrays(record)
    if "sources" in arrays:
        show_exact_comparison(result, record, arrays, libraries)

show_how_we_score()
