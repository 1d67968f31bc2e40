"""Lab page, section 1: one picture per patch size, and how alike each is to its closest library picture.

The locality job (:mod:`core.lab.jobs`) saves for each patch-size preset the picture, its likeness to the closest
library picture (``closest``: the highest Pearson r with any library picture; 1 = a copy) and how many library
pictures the last step's patches came from (``sources``). Only the likeness tells a new picture from a copy, so
the page leads with it; the count is explained under "How this is measured".
"""

from __future__ import annotations

from typing import Any

import streamlit as st
from PIL import Image

from core.errors import MosaicError
from core.lab.jobs import PRESET_WORDS
from core.score import patch_schedule

#: every picture of the row is shown at this many pixels, whatever its own size
TILE = 160
STEPS = 20  # the locality job's steps (the engine's default)


def tile(path: str, side: int = TILE) -> Image.Image:
    """The picture at ``path`` as a ``side``×``side`` square, crisp (nearest neighbour)."""
    with Image.open(path) as image:
        return image.convert("L" if image.mode in ("L", "1", "P") else "RGB").resize(
            (side, side), Image.Resampling.NEAREST
        )


#: shorter words under the pictures (one line of 160 px with the likeness)
CAPTION_WORDS = {**PRESET_WORDS, "whole-image": "Whole picture"}


def caption(row: dict[str, Any]) -> str:
    """``Small patches: 0.52`` (the likeness to the closest library picture), or the words alone."""
    words = CAPTION_WORDS.get(row.get("preset", ""), str(row.get("preset", "")))
    closest = row.get("closest")
    return f"{words}: {closest:.2f}" if isinstance(closest, (int, float)) else words


def reading(rows: list[dict[str, Any]]) -> str:
    """One paragraph: how to read the row of pictures, and what this row shows (from its own figures)."""
    scored = [r for r in rows if isinstance(r.get("closest"), (int, float))]
    text = (
        "**How to read this:** each picture is compared with every picture of the library; its likeness to the "
        "closest one goes from 0 (nothing alike) to 1 (a copy)."
    )
    if len(scored) < 2:
        return text
    first, last = scored[0], scored[-1]
    text += (
        f" With {PRESET_WORDS.get(first['preset'], first['preset']).lower()} the closest library picture is "
        f"{first['closest']:.2f} alike"
    )
    text += ": a new digit, made of pieces of many pictures." if first["closest"] < 0.9 else "."
    text += f" With {PRESET_WORDS.get(last['preset'], last['preset']).lower()} it is {last['closest']:.2f}"
    text += ": the machine copied one library picture." if last["closest"] >= 0.995 else "."
    values = [r["closest"] for r in scored]
    if values == sorted(values):
        text += " The bigger the patches, the closer the picture stays to one library picture."
    else:
        text += " For this starting noise the middle sizes do not follow the order of the patch sizes exactly."
    return text


def measured(rows: list[dict[str, Any]], size: int = 16) -> str:
    """The technical side, for the "How this is measured" expander."""
    lines = [
        "Machine: bbELS (boundary-broken equivariant local score, Kamb & Ganguli 2025), class-conditional, "
        f"{STEPS} DDIM steps on the *digits* library at {size}×{size} px. Patch sizes per step, from noise to "
        "picture:"
    ]
    for row in rows:
        preset = row.get("preset", "")
        try:
            sizes = ", ".join(str(p) for p in patch_schedule(preset, size, STEPS))
        except MosaicError:  # an older result of a preset that no longer exists
            sizes = "?"
        lines.append(f"- `{preset}`: {sizes}")
    lines.append(
        "\n*Likeness* is the Pearson correlation r of the picture's pixels with those of the closest library "
        "picture (the highest r over the whole library)."
    )
    counts = [r for r in rows if isinstance(r.get("sources"), int)]
    if counts:
        listed = ", ".join(f"`{r['preset']}` {r['sources']}" for r in counts)
        lines.append(
            f"\nLibrary pictures the last step's patches came from: {listed}. This count says how distinctive the "
            "last step's patches are, not how new the picture is: at the last step the patches are one to a few "
            "pixels wide, many library pictures offer the same tiny patch (a black pixel of background) and one "
            "of them wins them all, so smaller patches can show fewer pictures. Only the whole-picture patches' "
            "count (1: one picture copied) speaks of novelty; likeness to the closest library picture does for all."
        )
    return "\n".join(lines)


def show_locality(rows: list[dict[str, Any]]) -> None:
    """The row of pictures (all the same size), its plain reading and the technical side under an expander."""
    shown = [r for r in rows if r.get("image")]
    if not shown:
        return
    with st.container(horizontal=True, gap="medium"):  # side by side, wrapping two by two on a phone
        for row in shown:
            st.image(tile(row["image"]), caption=caption(row), width=TILE)
    st.markdown(reading(shown))
    with st.expander("How this is measured"):
        st.markdown(measured(shown))
