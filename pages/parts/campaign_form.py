"""The "New campaign" form of the Campaigns page: template, its fields, engine, channels, preview."""

from __future__ import annotations

import random
from typing import Any

import streamlit as st

from core.campaigns import LOCAL_SCORE, SD, CampaignPlan, plan_campaign
from core.errors import MosaicError
from core.html import md, swatches
from core.libraries import LibraryManager
from core.roots import check_model_location
from core.score import PRESETS
from core.templates import CHANNELS, BrandKit, Template, TemplateLibrary
from core.templates.formats import LOCAL_SCORE_SIZES
from core.templates.schema import MAX_SEEDS
from pages.parts.messages import show_problem
from pages.parts.shared import library_label

ENGINES = {
    LOCAL_SCORE: "Offline: assemble pictures from a library (no download, works anywhere)",
    SD: "Stable Diffusion: pictures from your words (needs an AI model)",
}
CUSTOM_MODEL = "__custom__"
#: the size of the pieces each piece-size preset of the offline option uses, in words
PIECE_WORDS = {"fine": "small", "balanced": "medium", "fashion-unet": "medium", "coarse": "large",
               "whole-image": "whole-picture"}
NONE_CHOICE = "(none)"


def template_label(template: Template) -> str:
    mine = "" if template.builtin else " (yours)"
    return f"{template.name}{mine}"


def pick_template(library: TemplateLibrary) -> Template | None:
    templates = {t.id: t for t in library.list()}
    if not templates:
        show_problem("No campaign templates were found. Ask whoever set up the studio to check it.",
                     detail="The templates folder holds no readable template (core/templates).")
        return None
    for problem in library.problems():
        st.warning(f"One of your templates cannot be used until it is fixed: {md(problem)}")
    ids = list(templates)
    if st.session_state.get("camp_template") not in templates:
        st.session_state["camp_template"] = "marketing-variations" if "marketing-variations" in templates else ids[0]
    template_id = st.selectbox(
        "Template",
        ids,
        format_func=lambda tid: template_label(templates[tid]),  # its purpose is said under the box
        key="camp_template",
        help="A template is a ready-made brief: what you fill in, the looks (styles) and where the images go.",
    )
    template = templates[template_id]
    st.caption(md(template.purpose))
    return template


def field_widgets(template: Template) -> dict[str, Any]:
    """One widget per template field; returns the raw values (checked later by plan_campaign)."""
    values: dict[str, Any] = {}
    for item in template.fields:
        key = f"camp_f_{template.id}_{item.key}"
        label = md(item.label) + (" *" if item.required else "")
        help_text = md(item.help) if item.help else None
        default = item.default
        if item.type == "text":
            values[item.key] = st.text_input(label, value=default or "", key=key, help=help_text, max_chars=2000)
        elif item.type == "longtext":
            values[item.key] = st.text_area(label, value=default or "", key=key, help=help_text, max_chars=2000)
        elif item.type == "choice":
            options = list(item.choices) if item.required or default else [NONE_CHOICE, *item.choices]
            index = options.index(default) if default in options else 0
            choice = st.selectbox(label, options, index=index, key=key, help=help_text)
            values[item.key] = None if choice == NONE_CHOICE else choice
        elif item.type == "number":
            values[item.key] = st.number_input(
                label,
                min_value=item.min,
                max_value=item.max,
                value=default if default is not None else None,
                key=key,
                help=help_text,
                placeholder="leave empty to skip" if not item.required else None,
            )
        elif item.type == "color":
            text = st.text_input(
                label,
                value=default or "",
                key=key,
                help=(help_text or "") + " A colour name (navy) or a hex code (#1B2A4A).",
                placeholder="navy or #1B2A4A",
            )
            values[item.key] = text
            if text.strip():
                st.markdown(swatches([text]), unsafe_allow_html=True)
        elif item.type == "colors":
            default_text = ", ".join(default) if isinstance(default, list) else (default or "")
            text = st.text_input(
                label,
                value=default_text,
                key=key,
                help=(help_text or "") + " Colour names or hex codes, separated by commas.",
                placeholder="navy, #FF7F50",
            )
            values[item.key] = text
            if text.strip():
                st.markdown(swatches(text.split(",")), unsafe_allow_html=True)
        else:  # a type this page does not know yet: plain text
            values[item.key] = st.text_input(label, key=key, help=help_text)
    return values


