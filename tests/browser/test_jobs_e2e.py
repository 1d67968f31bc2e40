"""Work survives the page (issue 14), in real headless Chromium against the real studio and its workers.

* A generation keeps running while the user looks at the Gallery; back on Generate its progress is
  still there and its images arrive. A double click on Generate makes one job.
* The server restarted mid-job (its worker killed with it): the new server's worker resumes the job,
  every finished image is kept and none is made twice.
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.browser.studio import chromium_page, running_studio, shot
from tests.jobs.jobs_helpers import wait_until as _wait
from tests.signin import sign_in_browser

pytestmark = pytest.mark.browser


def _jobs():
    from core.jobs import JobQueue

    return JobQueue().list(limit=None)


def _choose_images(page, count: int) -> None:
    """Set the number of images with the slider's keyboard (the default is 2)."""
    slider = page.get_by_role("slider", name="Number of images")
    slider.focus()
    for _ in range(max(0, count - 2)):
        slider.press("ArrowRight")
    page.wait_for_timeout(800)


def test_a_generation_survives_leaving_the_page_and_a_double_click_makes_one_job(page, studio):
    from core.store import Store

    page.goto(studio)
    page.get_by_role("link", name="Generate").first.click()
    page.get_by_role("button", name="Generate").wait_for()
    page.get_by_role("button", name="Generate").dblclick()
    _wait(lambda: _jobs())
    page.get_by_role("link", name="Gallery").first.click()  # leave while it runs
    page.wait_for_timeout(1500)
    shot(page, "jobs_01_gallery_while_running")
    (job,) = _jobs()
    assert job.state in ("queued", "running")
    page.get_by_role("link", name="Generate").first.click()
    # the progress of the job is still shown (queue position or step), then its images arrive
    page.get_by_role("button", name="Cancel").first.wait_for(timeout=120_000)
    shot(page, "jobs_02_back_on_generate")
    page.get_by_text("saved to the gallery").first.wait_for(timeout=900_000)
    shot(page, "jobs_03_results")
    jobs = _jobs()
    assert len(jobs) == 1 and jobs[0].state == "done"  # the double click made one job
    assert page.get_by_role("button", name="Open mosaic").count() == 2
    assert Store().count() == 2


@pytest.mark.timeout(1500)
def test_a_server_restarted_mid_job_resumes_it_and_keeps_every_finished_image(isolated_data_dir):
    from core.jobs import JobQueue
    from core.jobs.models import WorkerRecord
    from core.store import Store

    queue = JobQueue()
    # one browser throughout, as a person would keep theirs while the server restarts
    with chromium_page() as page:
        _restart_scenario(page, queue, isolated_data_dir, WorkerRecord)
    job = queue.get(_jobs()[0].id)
    assert job.state == "done" and job.attempts == 2
    seeds = sorted(Store().get(r).seed for r in job.result["records"])
    assert seeds == sorted(set(seeds)) and len(seeds) == 4


def _restart_scenario(page, queue, isolated_data_dir, WorkerRecord) -> None:  # noqa: N803
    with running_studio(isolated_data_dir) as url:
        sign_in_browser(page, url)
        page.goto(url)
        page.get_by_role("link", name="Generate").first.click()
        page.get_by_role("button", name="Generate").wait_for()
        _choose_images(page, 4)
        page.get_by_role("button", name="Generate").click()
        (job,) = _wait(lambda: _jobs())
        # the first image is saved; then the server goes down with its worker, mid-job
        _wait(lambda: len(queue.get(job.id).result.get("records") or []) >= 1, timeout=900)
        with queue._sessions() as session:
            workers = list(session.query(WorkerRecord).filter(WorkerRecord.job_id == job.id))
        assert workers
        for worker in workers:
            os.kill(worker.pid, signal.SIGKILL)
        kept = list(queue.get(job.id).result["records"])
        assert queue.get(job.id).state == "running"
    # a new server on the same data folder: its worker picks the job up where it stopped, and the
    # same browser finds its job on the Generate page
    with running_studio(isolated_data_dir) as url:
        page.goto(url)
        page.get_by_role("link", name="Generate").first.click()
        page.get_by_text("saved to the gallery").first.wait_for(timeout=900_000)
        shot(page, "jobs_04_after_restart")
    final = queue.get(job.id)
    assert final.result["records"][: len(kept)] == kept
