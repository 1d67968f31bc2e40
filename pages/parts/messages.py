"""Problems shown in the user's words, with the technical detail folded away for whoever sets the studio up."""

from __future__ import annotations

import streamlit as st

from core.errors import MosaicError

#: the expander holding technical detail (setup commands, environment variables, paths)
DETAIL_LABEL = "Details for whoever sets up the studio"


def show_problem(message: str | BaseException, detail: str | None = None, kind: str = "error") -> None:
    """``message`` in a coloured box (``kind``: error, warning or info); ``detail`` under an expander.

    A :class:`~core.errors.MosaicError` brings its own ``detail``. Both are shown as plain text (no
    Markdown, no HTML): they may hold file names or other user strings.
    """
    if isinstance(message, MosaicError) and detail is None:
        detail = message.detail
    box = {"error": st.error, "warning": st.warning, "info": st.info}[kind]
    box(str(message), icon={"error": ":material/error:", "warning": ":material/warning:", "info": None}[kind])
    if detail:
        with st.expander(DETAIL_LABEL):
            st.code(detail, language=None, wrap_lines=True)