def engine_settings(template: Template, libraries: LibraryManager, kit: BrandKit) -> tuple[str, dict[str, Any]]:
    """The engine choice and its settings (keyword arguments of plan_campaign)."""
    engine = st.radio(
        "How to make the images",
        list(ENGINES),
        format_func=ENGINES.get,
        key="camp_engine",
    )
    settings: dict[str, Any] = {}
    if engine == LOCAL_SCORE:
        hints = template.engine_hints.get("local_score", {})
        presets = list(hints.get("presets") or ["balanced"])
        styles = [s.name for s in template.variations.styles]
        sizes = [PIECE_WORDS.get(presets[i % len(presets)], "medium") for i in range(len(styles))]
        varies = ", ".join(f"{md(name)} → {size} pieces" for name, size in zip(styles, sizes, strict=True))
        st.info(
            "**This option has no text model.** It cannot read your words: it builds each picture from small "
            "pieces of the pictures in a library. Your text is kept with the images as the brief (and used "
            "if you later switch to Stable Diffusion).\n\n"
            f"**What changes between images:** the size of the pieces for each look ({varies}) and the random "
            "seed. Images are square and small — good for quick drafts and for checking originality."
        )
        infos = {info.name: info for info in libraries.list()}
        names = list(infos)
        preferred = kit.library if kit.library in infos else hints.get("library")
        if st.session_state.get("camp_library") not in infos:
            st.session_state["camp_library"] = (
                preferred if preferred in infos else ("faces" if "faces" in infos else names[0])
            )
        settings["library"] = st.selectbox(
            "Library the pictures are made from",
            names,
            format_func=lambda n: library_label(infos[n]),
            key="camp_library",
            help="Add your own on the Libraries page. The brand kit can set your default.",
        )
        size = local_size_default(hints)
        settings["size"] = st.select_slider(
            "Image size (pixels)", options=list(LOCAL_SCORE_SIZES), value=size, key="camp_size"
        )
        with st.expander("Advanced"):
            settings["steps"] = st.slider(
                "Steps (more = slower, a little cleaner)",
                2,
                60,
                int(hints.get("steps", 20)),
                key="camp_steps",
                help="How many rounds each picture is refined in. The default suits most campaigns.",
            )
            st.caption(
                "Piece sizes of the looks: "
                + " · ".join(f"**{md(preset)}**: {md(PRESETS[preset])}" for preset in presets if preset in PRESETS)
            )
    else:
        model, family = sd_model_picker()
        settings["model"] = model
        if family:
            settings["family"] = family
        with st.expander("Advanced"):
            steps = st.number_input("Steps (0 = recommended for the model)", 0, 150, 0, key="camp_sd_steps")
            settings["steps"] = int(steps) or None
            settings["scale"] = st.slider(
                "Draft size (1 = full size; smaller is faster)", 0.1, 1.0, 1.0, 0.05, key="camp_scale"
            )
    return engine, settings


def local_size_default(hints: dict[str, Any]) -> int:
    size = hints.get("size", 32)
    return size if size in LOCAL_SCORE_SIZES else 32


def sd_model_picker() -> tuple[str, str | None]:
    """Model select box from the models on this computer and the curated list."""
    try:
        from core.engines.sd import list_models

        models = list_models()
    except Exception as err:  # SD not installed or the models folder unreadable
        show_problem("Stable Diffusion is not available in this studio. Use the offline option instead.",
                     detail=f"{type(err).__name__}: {err}")
        return "", None
    by_id = {m.id: m for m in models}

    def describe(model_id: str) -> str:
        if model_id == CUSTOM_MODEL:
            return "Another folder, .safetensors file or Hugging Face id…"
        entry = by_id[model_id]
        return entry.title + ("" if entry.available else " (download needed)")

    model_id = st.selectbox("AI model", [*by_id, CUSTOM_MODEL], format_func=describe, key="camp_model")
    if model_id == CUSTOM_MODEL:
        typed = st.text_input(
            "Model location",
            key="camp_model_custom",
            placeholder="/models/my-model.safetensors",
            help="A model name from Hugging Face, or a model folder or .safetensors file in the studio's data "
            "folder or in a folder your administrator allows.",
        )
        try:
            return check_model_location(typed), None
        except MosaicError as err:
            show_problem(err)
            return "", None
    entry = by_id[model_id]
    if entry.description:
        st.caption(md(entry.description))
    return model_id, getattr(entry, "family", None) or None


def variation_settings(template: Template) -> dict[str, Any]:
    """Channels, styles and how many images per style."""
    channels = st.multiselect(
        "Where the images go (channels)",
        list(template.channels),
        default=list(template.channels),
        format_func=lambda key: CHANNELS[key].label if key in CHANNELS else key,
        key=f"camp_channels_{template.id}",
    )
    styles = st.multiselect(
        "Looks (styles)",
        [s.name for s in template.variations.styles],
        default=[s.name for s in template.variations.styles],
        key=f"camp_styles_{template.id}",
    )
    seeds = st.number_input(
        "Images per look and channel (different random seeds)",
        1,
        MAX_SEEDS,
        int(template.variations.seeds),
        key=f"camp_seeds_{template.id}",
    )
    return {"channels": channels, "styles": styles, "seeds": int(seeds)}


def make_plan(
    template: Template,
    values: dict[str, Any],
    engine: str,
    settings: dict[str, Any],
    variations: dict[str, Any],
    kit: BrandKit,
    name: str,
) -> tuple[CampaignPlan | None, str | None]:
    """The plan, or a plain error message."""
    if not variations["channels"]:
        return None, "Choose at least one channel."
    if not variations["styles"]:
        return None, "Choose at least one look (style)."
    if engine == SD and not settings.get("model"):
        return None, "Choose an AI model (or use the offline option)."
    try:
        plan = plan_campaign(
            template,
            values,
            engine=engine,
            brand_kit=None if kit.is_empty else kit,
            name=name or None,
            seed=int(st.session_state.setdefault("camp_seed", random.randint(0, 99999))),
            **variations,
            **settings,
        )
    except MosaicError as err:
        return None, str(err)
    except (TypeError, ValueError) as err:  # a widget value of the wrong kind: still a clear message
        return None, f"Please check your entries: {err}"
    return plan, None


def preview_table(plan: CampaignPlan) -> list[dict[str, Any]]:
    used = all(v.prompt_used for v in plan.variations)
    prompt_column = "Prompt" if used else "Brief (kept, not read by this engine)"
    rows = []
    for v in plan.variations:
        row = {
            "#": v.index + 1,
            "Channel": v.channel_label,
            "Size (px)": f"{v.width}×{v.height}",
            "Look": v.style,
            "Seed": v.seed,
            prompt_column: v.prompt,
        }
        if used:
            row["Avoid"] = v.negative_prompt
        rows.append(row)
    return rows
