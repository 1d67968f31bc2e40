"""The results part of the Campaigns page: open a saved campaign, run/resume it, compare, export."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import streamlit as st

from core.analyzer.verdict import in_words
from core.campaigns import (
    DONE,
    FAILED,
    ITEM_DONE,
    PARTIAL,
    PAUSED,
    PENDING,
    PLANNED,
    RUNNING,
    CampaignItemRecord,
    CampaignRecord,
    CampaignStore,
    Variation,
    export_campaign_zip,
)
from core.campaigns.analysis import analyzer_available, item_verdict
from core.campaigns.export import made_with, slug
from core.campaigns.store import INTERRUPTED
from core.errors import MosaicError
from core.html import md
from core.jobs import ACTIVE
from core.libraries import LibraryManager
from core.words import plural
from pages.parts.auth import current_access
from pages.parts.jobs import get_queue, latest, show_outcome, submit, watch
from pages.parts.messages import show_problem
from pages.parts.shared import enlarge

logger = logging.getLogger(__name__)

STATUS_WORDS = {
    INTERRUPTED: "interrupted, not finished",
    PLANNED: "not started",
    RUNNING: "being made",
    PAUSED: "stopped part-way, not finished",
    DONE: "finished",
    PARTIAL: "finished, some images failed",
}
SHOW = {"all": "All", "starred": "Starred only", "keep": "Hide rejected"}
COLUMNS = 4


# ---------------------------------------------------------------------------------------- running
def run_with_progress(
    campaigns: CampaignStore,
    libraries: LibraryManager,
    campaign_id: str,
    analyse: bool,
    item_ids: Sequence[str] | None = None,
    regenerate: str | None = None,
):
    """Submit a job that makes (or resumes, or regenerates one item of) a campaign; the page watches it.

    A worker makes the images and saves each one as it is finished, so leaving the page loses nothing.
    Returns the job, or None after an error was shown.
    """
    del libraries  # the job picks the library to compare with
    try:
        if regenerate is not None:
            campaigns.prepare_regenerate(regenerate)
            item_ids = [regenerate]
        campaign = campaigns.get(campaign_id)
        params = {
            "campaign_id": campaign_id,
            "analyse": bool(analyse),
            "item_ids": list(item_ids) if item_ids else None,
        }
        job = submit("campaign", params, title=f"Campaign: {campaign.name}"[:200])
    except MosaicError as err:
        show_problem(err)
        return None
    st.session_state[f"camp_job_{campaign_id}"] = job.id
    return job


def campaign_job(campaign_id: str):
    """This session's job for a campaign, or this browser's latest one for it; None when there is none."""
    job_id = st.session_state.get(f"camp_job_{campaign_id}")
    if job_id is None:
        found = latest("campaign", campaign_id=campaign_id)
        if found is None:
            return None
        job_id = found.id
        st.session_state[f"camp_job_{campaign_id}"] = job_id
    try:
        return get_queue().get(job_id)
    except MosaicError:
        return None


def show_campaign_job(campaign_id: str) -> bool:
    """Live progress of the campaign's job (True while it runs); a failed or cancelled one says why."""
    job = campaign_job(campaign_id)
    if job is None:
        return False
    if job.state in ACTIVE:
        watch(job.id, key=f"camp_{campaign_id}", preview_side=128)
        return True
    if job.state != "done":
        show_outcome(job)
    return False


# ---------------------------------------------------------------------------------------- choosing
def campaign_label(campaign: CampaignRecord, status: str | None = None) -> str:
    when = campaign.created.strftime("%d %b %Y %H:%M") if campaign.created else ""
    status = status or campaign.status
    return f"{campaign.name} · {when} · {STATUS_WORDS.get(status, status)}"


def pick_campaign(campaigns: CampaignStore) -> CampaignRecord | None:
    """Select box of saved campaigns, newest first."""
    saved = campaigns.list()
    if not saved:
        st.info("No campaigns yet. Make one in **New campaign** — it is saved and can be reopened any time.")
        return None
    by_id = {c.id: c for c in saved}
    if st.session_state.get("camp_open") not in by_id:
        st.session_state["camp_open"] = saved[0].id
    campaign_id = st.selectbox(
        "Open a saved campaign (newest first)",
        list(by_id),
        format_func=lambda cid: campaign_label(by_id[cid], campaigns.shown_status(by_id[cid])),
        key="camp_open",
    )
    if st.session_state.get("camp_reconciled") != campaign_id:
        # images saved just before an interruption are linked back; the status is made true again
        try:
            campaigns.reconcile(campaign_id)
            campaigns.refresh_status(campaign_id)
        except MosaicError as err:
            show_problem(err)
            return None
        st.session_state["camp_reconciled"] = campaign_id
    return campaigns.get(campaign_id)


# ---------------------------------------------------------------------------------------- figures
RISK_COLOURS = {"low": "green", "medium": "orange", "high": "red"}  # Streamlit colour names


def item_words(item: CampaignItemRecord):
    """The item's copy verdict in the words shown everywhere (core.analyzer.verdict.in_words)."""
    verdict = item_verdict(item)
    if verdict is not None:
        return verdict.words
    return in_words(originality=item.originality, risk=item.copy_risk_label, value=item.copy_risk)


