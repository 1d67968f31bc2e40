"""Originality check: how much of an image comes from a reference library, and is any of it a copy.

The check runs as a background job (``analyze``): the page submits it, watches it, and shows its saved
result. Leaving the page or closing the tab loses nothing: on return the page finds this browser's
checks again (its progress while it runs, its result when done).
"""

import logging

import streamlit as st

from core.analyzer import AnalysisResult
from core.analyzer.jobs import analysis_params, analysis_title, load_job_analysis
from core.errors import MosaicError
from core.html import md
from core.jobs import ACTIVE, DONE, JobRecord
from core.words import plural
from pages.parts import jobs
from pages.parts.analyze_inputs import (
    Subject,
    choose_library,
    choose_method,
    choose_subject,
    remember_upload,
    restore_last_check,
    upload_name,
)
from pages.parts.analyze_views import (
    choose_scale,
    page_verdict,
    show_exact_comparison,
    show_headline,
    show_how_we_score,
    show_near_copy,
    show_notices,
    show_pictures,
    show_search_findings,
    show_sources,
)
from pages.parts.auth import current_access, explain_denied, owner_id
from pages.parts.messages import show_problem
from pages.parts.shared import enlarge, ensure_routed, get_libraries, get_store

ensure_routed(__file__)

logger = logging.getLogger(__name__)
KEPT_CHECKS = 20  # (subject, library, method) -> job id, per session: switching back and forth does not re-run


def check_key(subject_key: str, library: str, version, space: str, model: str | None, detail: str) -> tuple:
    return (subject_key, library, version, space, model, detail)


def library_version(library) -> int | str:
    """What makes an earlier check of a library out of date: a user library's picture count (pictures added
    or removed). A built-in library never changes; its count goes from 0 to its size when the first check
    prepares it, which must not hide that very check's result."""
    return library.count if library.kind == "user" else "built-in"


def my_checks() -> tuple[dict, JobRecord | None]:
    """This session's checks by key (with this browser's recent ones added) and its latest check."""
    checks: dict = st.session_state.setdefault("analyze_jobs", {})
    recent = [j for j in jobs.get_queue().list(owner=owner_id(), limit=50) if j.kind == "analyze"]
    for job in recent:  # newest first: the newest check of each key wins
        params, page = job.params or {}, (job.params or {}).get("page") or {}
        if page.get("subject"):
            key = check_key(page["subject"], params.get("library"), page.get("count"), params.get("space"),
                            params.get("model"), page.get("detail"))
            checks.setdefault(key, job.id)
    while len(checks) > KEPT_CHECKS:
        checks.pop(next(iter(checks)))
    return checks, (recent[0] if recent else None)


def show_other_check(latest: JobRecord | None, current: str | None) -> None:
    """This browser's latest check while it runs, when it is not the one chosen below."""
    if latest is None or latest.state not in ACTIVE or latest.id == current:
        return
    st.info(f"Your check of **{md(latest.title or 'an image')}** is running.", icon=":material/hourglass_top:")
    jobs.watch(latest.id, key="analyze_other", show_preview=False)


def submit_check(subject: Subject, library, method) -> JobRecord:
    if subject.record is not None:
        target = {"record_id": subject.record.id}
    else:
        target = {"upload": upload_name(subject)}
    params = analysis_params(library.name, method.space, method.model, method.settings, label=subject.label,
                             **target)
    params["page"] = {"subject": subject.key, "count": library_version(library), "detail": method.detail}
    job = jobs.submit("analyze", params, title=analysis_title(subject.label, library.title))
    if subject.record is None:
        remember_upload(subject)
    return job


def job_analysis(job: JobRecord) -> AnalysisResult:
    """The finished check's result (the last one read is kept in the session)."""
    loaded = st.session_state.get("_analyze_loaded")
    if loaded and loaded[0] == job.id:
        return loaded[1]
    result = load_job_analysis(job)
    st.session_state["_analyze_loaded"] = (job.id, result)
    return result


st.title("Originality check")
st.caption(
    "Find out how much of an image comes from the pictures in a reference library, "
    "and whether any part of it is a recognisable copy."
)
store = get_store()
libraries = get_libraries()
checks, latest = my_checks()
restore_last_check(latest)
top = st.container()

pick, preview = st.columns([3, 1], gap="large")
with pick:
    subject = choose_subject(store)
    if subject is None:
        with top:
            show_other_check(latest, None)
        show_how_we_score()
        st.stop()
    for notice in subject.notices:
        st.caption(f":material/info: {md(notice)}")
    library = choose_library(subject, libraries)
    method = choose_method()
with preview:
    st.image(
        enlarge(subject.image, 192) if max(subject.image.size) < 192 else subject.image,
        caption=f"{subject.image.width}×{subject.image.height} px",
        width=192,
    )

if library is None:
    with top:
        show_other_check(latest, None)
    st.stop()
if method.problem:
    show_problem(method.problem, detail=method.problem_detail, kind="warning")
key = check_key(subject.key, library.name, library_version(library), *method.key)
job: JobRecord | None = None
if key in checks:
    try:
        job = jobs.get_queue().get(checks[key])
    except MosaicError:  # removed from the database meanwhile
        checks.pop(key, None)
can_check = current_access().can("generate")
if not can_check:
    explain_denied(current_access(), "generate")
go = st.button(
    "Check originality",
    type="primary",
    icon=":material/verified:",
    key="analyze_go",
    disabled=not can_check or method.problem is not None or (job is not None and job.state in ACTIVE),
)
if go:
    try:
        job = submit_check(subject, library, method)
    except MosaicError as err:
        show_problem(f"The check could not start. {err}", detail=err.detail)
    else:
        checks.pop(key, None)
        checks[key] = job.id
        st.rerun()  # drawn again with the button off while the check runs: one click, one job
with top:
    show_other_check(latest, job.id if job is not None else None)

if job is None:
    st.info(
        f"Press **Check originality** to compare this image with **{md(library.title)}**. "
        "It takes from a few seconds to a minute; the first check of a library takes longer "
        "because its pictures are prepared once. You may leave this page meanwhile: the check goes on."
    )
    show_how_we_score()
    st.stop()
if job.state in ACTIVE:
    jobs.watch(job.id, key="analyze", show_preview=False)
    show_how_we_score()
    st.stop()
if job.state != DONE:
    jobs.show_outcome(job)
    show_how_we_score()
    st.stop()
try:
    result = job_analysis(job)
except MosaicError as err:
    show_problem(err)
    show_how_we_score()
    st.stop()

st.divider()
space = "pixels" if result.space == "pixel" else "the image-model view"
detail = "standard detail" if result.work_size >= 128 else "quick check"
took = result.timings.get("total")
st.caption(
    f"Checked against **{md(library.title)}** ({plural(library.count, 'picture')}) · compared on {space} · "
    f"{detail}" + (f" · took {took:.0f} s" if took else "")
)
record = subject.record
verdict = page_verdict(result, record, store, libraries)
show_headline(result, verdict, record, libraries)
if verdict.basis == "exact":
    show_search_findings(result)
show_near_copy(result, libraries)
show_notices(result, [])

scale = choose_scale(result)
show_pictures(result, subject.image, libraries, scale)
show_sources(result, libraries, scale)

if record is not None and record.engine == "local-score":
    arrays = store.arrays(record)
    if "sources" in arrays:
        show_exact_comparison(result, record, arrays, libraries)

show_how_we_score()
