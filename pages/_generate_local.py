"""Settings form of the local score engine (used by the Generate page)."""

from __future__ import annotations

import random

import streamlit as st

from core.engines.local_score import MAX_COUNT, SIZES, LocalScoreEngine, LocalScoreRequest, describe_estimate
from core.errors import MosaicError
from core.libraries import LibraryManager
from core.score import MACHINE_KINDS, MACHINE_LABELS, PRESETS


def seed_and_count(prefix: str, max_count: int, default_count: int) -> tuple[int, int]:
    """Seed input with a dice button, and the number of images."""
    count = st.slider("Number of images", 1, max_count, default_count, key=f"{prefix}_count")
    if f"{prefix}_seed" not in st.session_state:
        st.session_state[f"{prefix}_seed"] = 0
    seed_col, dice_col = st.columns([3, 1], vertical_alignment="bottom")
    if dice_col.button("", icon=":material/casino:", help="New random seed", key=f"{prefix}_dice"):
        st.session_state[f"{prefix}_seed"] = random.randint(0, 99999)
    seed = seed_col.number_input(
        "Seed",
        min_value=0,
        max_value=2**31 - 1,
        step=1,
        key=f"{prefix}_seed",
        help="The same seed and settings always give the same image; image i of a batch uses seed + i.",
    )
    return int(seed), int(count)


def local_score_form(libraries: LibraryManager) -> tuple[LocalScoreEngine, LocalScoreRequest | None, str | None]:
    """Draw the form; return the engine, the request and an error message (if the request is not usable)."""
    infos = {info.name: info for info in libraries.list()}
    library = st.selectbox(
        "Library",
        list(infos),
        index=list(infos).index("faces") if "faces" in infos else 0,
        format_func=lambda n: f"{infos[n].title} ({infos[n].count} pictures)" if infos[n].built else infos[n].title,
        help="The pictures new images are assembled from. Add your own on the Libraries page.",
        key="gen_library",
    )
    machine = st.selectbox(
        "Machine",
        list(MACHINE_KINDS),
        index=list(MACHINE_KINDS).index("bbels"),
        format_func=lambda k: MACHINE_LABELS[k][0],
        help="How each pixel looks for matching patches. "
        + " ".join(f"**{v[0]}**: {v[1]}" for v in MACHINE_LABELS.values()),
        key="gen_machine",
    )
    preset = st.selectbox(
        "Locality",
        list(PRESETS),
        index=list(PRESETS).index("balanced") if "balanced" in PRESETS else 0,
        format_func=lambda p: p.replace("-", " ").capitalize(),
        help="How large the borrowed patches are. Smaller patches give more original mosaics.",
        key="gen_preset",
    )
    st.caption(PRESETS[preset])
    size = st.select_slider("Image size (pixels)", options=list(SIZES), value=32, key="gen_size")
    seed, count = seed_and_count("gen", MAX_COUNT, 2)
    label_options = ["Any"]
    info = infos[library]
    if info.label_names:
        label_options += ["Random class"] + list(info.label_names)
    label_choice = st.selectbox(
        "Class",
        label_options,
        key="gen_label",
        help="Restrict the library to one class (from sub-folder names) for each image.",
    )
    label = None if label_choice == "Any" else ("random" if label_choice == "Random class" else label_choice)
    approximate = st.toggle(
        "Fast draft (approximate)",
        key="gen_approximate",
        help="A quick draft, faster the larger the library (about 3× with the built-in faces, 5–6× with a few "
        "thousand images): once the layout is set, each pixel only looks at the library patches that resemble it "
        "most. The first draft with a library (and size) takes longer: the studio prepares that library once and "
        "keeps it ready for later drafts. It comes out very close to, but not exactly, the full image for the same "
        "seed. Its mosaic still shows where every pixel came from.",
    )
    with st.expander("Advanced"):
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
        cost = plan["cost"]
        exact_instead = request.approximate and not plan["approximate"]
        st.caption(describe_estimate(cost, exact_instead=exact_instead, preparing=plan["preparing"]))
    except MosaicError as err:
        return engine, None, str(err)
    return engine, request, None
