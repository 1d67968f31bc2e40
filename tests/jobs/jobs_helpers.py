"""Shared helpers of the job tests: real generation jobs on the built-in faces library."""

from __future__ import annotations

import time

from core.engines.local_score import LocalScoreRequest
from core.jobs import FINISHED, JobQueue, JobRecord
from core.jobs.requests import encode_request
from core.store import Store


def submit_generation(queue: JobQueue, count: int = 2, size: int = 16, steps: int = 4, owner: str = "ann",
                      seed: int = 10) -> JobRecord:
    request = LocalScoreRequest(library="faces", size=size, steps=steps, count=count, seed=seed)
    return queue.submit("generate", encode_request("local-score", request), owner=owner, title=f"{count} images")


def wait_until(predicate, timeout: float = 120.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s")


def wait_finished(queue: JobQueue, job_id: str, timeout: float = 180.0) -> JobRecord:
    return wait_until(lambda: (j := queue.get(job_id)).state in FINISHED and j, timeout)


def saved_seeds(job: JobRecord) -> list[int]:
    store = Store(recover=False)
    return sorted(store.get(r).seed for r in job.result.get("records") or [])


def run_queued_jobs() -> list[str]:
    """Run every queued job in this process (page tests start no workers). Returns the states."""
    from core.jobs import QUEUED
    from core.jobs.worker import run_job_here

    queue = JobQueue()
    return [run_job_here(queue, job.id) for job in reversed(queue.list(states=[QUEUED], limit=None))]


def last_batch(at) -> list[str]:
    """The image ids of the Generate page's current job (an AppTest of the studio)."""
    return list(JobQueue().get(at.session_state["gen_job"]).result.get("records") or [])
