"""Creativity Lab: see for yourself that a diffusion model's output is a mosaic of library patches.

Plain words first (what each picture, number and table means); the machines' names, Pearson r, DDIM and the
patch-size presets are under the "How this is measured" and "Advanced" expanders.
"""

import streamlit as st
from PIL import Image

from core.errors import MosaicError
from core.html import md
from core.jobs import ACTIVE
from core.lab.calibrate import load_scales
from core.lab.compare import COLUMN_TITLES
from core.lab.demo import DEMO_MODEL_DIR, FASHION_MODEL_DIR
from core.lab.jobs import compare_params, describe_demo_model, load_lab_result, locality_params
from core.words import plural
from pages.parts.auth import current_access, explain_denied
from pages.parts.jobs import get_queue, latest, show_outcome, submit, watch
from pages.parts.lab_comparison import MACHINE_WORDS, show_comparison
from pages.parts.lab_locality import show_locality
from pages.parts.messages import show_problem
from pages.parts.shared import ensure_routed
from pages.parts.training_curve import show_training_curve

ensure_routed(__file__)

COMPARE_TILE = 128  # network and machine pictures of section 2, all the same size

st.title("Creativity Lab")
st.markdown(
    "Is a new image *really* new? Research by Kamb & Ganguli (ICML 2025) shows that image generators which look "
    "at a picture through small windows build every picture from **patches of their training pictures**. "
    "Try it here."
)


def _lab_job(key: str, experiment: str):
    """This session's Lab job of one experiment (or this browser's latest one, on a new visit)."""
    job_id = st.session_state.get(key)
    if job_id is None:
        found = latest("lab", experiment=experiment)
        job_id = found.id if found is not None else None
        st.session_state[key] = job_id
    if job_id is None:
        return None
    try:
        return get_queue().get(job_id)
    except MosaicError:
        return None


def _show_lab_job(job, key: str):
    """Progress while it runs; the outcome when it failed; its saved result when done."""
    if job is None:
        return None
    if job.state in ACTIVE:
        watch(job.id, key=key, show_preview=False)
        return None
    if job.state != "done":
        show_outcome(job)
        return None
    return load_lab_result(job)


def _square(path: str, side: int = COMPARE_TILE) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB").resize((side, side), Image.Resampling.NEAREST)


st.subheader("1 · Patch size: small patches make new pictures, whole-picture patches copy")
st.caption(
    "Same starting noise, same digit from the handwritten-digits library; only the size of the patches changes. "
    "Under each picture: its likeness to the closest library picture (1 = a copy)."
)
seed = st.number_input(
    "Starting noise (seed)",
    0,
    99999,
    7,
    key="lab_seed",
    help="The same number gives the same starting noise; change it to try other pictures.",
)
can_run = current_access().can("generate")
if not can_run:
    explain_denied(current_access(), "generate")
if st.button("Make one image per patch size", key="lab_locality", disabled=not can_run):
    job = submit("lab", locality_params(int(seed)), title=f"Lab: patch sizes, seed {int(seed)}")
    st.session_state["lab_locality_job"] = job.id
result = _show_lab_job(_lab_job("lab_locality_job", "locality"), "lab_locality")
show_locality((result or {}).get("rows", []))

st.subheader("2 · A trained network next to the patch machine")
try:
    info = describe_demo_model()
except MosaicError as err:
    show_problem(err)
    st.stop()
st.caption(
    f"A small image generator (a neural network) that this studio trained on the handwritten-digits library "
    f"({info['size']}×{info['size']} px pictures, {info['step']} rounds of training). The patch machine learned "
    "nothing: it has only the library and the patch sizes measured on the network."
)
count = st.slider("Pictures", 1, 8, 4, key="lab_count")
with st.expander("Advanced"):
    reference = st.toggle(
        "Authors' time grid",
        value=False,
        key="lab_reference_grid",
        help="Network and machine take the 19 steps of Kamb & Ganguli's code (from 95 % noise down to 5 %) "
        "instead of 20 even steps; for comparing with the paper's figures.",
    )
