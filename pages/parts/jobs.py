"""Submitting and watching background jobs from the pages.

Pages never run an engine themselves: they :func:`submit` a job and :func:`watch` it. The watcher
is a fragment that refreshes itself every second (live progress, queue position, a live preview and
a Cancel button) and reruns the page once the job has ended, so the page can show its results.
Leaving the page, closing the tab or reloading loses nothing: the job runs in a worker process and
the page finds it again (:func:`latest`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import streamlit as st
from PIL import Image

from core import config
from core.html import md
from core.jobs import ACTIVE, CANCELLED, DONE, FAILED, QUEUED, RUNNING, JobQueue, JobRecord
from core.jobs.context import preview_path
from core.jobs.pool import WorkerPool
from pages.parts.auth import current_access, owner_id

KIND_WORDS = {
    "generate": "Images",
    "analyze": "Originality check",
    "campaign": "Campaign",
    "library-import": "Library",
    "lab": "Lab experiment",
}


def job_label(kind: str, title: str | None) -> str:
    """What a job is, in words: its kind, then its title unless the title already says the kind."""
    words = KIND_WORDS.get(kind, "Job")
    if not title:
        return words
    if words.split()[0].lower().rstrip("s") in title.lower():  # "2 images: faces", "Lab: patch sizes"
        return title
    return f"{words}: {title}"


def get_queue() -> JobQueue:
    """The job queue as the current workspace sees it."""
    from pages.parts.shared import get_store

    return JobQueue(get_store())


@st.cache_resource(show_spinner=False)
def _pool(data_dir: str, url: str) -> WorkerPool:
    return WorkerPool()


def ensure_workers() -> None:
    """Start the studio's worker processes if they are not running (cheap when they are)."""
    _pool(str(config.data_dir()), config.database_url()).ensure()


def submit(kind: str, params: dict[str, Any], title: str, device: str = "cpu") -> JobRecord:
    """Queue a job for the signed-in person in the current workspace, if their role allows it.

    The same settings submitted again while it runs give the same job.
    """
    current_access().require_job(kind)
    owner = owner_id()
    digest = hashlib.sha256(json.dumps([kind, params], sort_keys=True, default=str).encode()).hexdigest()[:24]
    ensure_workers()
    return get_queue().submit(kind, params, owner=owner, title=title, device=device, dedupe_key=f"{owner}:{digest}")


def latest(kind: str, states: tuple[str, ...] | None = None, **params: Any) -> JobRecord | None:
    """This browser's newest job of ``kind`` (optionally in ``states``, and whose params have these values)."""
    jobs = get_queue().list(owner=owner_id(), states=states, limit=100)
    return next(
        (j for j in jobs if j.kind == kind and all((j.params or {}).get(k) == v for k, v in params.items())), None
    )


def status_words(job: JobRecord, queue: JobQueue | None = None) -> str:
    """One plain line about a job: waiting (and behind how many), working, done, failed, cancelled."""
    queue = queue or get_queue()
    if job.state == QUEUED:
        ahead = queue.position(job.id)
        if ahead == 0:
            return "Starting next…"
        return f"Waiting: {ahead} job{'s' if ahead != 1 else ''} ahead of yours."
    if job.state == RUNNING:
        return job.message or "Working…"
    if job.state == DONE:
        return job.message or "Done."
    if job.state == CANCELLED:
        return job.message or "Cancelled."
    return job.error or job.message or "It failed."


def _preview(job: JobRecord) -> Image.Image | None:
    path = preview_path(job.id)
    if not path.is_file():
        return None
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except OSError:
        return None


def watch(job_id: str, key: str, show_preview: bool = True, preview_side: int = 256) -> None:
    """Live progress of one job; reruns the page when it ends."""

    @st.fragment(run_every=1.0)
    def _watch() -> None:
        queue = get_queue()
        try:
            job = queue.get(job_id)
        except Exception:  # deleted, or the database is restarting: try again next second
            return
        seen_active = st.session_state.get(f"_watch_active_{key}", False)
        if job.state in ACTIVE:
            st.session_state[f"_watch_active_{key}"] = True
            st.progress(float(job.progress or 0.0), text=md(status_words(job, queue)))
            if show_preview and job.state == RUNNING:
                image = _preview(job)
                if image is not None:
                    from pages.parts.shared import enlarge

                    st.image(enlarge(image, preview_side), caption="Forming…", width=preview_side)
            if st.button("Cancel", key=f"cancel_{key}_{job_id}", icon=":material/stop_circle:"):
                queue.cancel(job_id)
                st.rerun(scope="fragment")
            return
        if seen_active:  # it just ended: show the page's results
            st.session_state[f"_watch_active_{key}"] = False
            st.rerun(scope="app")

    _watch()


def show_outcome(job: JobRecord) -> None:
    """The closing line of an ended job, in the right colour."""
    if job.state == DONE:
        st.success(md(status_words(job)), icon=":material/check_circle:")
    elif job.state == FAILED:
        st.error(md(status_words(job)), icon=":material/error:")
    elif job.state == CANCELLED:
        st.info(md(status_words(job)), icon=":material/stop_circle:")


def sidebar_panel() -> None:
    """Your running and recent jobs, live, with Cancel buttons (in the sidebar of every page)."""

    @st.fragment(run_every=2.0)
    def _panel() -> None:
        queue = get_queue()
        jobs = queue.list(owner=owner_id(), limit=8)
        active = [j for j in jobs if j.state in ACTIVE]
        recent = [j for j in jobs if j.state not in ACTIVE][:4]
        if not jobs:
            return
        st.markdown("**Your jobs**")
        for job in active:
            label = md(job_label(job.kind, job.title))
            st.caption(label)
            st.progress(float(job.progress or 0.0), text=md(status_words(job, queue)))
            if st.button("Cancel", key=f"side_cancel_{job.id}", icon=":material/stop_circle:"):
                queue.cancel(job.id)
                st.rerun(scope="fragment")
        for job in recent:
            icon = {DONE: ":material/check_circle:", FAILED: ":material/error:"}.get(job.state, ":material/block:")
            words = {DONE: "done", FAILED: "failed", CANCELLED: "cancelled"}.get(job.state, job.state)
            title = job.title or KIND_WORDS.get(job.kind, "Job")
            st.caption(f"{icon} {md(title)} · {words}")

    _panel()
