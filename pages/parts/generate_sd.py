"""Settings form of the Stable Diffusion engine (used by the Generate page).

Plain choices up front (model, what to do, prompt, size, how many); the technical knobs (steps, guidance,
scheduler, memory, seed) under "Advanced". Every widget takes its value from Session State only (defaults
are written there before the widgets are drawn, never passed as ``value=``/``index=``), so "Reuse settings"
can fill any of them without Streamlit's "default value and Session State" warning.
"""

from __future__ import annotations

import streamlit as st

from core.engines.sd import (
    FAMILIES,
    MEMORY_MODES,
    PRESETS,
    SCHEDULER_NAMES,
    SDRequest,
    StableDiffusionEngine,
    hub,
    list_models,
    read_settings,
)
from core.engines.sd.request import MAX_COUNT
from core.engines.sd.schedulers import canonical_name
from core.engines.sd.sources import ModelEntry
from core.errors import MosaicError
from core.images import load_image
from core.roots import check_model_location
from pages.parts.generate_local import count_slider, seed_input
from pages.parts.messages import show_problem

TASK_LABELS = {
    "txt2img": "From a text prompt",
    "img2img": "Vary an image",
    "inpaint": "Replace part of an image",
}
PRESET_LABELS = {"fast": "Fast", "balanced": "Balanced", "quality": "Best quality"}
MEMORY_LABELS = {
    "auto": "Automatic",
    "fast": "Fastest (most memory)",
    "balanced": "Balanced",
    "low": "Least memory (slowest)",
}
SOURCE_WORDS = {"mosaic": "this studio", "a1111": "AUTOMATIC1111", "comfyui": "ComfyUI"}
CUSTOM = "__custom__"
#: the Size choices besides a family's sizes ("512x768"): the model's own size, or width and height typed in
AUTO_SIZE, CUSTOM_SIZE = "auto", "custom"
RECOMMENDED = "recommended"
EMPTY_PROMPT_HINT = (
    "Describe the image you want first: a few words are enough, for example "
    "“a red sneaker on a pastel background”."
)

#: every setting of the form and its default (written into Session State before the widgets are drawn)
DEFAULTS: dict[str, object] = {
    "sd_task": "txt2img",
    "sd_prompt": "",
    "sd_negative": "",
    "sd_preset": "balanced",
    "sd_width": 512,
    "sd_height": 512,
    "sd_strength": 0.75,
    "sd_count": 1,
    "sd_seed": 0,
    "sd_steps": 0,
    "sd_guidance": -1.0,
    "sd_scheduler": RECOMMENDED,
    "sd_memory": "auto",
}


def _size_key(width: int, height: int) -> str:
    return f"{int(width)}x{int(height)}"


def _entry_for(models: list[ModelEntry], name: str | None) -> ModelEntry | None:
    """The model of the list that ``name`` (an id, a folder or file location, a title) refers to."""
    if not name:
        return None
    text = str(name).strip().lower()
    for entry in models:
        if text in (entry.id.lower(), entry.title.lower(), (entry.location or "").lower()):
            return entry
    return None


def _on_grid(value: int) -> int:
    """A side length the form accepts: a multiple of 8 within 64-2048 px."""
    return max(64, min(2048, int(round(int(value) / 8)) * 8))


