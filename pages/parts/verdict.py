"""The copy verdict block, the same on the Mosaic view and the Originality check (see core.analyzer.verdict)."""

from __future__ import annotations

import streamlit as st

from core.analyzer.verdict import Verdict, pct
from core.html import md

RISK_COLOURS = {"low": "green", "medium": "orange", "high": "red"}  # Streamlit colour names
#: what the Mosaic view measures (said on the Originality check where the two could differ)
MOSAIC_VIEW_MEASURES = "the Mosaic view judges it by the exact sources the studio recorded while making it"


def show_verdict(verdict: Verdict, note: str | None = None, near_copy_match: float | None = None) -> None:
    """The verdict: what it means, the label and the figures behind it, its basis, small-library advice.

    ``note``: one line of plain text (escaped here) under the basis, e.g. what the other page measures.
    ``near_copy_match``: the search's best whole-image match, listed with the figures (it decides only
    when it makes a near copy).
    """
    with st.container(key="verdict"):
        box = {"low": st.success, "medium": st.warning, "high": st.error}[verdict.risk]
        box(f"{md(verdict.summary)}\n\n{md(verdict.advice)}")
        words = verdict.words  # the words shown everywhere (campaign cards, contact sheet, CSV)
        c1, c2, c3, c4 = st.columns(4)
        c1.metric(
            "Originality score",
            f"{verdict.originality} / 100",
            help="100 = nothing recognisable taken from the library; 0 = a copy. See “How we score originality”.",
        )
        c1.caption(md(words.band[:1].upper() + words.band[1:]))
        with c2:
            # Streamlit's own coloured text: no HTML, and the label is one of three fixed phrases
            st.caption("Copy risk")
            st.markdown(f"#### :{RISK_COLOURS[verdict.risk]}[● {md(verdict.label)}]")
            st.caption(md(words.figure[:1].upper() + words.figure[1:]))
        c3.metric(
            "Largest copied piece",
            pct(verdict.largest_region),
            help="The biggest connected part of the image taken from one library picture"
            + (f" (“{md(verdict.region_source)}”)." if verdict.region_source else "."),
        )
        c4.metric(
            "From one picture",
            pct(verdict.top_share),
            help="How much of the image the library picture it takes most from supplies"
            + (f" (“{md(verdict.top_source)}”)." if verdict.top_source else "."),
        )
        st.markdown(f":material/info: {md(verdict.basis_line)}" + (f" {md(note)}" if note else ""))
        if verdict.small_library:
            st.warning(md(verdict.library_advice), icon=":material/photo_library:")
        with st.expander("Advanced: the figures behind this verdict"):
            rows = [
                ("Decided by", md(verdict.headline)),
                ("Borrowed (in pieces of at least 0.4 % of the image)", pct(verdict.borrowed)),
                ("Largest copied piece", pct(verdict.largest_region)
                 + (f" · {md(verdict.region_source)}" if verdict.region_source else "")),
                ("From one picture", pct(verdict.top_share)
                 + (f" · {md(verdict.top_source)}" if verdict.top_source else "")),
                ("Library pictures used", str(verdict.source_count)),
            ]
            if verdict.library_size is not None:
                rows.append(("Pictures in the library", str(verdict.library_size)))
            if near_copy_match is not None:
                rows.append(("Best whole-image match (a near copy is 60 % or more)", pct(near_copy_match)))
            rows.append(("Basis", "exact sources" if verdict.basis == "exact" else "library search"))
            st.markdown("\n".join(f"- {name}: **{value}**" for name, value in rows))
