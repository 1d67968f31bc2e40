"""Imports that stopped part way (the studio restarted, the job was cancelled, the disk filled): go on, or drop
what was read. Shown on the Libraries page."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import streamlit as st

from core.errors import MosaicError
from core.html import md
from core.libraries import LibraryManager
from core.libraries.jobs import resume_command, resume_params
from core.words import plural, time_ago
from pages.parts.messages import show_problem


def _source_words(sources: list[str]) -> str:
    """Where the pictures came from, as Markdown (the paths escaped)."""
    if not sources:
        return "its source"
    if len(sources) == 1:
        return f"“{md(sources[0])}”"
    return f"“{md(sources[0])}” and {plural(len(sources) - 1, 'other source')}"


def show_stopped_imports(
    libraries: LibraryManager,
    can_edit: bool,
    running: Callable[[str], bool],
    go_on: Callable[[dict[str, Any], str], None],
    workspace: str | None = None,
) -> None:
    """Each stopped import in plain words, with "Go on" (``go_on(params, title)`` submits the same import again)
    and "Discard". ``running(library)``: an import into it is already queued or working (then it is not shown)."""
    stopped = [s for s in libraries.stopped_imports() if not running(s.library)]
    if not stopped:
        return
    st.subheader("Imports that stopped part way", anchor=False)
    now = time.time()
    for item in stopped:
        with st.container(border=True):
            st.markdown(
                f"**{md(item.title)}**: {plural(item.pictures, 'picture')} read from {_source_words(item.sources)}, "
                f"then it stopped ({time_ago(now - item.stopped_at)}). Going on keeps them and reads the rest."
            )
            if not can_edit:
                continue
            params = resume_params(item)
            left, right, _ = st.columns([1, 1, 3], vertical_alignment="center")
            if params is not None:
                if left.button("Go on", key=f"resume_{item.key}", type="primary", icon=":material/play_arrow:"):
                    try:
                        go_on(params, item.title)
                        st.rerun()
                    except MosaicError as err:
                        show_problem(md(err), detail=err.detail)
            else:
                command = resume_command(item, workspace)
                if command:
                    left.caption("It was started from the command line; to go on, run:")
                    left.code(command, language="bash", wrap_lines=True)
                else:
                    left.caption("Start the same import again to go on, or discard what was read.")
            if right.button("Discard", key=f"discard_{item.key}", icon=":material/delete:"):
                try:
                    libraries.discard_stopped(item.library, item.key)
                    st.rerun()
                except MosaicError as err:
                    show_problem(md(err), detail=err.detail)