def apply_settings(settings: dict, models: list[ModelEntry]) -> list[str]:
    """Copy the settings read from a PNG into the form's Session State; returns what the person should know."""
    state = st.session_state
    notes: list[str] = []
    extra = settings.get("extra") or {}
    state["sd_prompt"] = str(settings.get("prompt") or "")
    state["sd_negative"] = str(settings.get("negative_prompt") or "")
    if settings.get("seed") is not None:
        state["sd_seed"] = max(0, min(2**32 - 1, int(settings["seed"])))
    state["sd_steps"] = max(0, min(150, int(settings.get("steps") or 0)))
    guidance = settings.get("guidance")
    state["sd_guidance"] = -1.0 if guidance is None else max(0.0, min(30.0, float(guidance)))
    sampler = settings.get("sampler")
    try:
        state["sd_scheduler"] = canonical_name(str(sampler)) if sampler else RECOMMENDED
    except MosaicError:
        state["sd_scheduler"] = RECOMMENDED
        notes.append(f"Its sampler ({sampler}) is not one the studio has; the model's recommended one is used.")
    if state["sd_scheduler"] not in SCHEDULER_NAMES:
        state["sd_scheduler"] = RECOMMENDED
    task = str(extra.get("task") or "txt2img")
    state["sd_task"] = task if task in TASK_LABELS else "txt2img"
    if state["sd_task"] != "txt2img":
        if extra.get("strength") is not None:
            state["sd_strength"] = max(0.05, min(1.0, round(float(extra["strength"]) * 20) / 20))
        notes.append("Add the starting image again: a picture's settings do not include the image it started from.")
    if extra.get("speed_preset") in PRESETS:
        state["sd_preset"] = extra["speed_preset"]
    model_name = extra.get("model_source") or settings.get("model")
    entry = _entry_for(models, model_name) or _entry_for(models, settings.get("model"))
    if entry is not None:
        state["sd_model"] = entry.id
    elif settings.get("model"):
        notes.append(f"The model it was made with ({settings['model']}) is not on this computer: choose one.")
    width, height = settings.get("width"), settings.get("height")
    if width and height:
        current = entry or _entry_for(models, state.get("sd_model"))
        family = FAMILIES.get(current.family) if current is not None and current.family else None
        sizes = {_size_key(w, h) for _, w, h in family.sizes} if family is not None else set()
        state["sd_width"], state["sd_height"] = _on_grid(width), _on_grid(height)
        key = _size_key(width, height)
        state["sd_size"] = key if key in sizes else CUSTOM_SIZE
    return notes


def reuse_settings_box() -> None:
    """Drop a PNG (this studio, AUTOMATIC1111, ComfyUI) to copy its settings into the form.

    Call it before :func:`sd_form`: it only writes Session State, which the form's widgets then show.
    """
    with st.expander("Reuse the settings of an image"):
        dropped = st.file_uploader(
            "Drop a PNG made by this studio, AUTOMATIC1111 or ComfyUI",
            type=["png"],
            key="sd_reuse",
            help="Copies its model, prompt, size, seed and every other setting into the form below.",
        )
        if dropped is None:
            return
        if st.session_state.get("sd_reused") != dropped.file_id:
            st.session_state["sd_reused"] = dropped.file_id
            try:
                settings = read_settings(dropped.getvalue())
            except MosaicError as err:
                st.session_state["sd_reuse_outcome"] = (str(err), [], True)
            else:
                notes = apply_settings(settings, list_models())
                source = SOURCE_WORDS.get(str(settings.get("source")), "another program")
                message = f"Settings copied from an image made by {source}. Check them and press Generate."
                st.session_state["sd_reuse_outcome"] = (message, notes, False)
        message, notes, failed = st.session_state.get("sd_reuse_outcome", ("", [], False))
        if failed:
            show_problem(message, kind="warning")
        elif message:
            st.success(message, icon=":material/check_circle:")
            for note in notes:
                st.caption(note)


def _image_upload(label: str, key: str):
    upload = st.file_uploader(label, type=["png", "jpg", "jpeg", "webp"], key=key)
    if upload is None:
        return None
    try:
        loaded = load_image(upload.getvalue(), upload.name)
    except MosaicError as err:
        show_problem(err)
        return None
    for notice in loaded.notices:
        st.caption(notice)
    return loaded.image


def _size_options(family) -> dict[str, str]:
    """Size choices: the family's own sizes ("Square 512×512"), else the model's own size; then a custom size."""
    if family is not None:
        options = {_size_key(w, h): f"{name} {w}×{h}" for name, w, h in family.sizes}
    else:
        options = {AUTO_SIZE: "The model's own size"}
    options[CUSTOM_SIZE] = "Custom size…"
    return options


