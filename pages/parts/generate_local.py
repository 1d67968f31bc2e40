"""Settings form of the local score engine (used by the Generate page)."""

from __future__ import annotations

import random

import streamlit as st

from core.engines.local_score import MAX_COUNT, SIZES, LocalScoreEngine, LocalScoreRequest, describe_estimate
from core.errors import MosaicError
from core.libraries import LibraryManager
from core.score import MACHINE_KINDS, MACHINE_LABELS, PRESETS
from pages.parts.messages import show_problem
from pages.parts.shared import library_label

#: plain readings of the locality presets (the presets' own texts name the research they come from)
PRESET_WORDS = {
    "fine": "Smaller patches: more original images that mix many library pictures.",
    "balanced": "The recommended middle ground between new and faithful.",
    "fashion-unet": "The middle ground as measured on a trained network (same as balanced).",
    "coarse": "Bigger patches: images stay closer to single library pictures.",
    "whole-image": "Each patch is the whole picture: it copies library pictures (for comparison).",
}
#: plain words for the engine's machines (the names stay under Advanced)
MACHINE_WORDS = {
    "is": "Copies whole library pictures (for comparison).",
    "ls": "Each pixel borrows from the same place in library pictures.",
    "els": "Each pixel borrows from anywhere in library pictures.",
    "bbels": "Like the one above, but edges and corners borrow only from edges and corners (recommended).",
}


def count_slider(prefix: str, max_count: int) -> int:
    """How many images (its default is in Session State under ``{prefix}_count``)."""
    return int(st.slider("Number of images", 1, max_count, key=f"{prefix}_count"))


def seed_input(prefix: str) -> int:
    """Seed input with a dice button (its default is in Session State under ``{prefix}_seed``)."""
    if f"{prefix}_seed" not in st.session_state:
        st.session_state[f"{prefix}_seed"] = 0
    seed_col, dice_col = st.columns([3, 1], vertical_alignment="bottom")
    if dice_col.button("", icon=":material/casino:", help="New random seed", key=f"{prefix}_dice"):
        st.session_state[f"{prefix}_seed"] = random.randint(0, 99999)
    seed = seed_col.number_input(
        "Seed",
        min_value=0,
        max_value=2**32 - 1,
        step=1,
        key=f"{prefix}_seed",
        help="The same seed and settings always give the same image; image i of a batch uses seed + i. "
        "The dice picks a new one.",
    )
    return int(seed)


#: defaults of the form, written into Session State before its widgets are drawn (never passed as value=)
DEFAULTS: dict[str, object] = {
    "gen_machine": "bbels",
    "gen_preset": "balanced",
    "gen_size": 32,
    "gen_count": 2,
    "gen_seed": 0,
    "gen_label": "Any",
    "gen_approximate": False,
    "gen_reference_grid": False,
}


def _prepare(libraries: LibraryManager, name: str, title: str):
    """Make built-in library ``name`` with a moving bar; its info, or ``None`` (the problem shown) when it failed."""
    text = f"Preparing {title} for its first use (only once)…"
    bar = st.progress(0.0, text=text)
    shown = [-1]

    def progress(done: int, expected: int) -> None:
        percent = int(100 * min(1.0, done / max(1, expected)))
        if percent != shown[0]:  # one update per percent, not one per picture
            shown[0] = percent
            bar.progress(percent / 100, text=f"{text} {done:,} of about {expected:,} pictures")

    try:
        info = libraries.ensure(name, progress)
    except MosaicError as err:
        bar.empty()
        show_problem(err)
        return None
    bar.empty()
    return info


