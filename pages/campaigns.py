"""Campaigns: fill in a template, preview the images it will make, generate them all, compare, export."""

import random

import streamlit as st

from core.campaigns import LOCAL_SCORE, CampaignStore
from core.errors import MosaicError
from core.html import md
from pages.parts.auth import current_access, explain_denied
from pages.parts.campaign_editors import brand_kit_editor, current_kit, template_editor
from pages.parts.campaign_form import (
    engine_settings,
    field_widgets,
    make_plan,
    pick_template,
    preview_table,
    variation_settings,
)
from pages.parts.campaign_results import _analysis_choice, pick_campaign, run_with_progress, show_campaign
from pages.parts.messages import show_problem
from pages.parts.shared import ensure_routed, get_libraries, get_store, get_templates

ensure_routed(__file__)

VIEWS = {
    "new": "1 · New campaign",
    "results": "2 · Results & export",
    "templates": "Templates",
    "brand": "Brand kit",
}


def library_ready(libraries, name: str | None) -> bool:
    """Whether library ``name`` is prepared (a built-in one is made the first time it is used)."""
    try:
        return bool(name) and libraries.get(name).built
    except MosaicError:
        return False


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min"


# a view or campaign chosen by the previous run (widget values can only be set before the widget is drawn)
for pending, target in (("camp_goto_view", "camp_view"), ("camp_goto_campaign", "camp_open")):
    if pending in st.session_state:
        st.session_state[target] = st.session_state.pop(pending)

st.title("Campaigns")
st.caption(
    "A campaign is a set of images made from one brief: pick a template, fill it in, check the list of images, "
    "generate them all, then star the best and download them as a ZIP. Campaigns are saved and reopen any time."
)

libraries = get_libraries()
campaigns = CampaignStore(get_store())
templates = get_templates()

view = st.radio(
    "Section", list(VIEWS), format_func=VIEWS.get, horizontal=True, key="camp_view", label_visibility="collapsed"
)

access = current_access()
if view == "new" and not access.can("generate"):
    explain_denied(access, "generate")
elif view == "new":
    kit = current_kit()
    left, right = st.columns([1, 1], gap="large")
    with left:
        st.subheader("The brief")
        template = pick_template(templates)
        if template is not None:
            values = field_widgets(template)
            name = st.text_input("Campaign name (optional)", key="camp_name", placeholder="Spring launch")
    if template is not None:
        with right:
            st.subheader("How and where")
            engine, settings = engine_settings(template, libraries, kit)
            variations = variation_settings(template)
            if not kit.is_empty:
                st.caption("Your brand kit is applied (see the **Brand kit** section).")
        missing = [md(f.label) for f in template.fields if f.required and not str(values.get(f.key) or "").strip()]
        plan, problem = make_plan(template, values, engine, settings, variations, kit, name)
        st.subheader("What will be made")
        if missing:
            st.info(f"Fill in **{', '.join(missing)}** to see the list of images.")
        elif problem:
            show_problem(problem)
        else:
            seconds = None
            if engine == LOCAL_SCORE and library_ready(libraries, settings.get("library")):
                try:  # quick once the library is prepared (a not yet prepared one is prepared by the campaign job)
                    from core.engines.local_score import LocalScoreEngine

                    cost = LocalScoreEngine(libraries).plan(plan.variations[0].build_request())["cost"]
                    seconds = cost.seconds_estimate * plan.count
                except MosaicError as err:
                    problem = str(err)
                    show_problem(err)
            elif engine == LOCAL_SCORE:
                st.caption(":material/info: The first campaign from this library prepares it: a few seconds more.")
            if not problem:
                estimate = f" · about {duration(seconds)} to make" if seconds else ""
                count = f"{plan.count} image" + ("" if plan.count == 1 else "s")
                st.markdown(f"**{count}**{estimate}. Check the list, then press **Generate campaign**.")
                for notice in plan.notices:
                    if "no text model" not in notice:  # already explained next to the engine choice
                        st.caption(f"ℹ️ {md(notice)}")
                st.dataframe(preview_table(plan), hide_index=True, width="stretch")
        analyse = _analysis_choice("camp_analyse_new")
        dice, go = st.columns([1, 3])
        if dice.button("New random seeds", key="camp_reseed", icon=":material/casino:"):
            st.session_state["camp_seed"] = random.randint(0, 99999)
            st.rerun()
        if go.button(
            "Generate campaign", type="primary", key="camp_go", disabled=plan is None or bool(problem), width="stretch"
        ):
            try:
                campaign = campaigns.create(plan)
            except MosaicError as err:
                show_problem(err)
            else:
                # set first: if the run is interrupted (page left, another click), the next visit shows
                # this campaign with its finished images and a Resume button
                st.session_state["camp_goto_campaign"] = campaign.id
                st.session_state["camp_goto_view"] = "results"
                job = run_with_progress(campaigns, libraries, campaign.id, analyse)
                st.session_state["camp_seed"] = random.randint(0, 99999)  # the next campaign looks different
                if job is None:  # it could not be submitted: stay on the form with the message
                    st.session_state.pop("camp_goto_view", None)
                else:  # the results view watches the job and shows each image as it lands
                    st.rerun()

elif view == "results":
    campaign = pick_campaign(campaigns)
    if campaign is not None:
        show_campaign(campaign, campaigns, libraries)

elif view == "templates":
    template_editor(templates)

else:
    brand_kit_editor(libraries)
