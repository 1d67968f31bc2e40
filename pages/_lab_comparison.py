"""Lab page: the saved comparison of a trained model with the score machines (``comparison.json``)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.errors import MosaicError
from core.html import md
from core.lab.compare import COLUMN_TITLES, ComparisonTable, approximate_method, load_comparison

MAKE_COMMAND = "python -m core.lab.demo --compare-only --seeds 50 --out <model folder>"


def seed_text(seeds: list[int]) -> str:
    """``50 seeds (0–49)`` for a contiguous range, else ``7 seeds``."""
    if seeds and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{len(seeds)} seeds ({seeds[0]}–{seeds[-1]})" if len(seeds) > 1 else f"1 seed ({seeds[0]})"
    return f"{len(seeds)} seeds"


def table_rows(table: ComparisonTable) -> list[dict[str, str]]:
    """The table's rows as display strings (r to 3 decimals, "beats IS" in percent)."""
    rows = []
    for row in table.rows():
        shown = {k: (v if isinstance(v, str) else f"{v:.3f}") for k, v in row.items() if k != "beats IS"}
        if "beats IS" in row:
            shown["beats IS"] = "—" if row["beats IS"] is None else f"{row['beats IS']:.0%}"
        rows.append(shown)
    return rows


def comparison_caption(table: ComparisonTable) -> str:
    """How the numbers were made, from what the table recorded."""
    info = table.info
    mode = (
        "all machines exact"
        if table.exact()
        else f"machines approximate after the first steps ({approximate_method(info)})"
    )
    text = (
        f"{seed_text(table.seeds)}, one class per seed (seed mod number of classes), network and machines "
        f"from the same noise and class, {table.steps} DDIM steps, {mode}; r is the Pearson correlation of each "
        "machine's image with the network's image."
    )
    schedules = table.schedule_note()
    if schedules:
        text += f" Patch sizes: {schedules}"
        calibrations = info.get("calibrations") or {}
        if calibrations:
            text += (
                " (calibrated along the network's own DDIM runs: "
                + "; ".join(
                    f"{COLUMN_TITLES.get(k, k)} {c.get('samples')} trajectories, "
                    + ("exact" if c.get("top_k") is None else f"with the {c['top_k']} nearest images")
                    for k, c in calibrations.items()
                )
                + ")"
            )
        text += "."
    env = info.get("environment") or {}
    made = f"Computed by `{info['command']}`" if info.get("command") else "Computed"
    if info.get("wall_seconds") is not None:
        made += f" (comparison {float(info['wall_seconds']):.0f} s)"
    if env.get("cpu"):
        threads = env.get("threads")
        made += f" on {env['cpu']} ({threads} thread{'' if threads == 1 else 's'})"
    if env.get("date"):
        made += f", {env['date']}"
    return text + " " + made + "."


def show_comparison(folder: Path) -> ComparisonTable | None:
    """Render the saved comparison of the model in ``folder``; a note when it has none (or it is unreadable)."""
    try:
        table = load_comparison(Path(folder))
    except MosaicError as err:
        st.warning(f"The saved comparison of this model could not be read: {md(err)}")
        return None
    if table is None:
        st.info(f"No saved comparison for this model yet. Make one with `{MAKE_COMMAND}`.")
        return None
    st.table(table_rows(table))
    els = table.els_kind()
    if els is not None and "is" in table.kinds:
        title = {"bbels": "bbELS", "els": "ELS"}[els]
        st.markdown(
            f"The {title} machine matches the network with a median r of **{table.median_r(els):.2f}** "
            f"and beats the copying machine (IS) on **{table.fraction_beats(els, 'is'):.0%}** of seeds."
        )
    st.caption(comparison_caption(table))
    return table