if st.button("Compare", type="primary", key="lab_compare", disabled=not can_run):
    params = compare_params(int(seed), int(count), "reference" if reference else "uniform")
    job = submit("lab", params, title=f"Lab: network vs machine, seed {int(seed)}")
    st.session_state["lab_compare_job"] = job.id
result = _show_lab_job(_lab_job("lab_compare_job", "compare"), "lab_compare")
compared = [row for row in (result or {}).get("rows", []) if row.get("network")]
for row in compared:
    # one row per picture pair; on a phone the pair stays side by side and the likeness wraps below
    with st.container(horizontal=True, gap="medium", vertical_alignment="center"):
        st.image(_square(row["network"]), caption=f"Network · digit {md(row.get('label') or '?')}", width=COMPARE_TILE)
        if row.get("machine"):
            st.image(_square(row["machine"]), caption="Patch machine", width=COMPARE_TILE)
        r = row.get("r")
        st.metric(
            "Likeness", f"{r:.2f}" if isinstance(r, (int, float)) else "–", help="1 = the same picture", width=160
        )
if compared:
    likeness = sorted(r for row in compared if isinstance(r := row.get("r"), (int, float)))
    reading = (
        "**How to read this:** in each row the network and the patch machine started from the same noise and "
        "digit. Likeness compares their two pictures pixel by pixel: 1 means the same picture, 0 means no "
        "relation — the closer to 1, the better the machine predicts the network."
    )
    if likeness:
        low, high = f"{likeness[0]:.2f}", f"{likeness[-1]:.2f}"
        spread = low if low == high else f"from {low} to {high}"
        reading += f" Here: {spread}, without the machine ever seeing the network's weights."
    st.markdown(reading)
    with st.expander("How this is measured"):
        try:
            kind = load_scales(DEMO_MODEL_DIR).kind
        except MosaicError:
            kind = "bbels"
        st.markdown(
            f"Network: a {md(info['model_kind'].upper())} of {info.get('parameters', 0):,} parameters trained for "
            f"{info['step']} steps on the *{md(info['library'])}* library. Patch machine: "
            f"{COLUMN_TITLES.get(kind, kind)} (“{MACHINE_WORDS.get(kind, kind).lower()}”) with the patch sizes "
            "calibrated on the network "
            f"({', '.join(str(p) for p in info.get('patch_sizes') or [])}). Both run the same deterministic DDIM "
            "sampler from the same noise and class. *Likeness* is the Pearson correlation r of the two pictures' "
            "pixels."
        )

st.subheader("3 · How well does each machine predict the network?")
show_comparison(DEMO_MODEL_DIR)

if (FASHION_MODEL_DIR / "comparison.json").is_file():
    st.subheader("4 · Clothing pictures: a network trained on this kind of computer")
    try:
        fashion = describe_demo_model(str(FASHION_MODEL_DIR))
    except MosaicError as err:
        show_problem(err)
    else:
        minutes = float(fashion.get("training_seconds") or 0) / 60
        took = f"about {plural(round(minutes), 'minute')}" if minutes < 90 else f"about {minutes / 60:.1f} hours"
        pictures = fashion.get("train_images")
        st.caption(
            f"A larger image generator, trained by this studio on "
            f"{f'{pictures:,}' if isinstance(pictures, int) else 'a few thousand'} pictures of clothing "
            f"({fashion['size']}×{fashion['size']} px) in {fashion['step']:,} rounds"
            + (f", {took} on an ordinary processor" if minutes >= 1 else "")
            + ". The same test as above, on many more pictures."
        )
        show_comparison(FASHION_MODEL_DIR)
        st.markdown("**How the network learned**")
        show_training_curve(FASHION_MODEL_DIR)