def local_score_form(libraries: LibraryManager) -> tuple[LocalScoreEngine, LocalScoreRequest | None]:
    """Draw the form (its problems right above the button); return the engine and the request, or ``None``
    when it cannot be run."""
    state = st.session_state
    for key, value in DEFAULTS.items():
        if key not in state:
            state[key] = value
    infos = {info.name: info for info in libraries.list()}
    if state.get("gen_library") not in infos and infos:
        state["gen_library"] = "faces" if "faces" in infos else next(iter(infos))
    if state.get("gen_machine") not in MACHINE_KINDS:
        state["gen_machine"] = "bbels"
    if state.get("gen_preset") not in PRESETS:
        state["gen_preset"] = "balanced" if "balanced" in PRESETS else next(iter(PRESETS))
    library = st.selectbox(
        "Library",
        list(infos),
        format_func=lambda n: library_label(infos[n]),
        help="The pictures new images are assembled from. Add your own on the Libraries page.",
        key="gen_library",
    )
    info = infos[library]
    if not info.built:  # a built-in library's pictures are made on first use: a few seconds, shown as they go
        info = _prepare(libraries, library, info.title)
        if info is None:
            return LocalScoreEngine(libraries), None
    size = st.select_slider("Image size (pixels)", options=list(SIZES), key="gen_size")
    count = count_slider("gen", MAX_COUNT)
    label_options = ["Any"]
    if info.label_names:
        label_options += ["Random class"] + list(info.label_names)
    if state.get("gen_label") not in label_options:
        state["gen_label"] = "Any"
    label_choice = "Any"
    if len(label_options) > 1:
        label_choice = st.selectbox(
            "Class",
            label_options,
            key="gen_label",
            help="Make each image from one class of the library only (classes come from sub-folder names).",
        )
    label = None if label_choice == "Any" else ("random" if label_choice == "Random class" else label_choice)
    approximate = st.toggle(
        "Fast draft (approximate)",
        key="gen_approximate",
        help="A quick draft, faster the larger the library (about 3× with the built-in faces, 5–6× with a few "
        "thousand images): once the layout is set, each pixel only looks at the library patches that resemble it "
        "most, or, at large sizes, each image keeps the part of the library it has used most (about 2× faster at "
        "64 pixels, 7× at 128). The "
        "first small draft with a library (and size) takes longer: the studio prepares that library once and "
        "keeps it ready for later drafts. It comes out very close to, but not exactly, the full image for the same "
        "seed. Its mosaic still shows where every pixel came from.",
    )
    with st.expander("Advanced"):
        machine = st.selectbox(
            "Machine",
            list(MACHINE_KINDS),
            format_func=lambda k: MACHINE_LABELS[k][0],
            help="How each pixel looks for matching patches. "
            + " ".join(f"**{v[0]}**: {v[1]}" for v in MACHINE_LABELS.values()),
            key="gen_machine",
        )
        st.caption(MACHINE_WORDS.get(machine, MACHINE_LABELS[machine][1]))
        preset = st.selectbox(
            "Locality",
            list(PRESETS),
            format_func=lambda p: p.replace("-", " ").capitalize(),
            help="How large the borrowed patches are. Smaller patches give more original images.",
            key="gen_preset",
        )
        st.caption(PRESET_WORDS.get(preset, PRESETS[preset]))
        seed = seed_input("gen")
        reference = st.toggle(
            "Authors' time grid",
            key="gen_reference_grid",
            help="Sample on the grid of Kamb & Ganguli's code: 19 steps from nearly pure noise to nearly clean, "
            "on the 20-step patch schedule. For comparing with the paper; the default grid gives cleaner images.",
        )
    request = LocalScoreRequest(
        seed=seed,
        count=count,
        library=library,
        machine=machine,
        size=int(size),
        preset=preset,
        label=label,
        approximate=approximate,
        grid="reference" if reference else "uniform",
    )
    engine = LocalScoreEngine(libraries)
    try:
        with st.spinner("Preparing the library…"):
            plan = engine.plan(request)
    except MosaicError as err:
        show_problem(err)
        return engine, None
    exact_instead = request.approximate and not plan["approximate"]
    st.caption(describe_estimate(plan["cost"], exact_instead=exact_instead, preparing=plan["preparing"]))
    return engine, request
