"""Settings form of the Stable Diffusion engine (used by the Generate page)."""

from __future__ import annotations

import streamlit as st

from core.engines.sd import (
    FAMILIES,
    MEMORY_MODES,
    PRESETS,
    SCHEDULER_NAMES,
    SDRequest,
    StableDiffusionEngine,
    list_models,
    read_settings,
)
from core.engines.sd.request import MAX_COUNT
from core.errors import MosaicError
from core.html import md
from core.images import load_image
from core.roots import check_model_location
from pages._generate_local import seed_and_count

TASK_LABELS = {
    "txt2img": "From a text prompt",
    "img2img": "Vary an image",
    "inpaint": "Replace part of an image",
}
CUSTOM = "__custom__"


def reuse_settings_box() -> None:
    """Drop a PNG (this studio, AUTOMATIC1111, ComfyUI) to copy its settings into the form."""
    dropped = st.file_uploader(
        "Reuse settings from a PNG", type=["png"], key="sd_reuse", help="Made by this studio, AUTOMATIC1111 or ComfyUI."
    )
    if dropped is None or st.session_state.get("sd_reused") == dropped.file_id:
        return
    st.session_state["sd_reused"] = dropped.file_id
    try:
        settings = read_settings(dropped.getvalue())
    except MosaicError as err:
        st.error(md(err))
        return
    mapping = {"prompt": "sd_prompt", "negative_prompt": "sd_negative", "seed": "sd_seed"}
    for key, state_key in mapping.items():
        if settings.get(key) not in (None, ""):
            st.session_state[state_key] = int(settings[key]) if key == "seed" else str(settings[key])
    if settings.get("steps"):
        st.session_state["sd_steps"] = int(settings["steps"])
    if settings.get("guidance") is not None:
        st.session_state["sd_guidance"] = float(settings["guidance"])
    if settings.get("sampler") in SCHEDULER_NAMES:
        st.session_state["sd_scheduler"] = settings["sampler"]
    st.success(
        f"Settings copied from a {md(settings.get('source', 'PNG'))} image. Check the model and press Generate."
    )


def _image_upload(label: str, key: str):
    upload = st.file_uploader(label, type=["png", "jpg", "jpeg", "webp"], key=key)
    if upload is None:
        return None
    try:
        loaded = load_image(upload.getvalue(), upload.name)
    except MosaicError as err:
        st.error(md(err))
        return None
    for notice in loaded.notices:
        st.caption(md(notice))
    return loaded.image


def sd_form() -> tuple[StableDiffusionEngine, SDRequest | None, str | None]:
    """Draw the form; return the engine, the request and an error message (if the request is not usable)."""
    engine = StableDiffusionEngine()
    models = list_models()
    by_id = {m.id: m for m in models}
    options = [m.id for m in models] + [CUSTOM]

    def describe(model_id: str) -> str:
        if model_id == CUSTOM:
            return "Another folder, .safetensors file or Hugging Face id…"
        entry = by_id[model_id]
        return entry.title + ("" if entry.available else " (download needed)")

    model_id = st.selectbox("Model", options, format_func=describe, key="sd_model")
    entry = by_id.get(model_id)
    location_problem = None
    if model_id == CUSTOM:
        typed = st.text_input(
            "Model location",
            key="sd_model_custom",
            placeholder="/models/my-model.safetensors",
            help="A Hugging Face model id, or a folder or .safetensors file inside the studio's data folder "
            "or a folder your administrator allows (MOSAIC_ALLOWED_FOLDERS).",
        )
        try:
            model = check_model_location(typed)
        except MosaicError as err:
            model, location_problem = "", str(err)
    else:
        model = model_id
        if entry is not None and entry.description:
            st.caption(md(entry.description))
    family = FAMILIES.get(entry.family) if entry is not None and entry.family else None

    task = st.radio("What to do", list(TASK_LABELS), format_func=TASK_LABELS.get, horizontal=True, key="sd_task")
    prompt = st.text_area("Describe the image", key="sd_prompt", placeholder="a red sneaker on a pastel background")
    negative = st.text_input("Avoid", key="sd_negative", placeholder="blurry, text, watermark")
    preset = st.radio("Speed", list(PRESETS), index=PRESETS.index("balanced"), horizontal=True, key="sd_preset")
    width = height = None
    if family is not None:
        sizes = {f"{name} {w}×{h}": (w, h) for name, w, h in family.sizes}
        choice = st.selectbox("Size", list(sizes), key="sd_size")
        width, height = sizes[choice]
    init_image = mask_image = None
    strength = 0.75
    if task in ("img2img", "inpaint"):
        init_image = _image_upload("Starting image", "sd_init")
        strength = st.slider("How much to change", 0.05, 1.0, 0.75, 0.05, key="sd_strength")
    if task == "inpaint":
        mask_image = _image_upload("Mask (white = replace)", "sd_mask")
    seed, count = seed_and_count("sd", MAX_COUNT, 1)
    with st.expander("Advanced"):
        steps = st.number_input("Steps (0 = recommended)", 0, 150, 0, key="sd_steps")
        guidance = st.number_input("Guidance (-1 = recommended)", -1.0, 30.0, -1.0, 0.5, key="sd_guidance")
        scheduler = st.selectbox("Scheduler", ["recommended", *SCHEDULER_NAMES], key="sd_scheduler")
        memory = st.selectbox("Memory", list(MEMORY_MODES), key="sd_memory")
        hint = "Size above" if family is not None else "model default"
        width = st.number_input(f"Width (0 = {hint})", 0, 2048, 0, 8, key="sd_width") or width
        height = st.number_input(f"Height (0 = {hint})", 0, 2048, 0, 8, key="sd_height") or height
    request = SDRequest(
        seed=seed,
        count=count,
        model=str(model or ""),
        task=task,
        prompt=prompt,
        negative_prompt=negative,
        steps=int(steps) or None,
        guidance=None if guidance < 0 else float(guidance),
        width=width,
        height=height,
        scheduler=None if scheduler == "recommended" else scheduler,
        strength=float(strength),
        init_image=init_image,
        mask_image=mask_image,
        preset=preset,
        memory=memory,
    )
    if location_problem:
        return engine, None, location_problem
    try:
        request.validate()
    except MosaicError as err:
        return engine, None, str(err)
    # a curated model that is not downloaded yet downloads on first use (with progress), or says what to do offline
    return engine, request, None
