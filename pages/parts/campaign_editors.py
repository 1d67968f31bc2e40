"""Template editor (YAML) and brand kit editor of the Campaigns page."""

from __future__ import annotations

import re

import streamlit as st

from core.errors import MosaicError
from core.html import md, swatches
from core.libraries import LibraryManager
from core.templates import BrandKit, TemplateLibrary, dump_template, load_brand_kit, save_brand_kit
from pages.parts.auth import current_access, current_workspace, explain_denied
from pages.parts.messages import show_problem

NO_LIBRARY = "__none__"


# ---------------------------------------------------------------------------------------- templates
def _load_into_editor(library: TemplateLibrary) -> None:
    """Callback: put a copy of the chosen template (or the user's own template itself) in the editor."""
    source = st.session_state.get("camp_tpl_source")
    try:
        if library.is_builtin(source):
            template = library.duplicate(source)
        else:
            template = library.get(source)
    except MosaicError as err:
        st.session_state["camp_tpl_message"] = ("error", md(err))
        return
    st.session_state["camp_tpl_yaml"] = dump_template(template)
    st.session_state["camp_tpl_id"] = template.id
    st.session_state["camp_tpl_message"] = (
        "info",
        f"Editing **{md(template.name)}**. Change it below and press **Save as my template**.",
    )


def template_editor(library: TemplateLibrary) -> None:
    if not current_access().can("edit"):
        explain_denied(current_access(), "edit")
        return
    st.markdown(
        "Make a template your own: copy one, change the words, looks (styles) or channels, and save it. "
        "Built-in templates stay as they are; your copies appear in the template list with “(yours)”."
    )
    templates = {t.id: t for t in library.list()}
    for problem in library.problems():
        st.warning(md(problem))
    if not templates:
        st.error("No templates found.")
        return
    pick, load = st.columns([3, 1], vertical_alignment="bottom")
    source = pick.selectbox(
        "Start from",
        list(templates),
        format_func=lambda tid: templates[tid].name + ("" if templates[tid].builtin else " (yours)"),
        key="camp_tpl_source",
    )
    label = "Copy into the editor" if templates[source].builtin else "Open in the editor"
    load.button(label, key="camp_tpl_load", on_click=_load_into_editor, args=(library,), icon=":material/edit:")
    message = st.session_state.pop("camp_tpl_message", None)
    if message:
        (st.error if message[0] == "error" else st.info)(message[1])
    st.text_input(
        "Short name of your template (lower-case letters, digits and dashes)",
        key="camp_tpl_id",
        placeholder="my-spring-posts",
    )
    st.text_area(
        "Template (YAML)",
        key="camp_tpl_yaml",
        height=420,
        placeholder="Press “Copy into the editor” to start from an existing template.",
    )
    with st.expander("How to write a template"):
        st.markdown(
            "- **fields**: what people fill in. `type` is one of text, longtext, choice, number, color, colors.\n"
            "- **prompt**: the sentence sent to the AI; `{product}` is replaced by the field with key `product`; "
            "`{style}` by the look. A part inside `[[ … ]]` disappears when its field is empty.\n"
            "- **channels**: square, feed, story, banner, hero.\n"
            "- **variations**: the looks (styles), how many images per look (`seeds`) and the guidance values.\n"
            "If something is wrong, the message names the line's field, e.g. `fields[1].type`."
        )
    if st.button("Save as my template", type="primary", key="camp_tpl_save", icon=":material/save:"):
        template_id = (st.session_state.get("camp_tpl_id") or "").strip()
        text = st.session_state.get("camp_tpl_yaml") or ""
        if not text.strip():
            st.error("The template is empty. Press “Copy into the editor” first, then edit it.")
        elif not template_id:
            st.error("Give your template a short name (for example my-spring-posts).")
        else:
            try:
                saved = library.save_text(text, template_id)
            except MosaicError as err:  # TemplateError names the field; the text stays in the box
                show_problem(f"Not saved — {err}", detail=err.detail)
            else:
                st.success(f"Saved **{md(saved.name)}**. Choose it under **New campaign**.")


# ---------------------------------------------------------------------------------------- brand kit
def _split_words(text: str) -> list[str]:
    return [w.strip() for w in re.split(r"[\n,]", text or "") if w.strip()]


