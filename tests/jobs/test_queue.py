"""The queue: atomic claims, fairness across owners, positions, one click = one job, cancelling, recovery."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from core.errors import BadInputError
from core.jobs import CANCELLED, DONE, FAILED, QUEUED, RUNNING, JobQueue, JobRecord
from core.store.models import utcnow


def _submit(queue: JobQueue, owner: str, n: int = 1, **kwargs) -> list[str]:
    return [queue.submit("generate", {"n": i}, owner=owner, **kwargs).id for i in range(n)]


def test_submit_claim_finish_round_trip():
    queue = JobQueue()
    (job_id,) = _submit(queue, "ann", title="4 images")
    job = queue.get(job_id)
    assert job.state == QUEUED and job.title == "4 images" and job.attempts == 0
    claimed = queue.claim("w1")
    assert claimed is not None and claimed.id == job_id and claimed.state == RUNNING and claimed.attempts == 1
    assert queue.claim("w2") is None
    assert queue.report(job_id, progress=0.5, message="half", result={"records": ["a"]}) is False
    queue.finish(job_id, {"records": ["a", "b"]}, message="Done: 2")
    job = queue.get(job_id)
    assert (job.state, job.progress, job.result, job.message) == (DONE, 1.0, {"records": ["a", "b"]}, "Done: 2")
    assert job.finished_at is not None and job.started_at is not None


def test_unknown_job_and_kind_are_clear_errors():
    queue = JobQueue()
    with pytest.raises(BadInputError, match="No job"):
        queue.get("nope")
    with pytest.raises(BadInputError, match="kind"):
        queue.submit("teleport", {}, owner="x")


def test_concurrent_claims_take_each_job_exactly_once():
    queue = JobQueue()
    ids = _submit(queue, "ann", 12) + _submit(queue, "bob", 12)
    taken: list[tuple[str, str]] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        own = JobQueue()
        while (job := own.claim(name)) is not None:
            with lock:
                taken.append((job.id, name))

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(j for j, _ in taken) == sorted(ids)
    assert len({w for _, w in taken}) > 1


def test_claims_take_turns_between_owners():
    queue = JobQueue()
    ann = _submit(queue, "ann", 3)
    bob = _submit(queue, "bob", 2)
    order = []
    while (job := queue.claim("w")) is not None:
        order.append(job.id)
        queue.finish(job.id, {})
    assert order == [ann[0], bob[0], ann[1], bob[1], ann[2]]


def test_an_owner_with_a_running_job_waits_behind_one_without():
    queue = JobQueue()
    ann = _submit(queue, "ann", 2)
    first = queue.claim("w1")
    assert first.id == ann[0]
    (bob,) = _submit(queue, "bob")
    assert queue.claim("w2").id == bob


def test_position_counts_running_and_the_jobs_whose_turn_comes_first():
    queue = JobQueue()
    ann = _submit(queue, "ann", 3)
    bob = _submit(queue, "bob", 1)
    assert [queue.position(j) for j in ann] == [0, 2, 3]
    assert queue.position(bob[0]) == 1
    queue.claim("w")
    assert queue.position(bob[0]) == 1  # ann's first job is running ahead of it
    assert queue.position(ann[0]) == 0


def test_the_same_click_twice_makes_one_job():
    queue = JobQueue()
    a = queue.submit("generate", {"x": 1}, owner="ann", dedupe_key="ann:abc")
    b = queue.submit("generate", {"x": 1}, owner="ann", dedupe_key="ann:abc")
    assert a.id == b.id
    assert len(queue.list()) == 1
    queue.claim("w")
    queue.finish(a.id, {})
    c = queue.submit("generate", {"x": 1}, owner="ann", dedupe_key="ann:abc")
    assert c.id != a.id  # once the first ended, the same settings may run again


def test_racing_duplicate_submits_leave_one_active_job():
    keys = []

    def submit() -> None:
        keys.append(JobQueue().submit("generate", {}, owner="ann", dedupe_key="k").id)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    active = [j for j in JobQueue().list() if j.state == QUEUED]
    assert len(active) == 1 and set(keys) == {active[0].id}


def test_cancel_a_queued_job_at_once_and_ask_a_running_one_to_stop():
    queue = JobQueue()
    first, second = _submit(queue, "ann", 2)
    assert queue.cancel(second).state == CANCELLED
    queue.claim("w")
    job = queue.cancel(first)
    assert job.state == RUNNING and job.cancel_requested
    assert queue.report(first, progress=0.3) is True
    queue.cancelled(first, "Cancelled.")
    assert queue.get(first).state == CANCELLED
    assert queue.cancel(first).state == CANCELLED  # cancelling an ended job changes nothing


def _age(queue: JobQueue, job_id: str, seconds: float) -> None:
    with queue._sessions.begin() as session:
        session.execute(
            update(JobRecord).where(JobRecord.id == job_id).values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
        )


def test_a_job_whose_worker_went_silent_is_queued_again_then_failed_after_its_last_attempt():
    queue = JobQueue()
    (job_id,) = _submit(queue, "ann", max_attempts=2)
    queue.claim("otherhost:123:cpu:x")
    assert queue.requeue_stale() == {"requeued": 0, "failed": 0}  # still fresh
    _age(queue, job_id, 120)
    assert queue.requeue_stale()["requeued"] == 1
    assert queue.get(job_id).state == QUEUED
    queue.claim("otherhost:124:cpu:y")
    _age(queue, job_id, 120)
    assert queue.requeue_stale()["failed"] == 1
    job = queue.get(job_id)
    assert job.state == FAILED and "stopped" in job.error


def test_a_job_whose_local_worker_process_is_gone_is_queued_again_without_waiting():
    import socket
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    queue = JobQueue()
    (job_id,) = _submit(queue, "ann")
    queue.claim(f"{socket.gethostname()}:{proc.pid}:cpu:abc")
    assert queue.requeue_stale()["requeued"] == 1
    assert queue.get(job_id).state == QUEUED
