"""Originality check, part 2: showing a result in plain words and pictures (used by pages/analyze.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from core.analyzer import (
    AnalysisResult,
    compare_with_exact_sources,
    rebuilt_image,
    similarity_heatmap,
    source_map_image,
    top_source_images,
)
from core.analyzer.verdict import STUDIO_ENGINE, Verdict, final_verdict, studio_verdict, verdict_from_analysis
from core.errors import MosaicError
from core.html import colour_mark, md
from core.libraries import LibraryManager
from core.words import plural
from pages.parts.messages import show_problem
from pages.parts.shared import enlarge
from pages.parts.verdict import MOSAIC_VIEW_MEASURES, show_verdict

logger = logging.getLogger(__name__)

DOC = Path(__file__).resolve().parents[1] / "docs" / "originality.md"
NOT_FOUND_GREY = (224, 224, 224)
SHOW_SIDE = 512  # small pictures are enlarged (crisp, nearest-neighbour) to about this many pixels


def _pct(value: float) -> str:
    return f"{value * 100:.0f} %" if value >= 0.01 or value == 0 else "under 1 %"


def picture(image: Image.Image, caption: str | None = None) -> None:
    """A picture filling its column; small ones enlarged without blurring."""
    if max(image.size) < SHOW_SIDE:
        image = enlarge(image, SHOW_SIDE)
    st.image(image, caption=caption, width="stretch")


def _hex(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------- headline


def page_verdict(result: AnalysisResult, record, store, libraries: LibraryManager) -> Verdict:
    """The verdict this page shows: the one saved with the check, else (a check saved before verdicts
    existed) the exact sources of a studio image checked against its own library, else the search's."""
    if result.verdict is not None:
        return result.verdict
    exact = studio_verdict(record, store, libraries, result.library) if record is not None else None
    return exact if exact is not None else final_verdict(result)


def library_title(libraries: LibraryManager | None, name: str | None) -> str:
    """The title people know a library by; its name when it cannot be read."""
    if not name:
        return "its library"
    try:
        return libraries.get(name).title if libraries is not None else name
    except MosaicError:
        return name


def show_headline(
    result: AnalysisResult, verdict: Verdict, record=None, libraries: LibraryManager | None = None
) -> None:
    """The verdict block (the same as the Mosaic view's for a studio image), with what each page measures."""
    note = None
    if verdict.basis == "exact":
        note = (
            "The Mosaic view shows this same verdict. This check's library search sees only the finished picture: "
            "what it found is under “What the library search found”, below."
        )
    elif record is not None and record.engine == STUDIO_ENGINE:
        note = (
            f"This image was made from the library “{library_title(libraries, record.library)}”: "
            f"{MOSAIC_VIEW_MEASURES}; this check searched “{library_title(libraries, result.library)}” for pieces "
            "of the finished picture, so the two verdicts can differ."
        )
    show_verdict(verdict, note=note, near_copy_match=result.near_copy.score if verdict.basis == "search" else None)


def show_search_findings(result: AnalysisResult) -> None:
    """For a verdict from exact sources: what the library search itself found, in one sentence."""
    st.subheader("What the library search found")
    st.markdown(md(verdict_from_analysis(result).summary))


def show_near_copy(result: AnalysisResult, libraries: LibraryManager) -> None:
    """The library picture a near copy copies (nothing when the search found no near copy)."""
    near = result.near_copy
    if not near.is_copy:
        return
    flipped = ", mirrored" if near.mirrored else ""
    text, pic = st.columns([3, 1])
    with text:
        st.markdown(
            f":red[:material/block:] **Near copy** of the library picture “{md(near.name)}”{flipped}: "
            f"{md(near.reason or 'the whole image matches')} (match {near.score * 100:.0f} %). "
            "Resizing, cropping, re-saving or recolouring a picture does not make it original."
        )
    if near.index is not None and near.index >= 0:
        try:
            with pic:
                picture(libraries.item_image(result.library, near.index), caption="The library picture it copies")
        except (MosaicError, OSError):
            logger.info("could not show near-copy source %s", near.index)


def show_notices(result: AnalysisResult, extra: list[str]) -> None:
    for notice in [*extra, *result.notices]:
        st.caption(f":material/info: {md(notice)}")


# ----------------------------------------------------------------------------------------- pictures


def _scale_label(scales: list[int]):
    names = ["Small pieces", "Medium pieces", "Large pieces"] if len(scales) == 3 else []

    def label(patch: int) -> str:
        if patch == 0:
            return "All sizes"
        if names:
            return f"{names[scales.index(patch)]} ({patch} px)"
        return f"Pieces of {patch} px"

    return label


def choose_scale(result: AnalysisResult) -> int | None:
    """Slider over the piece sizes of the analysis; None = all sizes combined."""
    scales = sorted(result.scales)
    if not scales:
        return None
    chosen = st.select_slider(
        "Piece size",
        options=[0, *scales],
        value=0,
        format_func=_scale_label(scales),
        key="analyze_scale_" + "-".join(str(p) for p in scales),  # other piece sizes: a fresh slider
        help="The check looks for borrowed pieces of several sizes (in pixels of the image as analysed, "
        f"{result.source_map.shape[1]}×{result.source_map.shape[0]} px). ‘All sizes’ combines them; pick one "
        "size to see only those pieces.",
    )
    if not chosen:
        return None
    scale = result.scales[chosen]
    st.caption(
        f"With {_scale_label(scales)(chosen).lower()} alone: {_pct(scale.borrowed_fraction)} borrowed from "
        f"{plural(len(scale.sources), 'library picture')}, largest piece {_pct(scale.largest_region_fraction)}."
    )
    return int(chosen)