def originality_text(item: CampaignItemRecord) -> str:
    """The item's copy verdict in words, as Markdown (names escaped): the risk, coloured, then originality."""
    words = item_words(item)
    if words.level is None and not words.originality:
        return ":grey[Originality: not checked yet]"
    risk = f":{RISK_COLOURS[words.level]}[**{md(words.risk)}**]" if words.level else f"**{md(words.risk)}**"
    return f"{risk}  \n{md(words.originality)}" if words.originality else risk


# ---------------------------------------------------------------------------------------- callbacks
def _flash(err: MosaicError) -> None:
    st.session_state["camp_flash"] = (str(err), err.detail)


def _star(campaigns: CampaignStore, item_id: str) -> None:
    try:
        campaigns.star(item_id, bool(st.session_state.get(f"camp_star_{item_id}")))
    except MosaicError as err:
        _flash(err)


def _reject(campaigns: CampaignStore, item_id: str) -> None:
    try:
        campaigns.reject(item_id, bool(st.session_state.get(f"camp_reject_{item_id}")))
    except MosaicError as err:
        _flash(err)


def _notes(campaigns: CampaignStore, item_id: str) -> None:
    try:
        campaigns.set_notes(item_id, str(st.session_state.get(f"camp_notes_{item_id}") or ""))
    except MosaicError as err:
        _flash(err)


# ---------------------------------------------------------------------------------------- the page part
def show_campaign(campaign: CampaignRecord, campaigns: CampaignStore, libraries: LibraryManager) -> None:
    flash = st.session_state.pop("camp_flash", None)
    if flash:
        show_problem(*flash)
    running = show_campaign_job(campaign.id)
    counts = campaigns.counts(campaign.id)
    st.subheader(md(campaign.name))
    first = campaigns.items(campaign.id)[:1]
    library = (first[0].spec.get("request") or {}).get("library") if first else None
    how = made_with(campaign.engine, campaign.model, library, campaigns.workspace)
    st.caption(
        f"Template **{md((campaign.template_snapshot or {}).get('name', campaign.template))}** · {md(how)} · "
        f"{counts[ITEM_DONE]} of {counts['total']} images made"
        + (f" · {counts[PENDING]} waiting" if counts[PENDING] else "")
        + (f" · {counts[FAILED]} failed" if counts[FAILED] else "")
        + f" · {counts['starred']} starred"
    )
    with st.expander("The brief and how it was made", expanded=False):
        labels = {f.get("key"): f.get("label") for f in (campaign.template_snapshot or {}).get("fields", [])}
        for key, value in (campaign.fields or {}).items():
            if value not in (None, "", []):
                shown = ", ".join(map(str, value)) if isinstance(value, list) else value
                st.markdown(f"**{md(labels.get(key) or key)}:** {md(shown)}")
        for notice in campaign.notices or []:
            st.caption(f"ℹ️ {md(notice)}")

    can_make = current_access().can("generate")
    analyse = _analysis_choice("camp_analyse_resume") if can_make and (counts[PENDING] or counts[FAILED]) else False
    actions = st.container(horizontal=True, gap="small")  # buttons wrap onto a new line where they do not fit
    if can_make and counts[PENDING] and not running and actions.button(
        f"Resume: make the {plural(counts[PENDING], 'waiting image')}",
        type="primary",
        key="camp_resume",
        icon=":material/play_arrow:",
    ):
        if run_with_progress(campaigns, libraries, campaign.id, analyse) is not None:
            st.rerun()
    if can_make and counts[FAILED] and not running and actions.button(
        f"Try the {plural(counts[FAILED], 'failed image')} again", key="camp_retry", icon=":material/replay:"
    ):
        campaigns.retry_failed(campaign.id)
        if run_with_progress(campaigns, libraries, campaign.id, analyse) is not None:
            st.rerun()
    if can_make:
        _analyse_button(actions, campaign, campaigns, libraries, counts)

    items = campaigns.items(campaign.id)
    show = st.radio("Show", list(SHOW), format_func=SHOW.get, horizontal=True, key="camp_show")
    if show == "starred":
        items = [i for i in items if i.starred]
    elif show == "keep":
        items = [i for i in items if not i.rejected]
    if not items:
        st.info("Nothing to show with this filter.")
    _grid(items, campaigns, libraries, campaign.id)
    _export(campaign, campaigns, counts)


def _analysis_choice(key: str) -> bool:
    if not analyzer_available():
        st.caption("Originality check: not available in this installation — images will show “not checked yet”.")
        return False
    return st.checkbox(
        "Check originality and copy risk of each image (slower: up to a minute more per image)",
        value=True,
        key=key,
        help="Compares every new image with the reference library. Slow on small computers: "
        "it can add up to a minute per image. You can also check later with “Check originality”.",
    )


