"""Lab page: the saved comparison of a trained model with the score machines (``comparison.json``).

Outside the "How this is measured" expander everything is in plain words: the machines by what they do,
Pearson r as "likeness" (1 = the same picture), seeds as pictures. The technical table and how it was made
are inside the expander.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.errors import MosaicError
from core.lab.compare import COLUMN_TITLES, ComparisonTable, approximate_method, load_comparison
from pages.parts.messages import show_problem

MAKE_COMMAND = "python -m core.lab.demo --compare-only --seeds 50 --out <model folder>"

#: the machines in the page's words (the technical names are under "How this is measured")
MACHINE_WORDS: dict[str, str] = {
    "is": "Copies whole pictures",
    "ls": "Patches at their own place",
    "els": "Patches from anywhere",
    "bbels": "Patches from anywhere, aware of the border",
}

#: what one class of a library is, for the table's caption
CLASS_WORDS: dict[str, str] = {"digits": "one digit each", "fashion-mnist-3615": "one kind of clothing each"}

#: the plain table's columns
MACHINE, TYPICAL, AVERAGE, LOWEST, BEATS = (
    "Machine",
    "Typical likeness",
    "Average likeness",
    "Lowest likeness",
    "Closer than copying",
)


def machine_words(kind: str) -> str:
    return MACHINE_WORDS.get(kind, COLUMN_TITLES.get(kind, kind))


def seed_text(seeds: list[int]) -> str:
    """``50 seeds (0–49)`` for a contiguous range, else ``7 seeds``."""
    if seeds and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{len(seeds)} seeds ({seeds[0]}–{seeds[-1]})" if len(seeds) > 1 else f"1 seed ({seeds[0]})"
    return f"{len(seeds)} seeds"


def wins(table: ComparisonTable, kind: str, other: str = "is") -> int:
    """On how many seeds ``kind``'s picture is closer to the network's than ``other``'s."""
    return round(table.fraction_beats(kind, other) * len(table.seeds))


def plain_rows(table: ComparisonTable) -> list[dict[str, str]]:
    """The table in plain words: one row per machine, likeness to 2 decimals, "closer than copying" as
    "49 of 50" (a dash for the copying machine itself)."""
    rows = []
    for kind in table.kinds:
        row = {
            MACHINE: machine_words(kind),
            TYPICAL: f"{table.median_r(kind):.2f}",
            AVERAGE: f"{table.mean_r(kind):.2f}",
            LOWEST: f"{table.min_r(kind):.2f}",
        }
        if "is" in table.kinds:
            row[BEATS] = "—" if kind == "is" else f"{wins(table, kind)} of {len(table.seeds)}"
        rows.append(row)
    return rows


def table_rows(table: ComparisonTable) -> list[dict[str, str]]:
    """The technical table as display strings (r to 3 decimals, "beats IS" in percent)."""
    rows = []
    for row in table.rows():
        shown = {k: (v if isinstance(v, str) else f"{v:.3f}") for k, v in row.items() if k != "beats IS"}
        if "beats IS" in row:
            shown["beats IS"] = "—" if row["beats IS"] is None else f"{row['beats IS']:.0%}"
        rows.append(shown)
    return rows


def plain_caption(table: ComparisonTable) -> str:
    """What the table compares, in words."""
    count = len(table.seeds)
    pictures = f"{count} picture{'' if count == 1 else 's'}"
    each = ""
    if table.class_labels is not None:
        each = f", {CLASS_WORDS.get(table.info.get('library') or 'digits', 'one kind of picture each')}"
    return (
        f"Over {pictures}{each}, the network and each machine started from the same noise; the table sums up how "
        "alike each machine's pictures are to the network's."
    )


def plain_reading(table: ComparisonTable) -> str:
    """One paragraph: how to read the table, and what it says."""
    count = len(table.seeds)
    text = (
        "**How to read this table:** likeness is 1 when a machine's picture is the network's picture and 0 when "
        "the two are unrelated — the closer to 1, the better the machine predicts the network. *Typical* is the "
        f"middle value over the {count} pictures, *average* the mean and *lowest* the worst picture"
    )
    if "is" in table.kinds:
        text += (
            "; *closer than copying* counts the pictures where the machine came closer to the network than the "
            "machine that copies whole pictures"
        )
    best = max(table.kinds, key=table.median_r)
    text += f". Here “{machine_words(best).lower()}” predicts the network best (typical likeness "
    text += f"**{table.median_r(best):.2f}**"
    if "is" in table.kinds and best != "is":
        text += f", closer than copying on **{wins(table, best)} of {count}** pictures"
    text += ")."
    els = table.els_kind()
    if els is not None and els != best:
        text += f" “{machine_words(els)}” reaches **{table.median_r(els):.2f}**"
        if "is" in table.kinds:
            text += f" and comes closer than copying on **{wins(table, els)} of {count}** pictures"
        text += "."
    if "els" in table.kinds and "bbels" in table.kinds and table.median_r("els") < table.median_r("bbels") - 0.1:
        text += (
            f" “Patches from anywhere” alone does poorly ({table.median_r('els'):.2f}): that machine wraps round "
            "the border, so it cannot tell the middle of a picture from its edge; the network can, and so can the "
            "machine aware of the border."
        )
    return text


def comparison_caption(table: ComparisonTable) -> str:
    """How the numbers were made, from what the table recorded (technical: shown under the expander)."""
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


MACHINES_EXPLAINED = (
    "The machines are those of Kamb & Ganguli (ICML 2025): **IS** (ideal score) copies whole training images; "
    "**LS** (local score) uses patches at their own place; **ELS** (equivariant local score) and **bbELS** "
    "(boundary-broken ELS) use patches from anywhere. ELS wraps round the border, so it cannot tell the middle "
    "of the picture from the edge; the network, padded with zeros, can, and so can bbELS. *Likeness* is the "
    "Pearson correlation r of the pixels of a machine's image with the network's image (median, mean and "
    "minimum over seeds; *closer than copying*: how often r beats IS's r)."
)


def show_comparison(folder: Path) -> ComparisonTable | None:
    """Render the saved comparison of the model in ``folder``; a note when it has none (or it is unreadable)."""
    try:
        table = load_comparison(Path(folder))
    except MosaicError as err:
        show_problem("The saved comparison of this model could not be read.", detail=str(err), kind="warning")
        return None
    if table is None:
        show_problem("This model has no saved comparison yet.", detail=f"Make one with: {MAKE_COMMAND}", kind="info")
        return None
    st.caption(plain_caption(table))
    st.table(plain_rows(table), hide_index=True)
    st.markdown(plain_reading(table))
    with st.expander("How this is measured"):
        st.markdown(MACHINES_EXPLAINED)
        st.table(table_rows(table), hide_index=True)
        st.caption(comparison_caption(table))
    return table
