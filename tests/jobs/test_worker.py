"""Workers run real generation jobs: each image saved as it finishes, cancel, and a worker killed mid-job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core.jobs import CANCELLED, DONE, JobQueue
from core.jobs.worker import Worker, run_job_here
from core.store import Store
from tests.jobs.jobs_helpers import saved_seeds, submit_generation, wait_finished, wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["local", "ray"])
def runner(request, monkeypatch):
    """Runs the queue in this process: a local worker thread, or a dispatcher sending jobs to a Ray instance."""
    if request.param == "ray":
        address = request.getfixturevalue("ray_cluster")
        monkeypatch.setenv("MOSAIC_RAY_ADDRESS", address)
        from core.jobs.ray_backend import RayDispatcher

        runner = RayDispatcher(poll_s=0.05)
    else:
        runner = Worker(poll_s=0.05)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    yield runner
    runner.stop()
    thread.join(60)


def test_a_waiting_command_runs_its_job_itself_when_no_worker_is_alive():
    queue = JobQueue()
    job = submit_generation(queue, count=2)
    assert run_job_here(queue, job.id) == DONE
    job = queue.get(job.id)
    assert job.state == DONE and job.progress == 1.0 and "2 image" in job.message
    assert saved_seeds(job) == [10, 11]
    assert Store().count() == 2


def test_a_worker_thread_says_goodbye_when_it_stops():
    queue = JobQueue()
    job = submit_generation(queue, count=1)
    worker = Worker(poll_s=0.05)
    thread = threading.Thread(target=worker.run, kwargs={"max_jobs": 1})
    thread.start()
    thread.join(120)
    assert not thread.is_alive() and queue.get(job.id).state == DONE
    assert queue.live_workers() == []


def test_queued_jobs_of_several_owners_all_run(runner):
    queue = JobQueue()
    jobs = [submit_generation(queue, count=1, owner=o, seed=s) for o, s in (("ann", 1), ("bob", 2), ("ann", 3))]
    states = [wait_finished(queue, j.id).state for j in jobs]
    assert states == [DONE, DONE, DONE], [queue.get(j.id).error for j in jobs]
    assert sorted(Store().get(r).seed for j in jobs for r in queue.get(j.id).result["records"]) == [1, 2, 3]


def test_cancel_stops_a_running_job_and_keeps_the_images_it_finished(runner):
    queue = JobQueue()
    job = submit_generation(queue, count=6, size=32, steps=12)
    wait_until(lambda: len(queue.get(job.id).result.get("records") or []) >= 1)
    queue.cancel(job.id)
    job = wait_finished(queue, job.id)
    kept = job.result["records"]
    assert job.state == CANCELLED and 1 <= len(kept) < 6, job.message
    assert "kept" in job.message
    assert Store().count() == len(kept)


def _start_worker(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "core", "worker", "--max-jobs", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.timeout(600)
def test_a_worker_killed_mid_job_has_its_job_picked_up_again_and_finished_once(isolated_data_dir):
    queue = JobQueue()
    job = submit_generation(queue, count=4, size=32, steps=16, seed=100)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    first = _start_worker(env)
    try:
        wait_until(lambda: len(queue.get(job.id).result.get("records") or []) >= 1, timeout=300)
        assert queue.get(job.id).state == "running"
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        kept_before = list(queue.get(job.id).result["records"])
        second = _start_worker(env)
        try:
            job = wait_finished(queue, job.id, timeout=300)
        finally:
            second.wait(60)
    finally:
        if first.poll() is None:
            first.kill()
    assert job.state == DONE, (job.message, job.error)
    assert job.attempts == 2
    assert job.result["records"][: len(kept_before)] == kept_before
    assert saved_seeds(job) == [100, 101, 102, 103]  # every image once, none twice
    assert Store().count() == 4


@pytest.mark.timeout(600)
def test_a_ray_worker_killed_mid_job_is_retried_by_ray_and_the_job_finishes_once(ray_cluster, monkeypatch):
    from core.jobs.models import WorkerRecord
    from core.jobs.ray_backend import RayDispatcher

    monkeypatch.setenv("MOSAIC_RAY_ADDRESS", ray_cluster)
    queue = JobQueue()
    job = submit_generation(queue, count=4, size=32, steps=16, seed=200)
    dispatcher = RayDispatcher(poll_s=0.05)
    thread = threading.Thread(target=dispatcher.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(queue.get(job.id).result.get("records") or []) >= 1, timeout=300)

        def task_worker():
            with queue._sessions() as session:
                from sqlalchemy import select

                return session.scalars(
                    select(WorkerRecord).where(WorkerRecord.backend == "ray", WorkerRecord.job_id == job.id)
                ).first()

        record = wait_until(task_worker)
        os.kill(record.pid, signal.SIGKILL)
        job = wait_finished(queue, job.id, timeout=300)
    finally:
        dispatcher.stop()
        thread.join(60)
    assert job.state == DONE, (job.message, job.error)
    assert job.attempts == 2
    assert saved_seeds(job) == [200, 201, 202, 203]
    assert Store().count() == 4