def _analyse_button(column, campaign, campaigns, libraries, counts) -> None:
    if not counts[ITEM_DONE] or not analyzer_available():
        return
    missing = [
        i
        for i in campaigns.items(campaign.id, ITEM_DONE)
        if i.originality is None and i.copy_risk is None and not i.copy_risk_label
    ]
    if not missing:
        return
    count = plural(len(missing), "image")
    if column.button(
        f"Check originality ({count})",
        key="camp_analyse_now",
        icon=":material/verified:",
        help="Compares each image with the library it could borrow from and says how original it is.",
    ):
        try:
            params = {"campaign_id": campaign.id, "analyse_only": True}
            job = submit("campaign", params, title=f"Originality of {campaign.name}"[:200])
        except MosaicError as err:
            show_problem(err)
            return
        st.session_state[f"camp_job_{campaign.id}"] = job.id
        st.rerun()


def _grid(
    items: list[CampaignItemRecord], campaigns: CampaignStore, libraries: LibraryManager, campaign_id: str
) -> None:
    store = campaigns.store
    for start in range(0, len(items), COLUMNS):
        row = st.columns(COLUMNS, gap="medium")
        for column, item in zip(row, items[start : start + COLUMNS], strict=False):
            with column.container(border=True):
                _card(item, campaigns, libraries, campaign_id, store)


def _card(item, campaigns, libraries, campaign_id, store) -> None:
    variation = Variation.from_dict(item.spec)
    record = campaigns.generation(item) if item.status == ITEM_DONE else None
    if record is not None:
        try:
            st.image(enlarge(store.image(record), 192), width="stretch")
        except (OSError, MosaicError):
            st.warning("The image file is missing. Press “New variation” to make it again.")
    elif item.status == FAILED:
        show_problem("This image could not be made. Press “New variation” to try again.", detail=item.error or None)
    else:
        st.info("Waiting to be made")
    st.markdown(f"**#{item.position + 1}** {md(variation.title)} · {variation.width}×{variation.height}")
    can_edit = current_access().can("edit")
    if record is not None:
        st.markdown(originality_text(item))
        reason = item_words(item).reason
        if reason:
            st.caption(md(reason[:1].upper() + reason[1:]) + ".")
        if can_edit:
            _verdicts(item, campaigns)
        else:
            _verdicts_shown(item)
    if can_edit and item.status != PENDING and st.button(
        "New variation",
        key=f"camp_regen_{item.id}",
        icon=":material/refresh:",
        help="Make this image again with a new random seed. The old image stays in the Gallery.",
        width="stretch",
    ):
        if run_with_progress(campaigns, libraries, campaign_id, analyse=False, regenerate=item.id) is not None:
            st.rerun()


def _verdicts(item: CampaignItemRecord, campaigns: CampaignStore) -> None:
    """Star / reject toggles and the note, kept in step with the database (a star clears a rejection)."""
    st.session_state[f"camp_star_{item.id}"] = bool(item.starred)
    st.session_state[f"camp_reject_{item.id}"] = bool(item.rejected)
    st.session_state[f"camp_notes_{item.id}"] = item.notes or ""
    with st.container(horizontal=True, gap="small"):  # side by side where they fit, else one under the other
        st.toggle(
            ":material/star: Star",
            key=f"camp_star_{item.id}",
            on_change=_star,
            args=(campaigns, item.id),
            help="Keep this image: “Only starred images” exports just these.",
            width="content",
        )
        st.toggle(
            ":material/block: Reject",
            key=f"camp_reject_{item.id}",
            on_change=_reject,
            args=(campaigns, item.id),
            help="Set this image aside: “Leave out rejected images” keeps it out of the ZIP.",
            width="content",
        )
    st.text_input(
        "Note",
        key=f"camp_notes_{item.id}",
        on_change=_notes,
        args=(campaigns, item.id),
        placeholder="Add a note…",
        label_visibility="collapsed",
        max_chars=4000,
    )


def _verdicts_shown(item: CampaignItemRecord) -> None:
    """What the team decided about an image, for someone who may look but not change it."""
    marks = [":material/star: Starred"] if item.starred else []
    marks += [":material/block: Rejected"] if item.rejected else []
    if marks:
        st.caption(" · ".join(marks))
    if item.notes:
        st.caption(md(item.notes))


def _export(campaign: CampaignRecord, campaigns: CampaignStore, counts: dict[str, int]) -> None:
    st.divider()
    st.subheader("Export")
    if not counts[ITEM_DONE]:
        st.caption("Generate the campaign first; then download all images with a spreadsheet of their settings.")
        return
    skip_rejected = st.checkbox("Leave out rejected images", value=True, key="camp_export_skip")
    only_starred = st.checkbox("Only starred images", value=False, key="camp_export_starred")
    try:
        data = export_campaign_zip(
            campaign.id, campaigns=campaigns, include_rejected=not skip_rejected, only_starred=only_starred
        )
    except MosaicError as err:
        show_problem(err)
        return
    st.download_button(
        "Download ZIP (images, manifest.csv, contact sheet)",
        data,
        file_name=f"{slug(campaign.name)}.zip",
        mime="application/zip",
        key="camp_export",
        icon=":material/download:",
        on_click="ignore",
        type="primary",
    )
    st.caption(
        "The ZIP holds every image as PNG (settings inside), a manifest.csv for spreadsheets and "
        "contact-sheet.html to share with clients."
    )