def _add_colour() -> None:
    colour = st.session_state.get("camp_kit_picker") or ""
    current = _split_words(st.session_state.get("camp_kit_palette", ""))
    if colour and colour.upper() not in [c.upper() for c in current]:
        current.append(colour.upper())
    st.session_state["camp_kit_palette"] = ", ".join(current)


def _init_kit_state() -> None:
    if st.session_state.get("camp_kit_loaded") == current_workspace():
        return
    try:
        kit = load_brand_kit(current_workspace())
    except MosaicError as err:
        st.session_state["camp_kit_message"] = (
            f"Your saved brand kit could not be read ({md(err)}). Fix it and save again."
        )
        kit = BrandKit()
    st.session_state["camp_kit_name"] = kit.name
    st.session_state["camp_kit_palette"] = ", ".join(kit.palette)
    st.session_state["camp_kit_must"] = "\n".join(kit.must_use)
    st.session_state["camp_kit_avoid"] = "\n".join(kit.avoid)
    st.session_state["camp_kit_library"] = kit.library or NO_LIBRARY
    st.session_state["camp_kit_loaded"] = current_workspace()


def current_kit() -> BrandKit:
    """The saved brand kit (an empty one, with an error shown, if the file is broken)."""
    try:
        return load_brand_kit(current_workspace())
    except MosaicError as err:
        show_problem("Your saved brand kit could not be read, so it is not applied. Open “Brand kit”, check it and "
                     "save it again.", detail=str(err) + (f"\n{err.detail}" if err.detail else ""))
        return BrandKit()


def brand_kit_editor(libraries: LibraryManager) -> None:
    if not current_access().can("edit"):
        explain_denied(current_access(), "edit")
        return
    st.markdown(
        "Your brand rules, added to **every** campaign: colours and words to always use go into each prompt, "
        "words to avoid into the “avoid” list. The library is the default for the offline engine and the "
        "originality check."
    )
    _init_kit_state()
    message = st.session_state.pop("camp_kit_message", None)
    if message:
        st.error(message)
    st.text_input("Brand name", key="camp_kit_name", max_chars=80)
    colours, pick, add = st.columns([6, 1, 1], vertical_alignment="bottom")
    palette = colours.text_input(
        "Palette (hex colours such as #1B2A4A, or names; comma-separated)",
        key="camp_kit_palette",
        placeholder="#1B2A4A, #FF7F50",
    )
    pick.color_picker("Or pick one", "#FF7F50", key="camp_kit_picker")
    add.button("Add colour", key="camp_kit_add", on_click=_add_colour)
    if palette.strip():
        st.markdown(swatches(_split_words(palette)), unsafe_allow_html=True)
    must, avoid = st.columns(2)
    must.text_area("Words to always use (one per line)", key="camp_kit_must", placeholder="e.g. handmade")
    avoid.text_area("Words to avoid (one per line)", key="camp_kit_avoid", placeholder="e.g. plastic")
    infos = {info.name: info for info in libraries.list()}
    options = [NO_LIBRARY, *infos]
    if st.session_state.get("camp_kit_library") not in options:
        st.session_state["camp_kit_library"] = NO_LIBRARY
    st.selectbox(
        "Default reference library",
        options,
        format_func=lambda n: "(none: use each template's own)" if n == NO_LIBRARY else infos[n].title,
        key="camp_kit_library",
    )
    if st.button("Save brand kit", type="primary", key="camp_kit_save", icon=":material/save:"):
        library = st.session_state.get("camp_kit_library")
        data = {
            "name": st.session_state.get("camp_kit_name", ""),
            "palette": _split_words(st.session_state.get("camp_kit_palette", "")),
            "must_use": _split_words(st.session_state.get("camp_kit_must", "")),
            "avoid": _split_words(st.session_state.get("camp_kit_avoid", "")),
            "library": None if library == NO_LIBRARY else library,
        }
        try:
            saved = save_brand_kit(data, current_workspace())
        except MosaicError as err:
            show_problem(f"Not saved — {err}", detail=err.detail)
        else:
            st.success("Brand kit saved. It is applied to every new campaign.")
            if saved.palette:
                st.caption(f"Prompts will say: “{md(saved.palette_words())}”.")
