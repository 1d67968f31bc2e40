"""Lab page: the training curve of a model (``training_curve.json``, see :mod:`core.lab.curve`).

A chart of how alike the network's pictures are to the patch machine's and to copying whole pictures, round
after round of training, with a plain reading; the training error and how the curve is measured are under
"How this is measured".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from core.errors import MosaicError
from core.lab.curve import load_curve
from core.words import plural
from pages.parts.messages import show_problem

ROUNDS = "Rounds of training"
#: the chart's lines, by machine kind, in the page's words
LINE_WORDS: dict[str, str] = {
    "bbels": "Like the patch machine",
    "els": "Like the patch machine (no border)",
    "ls": "Like patches at their own place",
    "is": "Like copying whole pictures",
}
ERROR = "Training error"


def curve_points(curve: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The points that carry at least one likeness, in step order."""
    points = (curve or {}).get("points") or []
    return sorted(
        (p for p in points if any(k.startswith("r_") and not k.endswith("_all") for k in p)),
        key=lambda p: int(p.get("step", 0)),
    )


def curve_frame(curve: dict[str, Any] | None) -> pd.DataFrame:
    """Typical likeness per machine (columns in the page's words), indexed by rounds of training."""
    rows = []
    for point in curve_points(curve):
        row: dict[str, Any] = {ROUNDS: int(point["step"])}
        for kind, words in LINE_WORDS.items():
            if isinstance(point.get(f"r_{kind}"), (int, float)):
                row[words] = float(point[f"r_{kind}"])
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).set_index(ROUNDS)


def likeness_chart(frame: pd.DataFrame) -> alt.Chart:
    """One line per machine; the legend under the chart, so that it fits a phone's width."""
    data = frame.reset_index().melt(ROUNDS, var_name="Machine", value_name="Likeness")
    return (
        alt.Chart(data, height=260)
        .mark_line(point=True)
        .encode(
            x=alt.X(f"{ROUNDS}:Q", title=ROUNDS),
            y=alt.Y("Likeness:Q", title=None, scale=alt.Scale(zero=False)),
            color=alt.Color(
                "Machine:N", title=None, legend=alt.Legend(orient="bottom", direction="vertical", labelLimit=0)
            ),
            tooltip=[ROUNDS, "Machine", alt.Tooltip("Likeness:Q", format=".2f")],
        )
    )


def error_frame(curve: dict[str, Any] | None) -> pd.DataFrame:
    rows = [{ROUNDS: int(p["step"]), ERROR: float(p["loss"])} for p in curve_points(curve) if "loss" in p]
    return pd.DataFrame(rows).set_index(ROUNDS) if rows else pd.DataFrame()


def curve_reading(curve: dict[str, Any] | None) -> str:
    """One paragraph: how to read the chart, and what it says (first, best and last point)."""
    points = curve_points(curve)
    if not points:
        return ""
    main = (
        "bbels"
        if any("r_bbels" in p for p in points)
        else next(k for k in LINE_WORDS if any(f"r_{k}" in p for p in points))
    )
    seeds = len((curve or {}).get("probe", {}).get("seeds") or []) or None
    pictures = f"the same {plural(seeds, 'test picture')}" if seeds else "the same test pictures"
    text = (
        "**How to read this chart:** every few hundred rounds of training the network drew "
        f"{pictures}, and each line shows how alike its pictures were to a machine's (likeness 1 = the same "
        "picture)."
    )
    with_main = [p for p in points if f"r_{main}" in p]
    first, last = with_main[0], with_main[-1]
    best = max(with_main, key=lambda p: p[f"r_{main}"])
    text += (
        f" After {plural(int(first['step']), 'round')} the network was already "
        f"**{first[f'r_{main}']:.2f}** alike to the patch machine; after {plural(int(last['step']), 'round')}, "
        f"**{last[f'r_{main}']:.2f}**"
    )
    if best is not last:
        text += f" (highest: {best[f'r_{main}']:.2f} after {plural(int(best['step']), 'round')})"
    text += (
        ". The chart gives the patch machine the same patch sizes at every point, so that points compare; the "
        "table above uses the sizes measured on the finished network."
    )
    if "r_is" in last and main != "is":
        gap = last[f"r_{main}"] - last["r_is"]
        if gap > 0.05:
            text += (
                f" Copying whole pictures stays further away (**{last['r_is']:.2f}**): while it learns, the network "
                "keeps building pictures from patches rather than copying its training pictures."
            )
        elif gap < -0.05:
            text += (
                f" Copying whole pictures is closer (**{last['r_is']:.2f}**): this network has started to copy its "
                "training pictures."
            )
        else:
            text += f" Copying whole pictures is about as close (**{last['r_is']:.2f}**)."
    return text


def show_training_curve(folder: Path) -> dict[str, Any] | None:
    """Render the training curve saved with the model in ``folder`` (nothing when it has none)."""
    try:
        curve = load_curve(Path(folder))
    except MosaicError as err:
        show_problem("The training curve of this model could not be read.", detail=str(err), kind="warning")
        return None
    frame = curve_frame(curve)
    if frame.empty:
        return None
    st.altair_chart(likeness_chart(frame), width="stretch")
    st.markdown(curve_reading(curve))
    with st.expander("How this is measured"):
        probe = (curve or {}).get("probe") or {}
        st.markdown(
            "The network's exponential moving average (the weights it samples with) drew "
            f"{len(probe.get('seeds') or [])} pictures from fixed seeds ({', '.join(map(str, probe.get('seeds', [])))})"
            " with 20 DDIM steps; the machines (IS, and bbELS with the fixed patch sizes "
            f"{', '.join(map(str, probe.get('patch_sizes', [])))}) drew them once, exactly, from the same noise and "
            "class. Each line is the median Pearson r over those seeds. The training error is the mean squared "
            "error of the network's prediction over the rounds since the previous point."
        )
        errors = error_frame(curve)
        if not errors.empty:
            st.caption(f"{ERROR} (lower is better), round by round")
            chart = (
                alt.Chart(errors.reset_index(), height=200)
                .mark_line()
                .encode(
                    x=alt.X(f"{ROUNDS}:Q", title=ROUNDS),
                    y=alt.Y(f"{ERROR}:Q", title=None, scale=alt.Scale(zero=False)),
                    tooltip=[ROUNDS, alt.Tooltip(f"{ERROR}:Q", format=".3f")],
                )
            )
            st.altair_chart(chart, width="stretch")
    return curve