def sd_form() -> tuple[StableDiffusionEngine, SDRequest | None]:
    """Draw the form (its problems and hints right above the button); return the engine and the request,
    or ``None`` when it cannot be run yet."""
    state = st.session_state
    for key, value in DEFAULTS.items():
        if key not in state:
            state[key] = value
    engine = StableDiffusionEngine()
    models = list_models()
    by_id = {m.id: m for m in models}
    options = [m.id for m in models] + [CUSTOM]
    if state.get("sd_model") not in options:
        state["sd_model"] = options[0]

    def describe(model_id: str) -> str:
        if model_id == CUSTOM:
            return "Another model (folder, file or Hugging Face name)…"
        entry = by_id[model_id]
        return entry.title + ("" if entry.available else " (download needed)")

    model_id = st.selectbox(
        "Model", options, format_func=describe, key="sd_model",
        help="The AI model that paints the image. Models marked “download needed” are fetched the first time.",
    )
    entry = by_id.get(model_id)
    problem: MosaicError | str | None = None
    if model_id == CUSTOM:
        typed = st.text_input(
            "Model location",
            key="sd_model_custom",
            placeholder="stabilityai/sdxl-turbo or my-model.safetensors",
            help="A Hugging Face model name, or a model folder or .safetensors file saved in the studio's models "
            "folder (or another folder whoever sets up the studio allows).",
        )
        try:
            model = check_model_location(typed)
        except MosaicError as err:
            model, problem = "", err
    else:
        model = model_id
        if entry is not None and entry.description:
            st.caption(entry.description)
        if entry is not None and not entry.available and hub.is_offline():
            problem = hub.offline_error(entry.id)
    family = FAMILIES.get(entry.family) if entry is not None and entry.family else None

    task = st.radio("What to do", list(TASK_LABELS), format_func=TASK_LABELS.get, horizontal=True, key="sd_task")
    init_image = mask_image = None
    if task in ("img2img", "inpaint"):
        init_image = _image_upload("Starting image", "sd_init")
    if task == "inpaint":
        mask_image = _image_upload("Mask (white = replace)", "sd_mask")
    prompt = st.text_area("Describe the image", key="sd_prompt", placeholder="a red sneaker on a pastel background")
    negative = st.text_input("Avoid (optional)", key="sd_negative", placeholder="blurry, text, watermark")
    sizes = _size_options(family)
    if state.get("sd_size") not in sizes:  # a new model: its own first size
        state["sd_size"] = next(iter(sizes))
    size = st.selectbox("Size", list(sizes), format_func=sizes.get, key="sd_size")
    width = height = None
    if size == CUSTOM_SIZE:
        wcol, hcol = st.columns(2)
        width = int(wcol.number_input("Width (pixels)", 64, 2048, step=8, key="sd_width"))
        height = int(hcol.number_input("Height (pixels)", 64, 2048, step=8, key="sd_height"))
    elif size != AUTO_SIZE:
        width, height = (int(side) for side in size.split("x"))
    strength = 0.75
    if task in ("img2img", "inpaint"):
        strength = st.slider("How much to change", 0.05, 1.0, step=0.05, key="sd_strength")
    preset = st.radio(
        "Speed", list(PRESETS), format_func=lambda p: PRESET_LABELS.get(p, p.capitalize()), horizontal=True,
        key="sd_preset",
    )
    count = count_slider("sd", MAX_COUNT)
    with st.expander("Advanced"):
        seed = seed_input("sd")
        steps = st.number_input("Steps (0 = recommended)", 0, 150, step=1, key="sd_steps")
        guidance = st.number_input("Guidance (-1 = recommended)", -1.0, 30.0, step=0.5, key="sd_guidance")
        scheduler = st.selectbox("Scheduler", [RECOMMENDED, *SCHEDULER_NAMES], key="sd_scheduler")
        memory = st.selectbox(
            "Memory", list(MEMORY_MODES), format_func=lambda m: MEMORY_LABELS.get(m, m), key="sd_memory"
        )
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
        scheduler=None if scheduler == RECOMMENDED else scheduler,
        strength=float(strength),
        init_image=init_image,
        mask_image=mask_image,
        preset=preset,
        memory=memory,
    )
    needs_upload = (task in ("img2img", "inpaint") and init_image is None) or (task == "inpaint" and mask_image is None)
    if problem is None and not needs_upload:
        try:
            request.validate()
        except MosaicError as err:
            problem = err
    if problem is not None:
        show_problem(problem)
        return engine, None
    if task in ("img2img", "inpaint") and init_image is None:
        st.info("Add the starting image above first.", icon=":material/add_photo_alternate:")
        return engine, None
    if task == "inpaint" and mask_image is None:
        st.info("Add the mask above first: white where the image should change.", icon=":material/brush:")
        return engine, None
    if not prompt.strip():
        st.info(EMPTY_PROMPT_HINT, icon=":material/edit:")
        return engine, None
    # a curated model that is not downloaded yet downloads on first use (with progress)
    return engine, request