def show_pictures(result: AnalysisResult, image: Image.Image, libraries: LibraryManager, scale: int | None) -> None:
    """The image, its source map, the similarity heat map and the image rebuilt from library pieces."""
    cols = st.columns(4)
    with cols[0]:
        st.markdown("**Your image**")
        picture(image)
    with cols[1]:
        st.markdown("**Where it comes from**")
        picture(source_map_image(result, scale, upscale=1))
        st.caption("One colour per library picture (as in the sources below). Light grey: not found in the library.")
    with cols[2]:
        st.markdown("**How close to the library**")
        picture(similarity_heatmap(result, scale, upscale=1))
        st.caption(
            "Yellow: identical to a piece of a library picture; dark blue: unlike anything in it. "
            "Only solid, detailed pieces count as borrowed (coloured in the map to the left); "
            "plain or tiny look-alikes do not."
        )
    with cols[3]:
        st.markdown("**Rebuilt from library pieces**")
        try:
            picture(rebuilt_image(result, libraries, scale, upscale=1))
            st.caption("Only the borrowed pieces, taken from the library pictures; faded parts are the image's own.")
        except (MosaicError, OSError) as err:
            st.caption("Cannot be rebuilt: the library changed since the check. Check the image again.")
            logger.info("rebuilt image not shown: %s", err)


def show_sources(result: AnalysisResult, libraries: LibraryManager, scale: int | None) -> None:
    st.subheader("Library pictures it borrows from")
    try:
        tops = top_source_images(result, libraries, k=6, scale=scale, upscale=2)
    except (MosaicError, OSError) as err:
        show_problem("The library pictures cannot be shown: the library changed since the check. Check the image "
                     "again.", detail=str(err), kind="warning")
        return
    if not tops:
        st.success("No piece of this image was found in the library.")
        return
    total = len(result.sources if scale is None else result.scales[scale].sources)
    more = f" (the {len(tops)} largest of {total})" if total > len(tops) else ""
    st.caption(f"Boxes show the borrowed pieces in each library picture{more}; the % is its share of your image.")
    cols = st.columns(6)
    for i, (share, image) in enumerate(tops):
        with cols[i % 6]:
            picture(image)
            st.markdown(
                f"{colour_mark(share.colour)} **{_pct(share.share)}** · {md(share.name)}",
                unsafe_allow_html=True,
            )


# ----------------------------------------------------------------------------------------- exact sources


def exact_map_image(exact: np.ndarray, result: AnalysisResult) -> Image.Image:
    """The machine's exact source map, coloured like the estimate where both name the same library picture.

    Library pictures the check did not find are shades of dark grey; pictures since removed are black.
    """
    index = exact[..., 0] if exact.ndim == 3 else exact
    colours = {share.index: _hex(share.colour) for share in result.sources}
    rgb = np.zeros(index.shape + (3,), dtype=np.uint8)
    others, counts = np.unique(index[(index >= 0) & ~np.isin(index, list(colours))], return_counts=True)
    for rank, value in enumerate(others[np.argsort(-counts, kind="stable")]):
        shade = 70 + (rank * 37) % 110
        rgb[index == value] = (shade, shade, shade)
    for value, colour in colours.items():
        rgb[index == value] = colour
    return Image.fromarray(rgb, "RGB")


def show_exact_comparison(result: AnalysisResult, record, arrays: dict, libraries: LibraryManager) -> None:
    """For Mosaic (local score) images: the exact sources the machine recorded next to the check's estimate."""
    from core.mosaic import build_mosaic

    st.subheader("Exact sources vs. this check")
    if result.library != record.library:
        made_from = md(library_title(libraries, record.library))
        st.info(
            f"This image was made from the library **{made_from}**, so its exact sources are known only "
            f"for that library. Check it against **{made_from}** to compare them with this check."
        )
        return
    try:
        mosaic = build_mosaic(arrays, record.library, libraries)
    except (MosaicError, KeyError, ValueError) as err:
        show_problem("The exact sources of this image cannot be read.", detail=str(err), kind="warning")
        return
    agreement = compare_with_exact_sources(result, mosaic)
    c1, c2, c3 = st.columns([1, 1, 1.2])
    with c1:
        st.markdown("**Exact sources** (recorded while making it)")
        picture(exact_map_image(mosaic.sources, result))
    with c2:
        st.markdown("**This check's estimate**")
        picture(source_map_image(result, upscale=1))
    with c3:
        st.metric(
            "Agreement",
            f"{agreement.agreement * 100:.0f} %",
            help="Share of all pixels where the check names the same library picture as the exact record.",
        )
        st.metric(
            "Pixels the check traced",
            f"{agreement.coverage * 100:.0f} %",
            help="Share of pixels the check attributed to some library picture.",
        )
    st.markdown(
        "The Mosaic engine records which library picture **every pixel** came from. The check only sees the "
        "finished picture and looks for pieces large and detailed enough to be recognised, so it misses, or "
        "matches to look-alikes, the many tiny pieces such images are made of; the verdict at the top uses the "
        f"exact record. Here the check names the same library picture for **{agreement.agreement * 100:.0f} %** "
        "of the pixels."
    )
    st.caption(
        "Same colour = same library picture in both maps. Dark grey: pictures the check did not find; "
        "light grey: parts the check found nowhere in the library."
    )


def show_how_we_score() -> None:
    with st.expander("How we score originality"):
        try:
            text = DOC.read_text(encoding="utf-8")
        except OSError:
            st.markdown("The explanation is not available in this installation.")
            return
        lines = text.splitlines()
        if lines and lines[0].startswith("# "):
            lines = lines[1:]
        st.markdown("\n".join(lines))
