"""The job queue: every long piece of work is a row in the ``jobs`` table.

Pages and the CLI *submit* jobs and *watch* them; workers (:mod:`core.jobs.worker`) *claim* and
run them. All state lives in the database, so leaving a page, closing a tab or restarting the server
loses nothing, and several worker processes (or machines, through Ray) can share one queue.

Claiming is atomic on SQLite and PostgreSQL alike: a conditional ``UPDATE … WHERE state = 'queued'``
that only one claimant can win (its row count is 1). Fairness: the next job goes to the owner with
the fewest running jobs, then the one served longest ago (round-robin by owner, not first come first
served), so one person's batch of twenty does not starve everybody else.

A running job whose worker stops saying it is alive (killed, machine gone) is put back in the
queue, up to ``max_attempts`` runs, then marked failed with the reason; nothing stays "running"
forever (:meth:`JobQueue.requeue_stale`).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text, update

from core.errors import BadInputError
from core.jobs.models import (
    ACTIVE,
    CANCELLED,
    DONE,
    FAILED,
    FINISHED,
    KINDS,
    QUEUED,
    RUNNING,
    JobRecord,
    WorkerRecord,
)
from core.store import Store
from core.store.models import utcnow

logger = logging.getLogger(__name__)

#: a worker that has not said it is alive for this long is taken for dead
WORKER_TIMEOUT_S = 30.0
#: how often a worker says it is alive
HEARTBEAT_S = 2.0


def new_worker_id(device: str = "cpu") -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{device}:{uuid.uuid4().hex[:6]}"


class JobQueue:
    """Submit, claim, update and watch jobs. Shares the database of ``store`` (default: a new Store).

    Seen from the store's workspace: jobs are submitted there, and :meth:`get`, :meth:`list` and
    :meth:`cancel` only see that workspace's jobs (another workspace's job is reported like a missing
    one). Workers, which run every workspace's jobs, use ``all_workspaces=True``.
    """

    def __init__(self, store: Store | None = None, all_workspaces: bool = False) -> None:
        self.store = store or Store(recover=False)
        self.workspace = self.store.workspace
        self.all_workspaces = all_workspaces
        self._sessions = self.store._sessions

    # ------------------------------------------------------------------ submitting
    def submit(
        self,
        kind: str,
        params: dict[str, Any],
        owner: str,
        title: str = "",
        device: str = "cpu",
        dedupe_key: str | None = None,
        max_attempts: int = 3,
    ) -> JobRecord:
        """Queue a job and return it. With ``dedupe_key``, an active job of the same key is returned instead."""
        if kind not in KINDS:
            raise BadInputError(f"Unknown kind of job {kind!r}.")
        record = JobRecord(
            id=uuid.uuid4().hex[:16],
            kind=kind,
            owner=owner[:128],
            workspace=self.workspace,
            title=title[:500],
            state=QUEUED,
            params=params,
            result={},
            progress=0.0,
            message="Waiting for a free worker…",
            device=device,
            dedupe_key=dedupe_key,
            cancel_requested=False,
            attempts=0,
            max_attempts=max_attempts,
        )
        with self._sessions.begin() as session:
            if dedupe_key:
                # check and insert under one lock, so two racing clicks (two processes) make one job
                _lock_for_key(session, dedupe_key)
                existing = session.scalars(
                    select(JobRecord)
                    .where(
                        JobRecord.dedupe_key == dedupe_key,
                        JobRecord.workspace == self.workspace,
                        JobRecord.state.in_(ACTIVE),
                    )
                    .order_by(JobRecord.created_at, JobRecord.id)
                    .limit(1)
                ).first()
                if existing is not None:
                    return existing
            session.add(record)
        logger.info("queued %s job %s for %s", kind, record.id, owner)
        return self.get(record.id)

    # ------------------------------------------------------------------ reading
    def get(self, job_id: str) -> JobRecord:
        with self._sessions() as session:
            record = session.get(JobRecord, str(job_id))
        if record is None or not (self.all_workspaces or record.workspace == self.workspace):
            raise BadInputError(f"No job with id {job_id!r}. See 'python -m core jobs list'.")
        return record

    def list(
        self, owner: str | None = None, states: Iterable[str] | None = None, limit: int | None = 50
    ) -> list[JobRecord]:
        """This workspace's jobs, newest first (optionally one owner's, in some states)."""
        with self._sessions() as session:
            query = select(JobRecord).order_by(JobRecord.created_at.desc(), JobRecord.id)
            if not self.all_workspaces:
                query = query.where(JobRecord.workspace == self.workspace)
            if owner is not None:
                query = query.where(JobRecord.owner == owner)
            if states is not None:
                query = query.where(JobRecord.state.in_(list(states)))
            if limit:
                query = query.limit(limit)
            return list(session.scalars(query))

    def position(self, job_id: str) -> int:
        """How many jobs will run before this one (0 when it runs now or is finished).

        Counts the jobs running now plus the queued jobs the round-robin order puts first.
        """
        job = self.get(job_id)
        if job.state != QUEUED:
            return 0
        with self._sessions() as session:
            running_by_owner = dict(
                session.execute(
                    select(JobRecord.owner, func.count()).where(JobRecord.state == RUNNING).group_by(JobRecord.owner)
                ).all()
            )
            queued = list(
                session.execute(
                    select(JobRecord.id, JobRecord.owner)
                    .where(JobRecord.state == QUEUED)
                    .order_by(JobRecord.created_at, JobRecord.id)
                )
            )
        order = _round_robin([(row.id, row.owner) for row in queued], running_by_owner)
        running = sum(running_by_owner.values())
        return int(running) + order.index(job_id) if job_id in order else int(running)

    # ------------------------------------------------------------------ claiming
    def claim(
        self, worker: str, devices: Sequence[str] = ("cpu",), kinds: Sequence[str] | None = None
    ) -> JobRecord | None:
        """Atomically take the next job for ``worker`` (fair across owners); None when the queue is empty.

        A queue of one workspace (not ``all_workspaces``) only takes that workspace's jobs.
        """
        for _attempt in range(20):
            candidate = self._next_candidate(devices, kinds)
            if candidate is None:
                return None
            job = self.claim_id(candidate, worker)
            if job is not None:
                return job
        return None

    def claim_id(self, job_id: str, worker: str) -> JobRecord | None:
        """Atomically take one queued job; None when somebody else took it (or it is not queued)."""
        now = utcnow()
        with self._sessions.begin() as session:
            won = session.execute(
                update(JobRecord)
                .where(JobRecord.id == job_id, JobRecord.state == QUEUED)
                .values(
                    state=RUNNING,
                    worker=worker,
                    heartbeat_at=now,
                    started_at=now,
                    attempts=JobRecord.attempts + 1,
                    message="Starting…",
                )
                .execution_options(synchronize_session=False)
            ).rowcount
        if won != 1:
            return None
        logger.info("worker %s claimed job %s", worker, job_id)
        return self.get(job_id)

    def _next_candidate(self, devices: Sequence[str], kinds: Sequence[str] | None) -> str | None:
        with self._sessions() as session:
            query = (
                select(JobRecord.id, JobRecord.owner, JobRecord.created_at)
                .where(JobRecord.state == QUEUED, JobRecord.device.in_(list(devices)))
                .order_by(JobRecord.created_at, JobRecord.id)
            )
            if kinds:
                query = query.where(JobRecord.kind.in_(list(kinds)))
            if not self.all_workspaces:  # a worker of one workspace
                query = query.where(JobRecord.workspace == self.workspace)
            queued = list(session.execute(query.limit(500)))
            if not queued:
                return None
            owners = {row.owner for row in queued}
            running = dict(
                session.execute(
                    select(JobRecord.owner, func.count())
                    .where(JobRecord.state == RUNNING, JobRecord.owner.in_(owners))
                    .group_by(JobRecord.owner)
                ).all()
            )
            last_started = dict(
                session.execute(
                    select(JobRecord.owner, func.max(JobRecord.started_at))
                    .where(JobRecord.owner.in_(owners), JobRecord.started_at.is_not(None))
                    .group_by(JobRecord.owner)
                ).all()
            )
        first_queued: dict[str, tuple[datetime, str]] = {}
        for row in queued:
            first_queued.setdefault(row.owner, (row.created_at, row.id))
        epoch = datetime(1970, 1, 1)
        owner = min(
            owners,
            key=lambda o: (running.get(o, 0), last_started.get(o) or epoch, first_queued[o]),
        )
        return first_queued[owner][1]

    # ------------------------------------------------------------------ running
    def report(
        self,
        job_id: str,
        progress: float | None = None,
        message: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> bool:
        """Progress from the worker (also its heartbeat). Returns True when the user asked to cancel."""
        values: dict[str, Any] = {"heartbeat_at": utcnow()}
        if progress is not None:
            values["progress"] = max(0.0, min(1.0, float(progress)))
        if message is not None:
            values["message"] = message[:2000]
        if result is not None:
            values["result"] = result
        with self._sessions.begin() as session:
            session.execute(
                update(JobRecord)
                .where(JobRecord.id == job_id, JobRecord.state == RUNNING)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            cancel = session.scalar(select(JobRecord.cancel_requested).where(JobRecord.id == job_id))
        return bool(cancel)

    def finish(self, job_id: str, result: dict[str, Any], message: str = "Done.") -> None:
        self._end(job_id, DONE, message=message, result=result, progress=1.0)

    def fail(self, job_id: str, error: str, result: dict[str, Any] | None = None) -> None:
        self._end(job_id, FAILED, message=error, error=error, result=result)

    def cancelled(self, job_id: str, message: str, result: dict[str, Any] | None = None) -> None:
        self._end(job_id, CANCELLED, message=message, result=result)

    def release(self, job_id: str, message: str = "Waiting for a free worker…") -> None:
        """Give a running job back to the queue (its worker is stopping); its attempt is not counted."""
        with self._sessions.begin() as session:
            session.execute(
                update(JobRecord)
                .where(JobRecord.id == job_id, JobRecord.state == RUNNING)
                .values(state=QUEUED, worker=None, message=message, attempts=JobRecord.attempts - 1)
                .execution_options(synchronize_session=False)
            )

    def _end(self, job_id: str, state: str, **values: Any) -> None:
        values = {k: v for k, v in values.items() if v is not None}
        with self._sessions.begin() as session:
            session.execute(
                update(JobRecord)
                .where(JobRecord.id == job_id, JobRecord.state.in_(ACTIVE))
                .values(state=state, finished_at=utcnow(), **values)
                .execution_options(synchronize_session=False)
            )
        logger.info("job %s %s", job_id, state)

    # ------------------------------------------------------------------ cancelling
    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued job at once; ask a running one to stop (it keeps what it finished)."""
        job = self.get(job_id)
        if job.state in FINISHED:
            return job
        with self._sessions.begin() as session:
            session.execute(
                update(JobRecord)
                .where(JobRecord.id == job_id, JobRecord.state == QUEUED)
                .values(state=CANCELLED, message="Cancelled before it started.", finished_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            session.execute(
                update(JobRecord)
                .where(JobRecord.id == job_id, JobRecord.state == RUNNING)
                .values(cancel_requested=True, message="Stopping…")
                .execution_options(synchronize_session=False)
            )
        return self.get(job_id)

    # ------------------------------------------------------------------ workers and recovery
    def worker_alive(self, worker: str, device: str = "cpu", backend: str = "local", job_id: str | None = None) -> None:
        """A worker's heartbeat (registers it the first time)."""
        host, pid = _host_pid(worker)
        with self._sessions.begin() as session:
            record = session.get(WorkerRecord, worker)
            if record is None:
                session.add(WorkerRecord(id=worker, host=host, pid=pid, device=device, backend=backend, job_id=job_id))
            else:
                record.heartbeat_at = utcnow()
                record.job_id = job_id

    def worker_gone(self, worker: str) -> None:
        with self._sessions.begin() as session:
            record = session.get(WorkerRecord, worker)
            if record is not None:
                session.delete(record)

    def live_workers(self, backend: str | None = None) -> list[WorkerRecord]:
        limit = utcnow() - timedelta(seconds=WORKER_TIMEOUT_S)
        with self._sessions() as session:
            query = select(WorkerRecord).where(WorkerRecord.heartbeat_at >= limit)
            if backend:
                query = query.where(WorkerRecord.backend == backend)
            workers = list(session.scalars(query))
        return [w for w in workers if not _dead_here(w.host, w.pid)]

    def requeue_stale(self, timeout_s: float = WORKER_TIMEOUT_S) -> dict[str, int]:
        """Running jobs whose worker is gone go back to the queue, or fail after their last attempt."""
        limit = utcnow() - timedelta(seconds=timeout_s)
        counts = {"requeued": 0, "failed": 0}
        with self._sessions.begin() as session:  # forget workers long silent (their jobs are handled below)
            session.execute(
                delete(WorkerRecord)
                .where(WorkerRecord.heartbeat_at < utcnow() - timedelta(seconds=20 * timeout_s))
                .execution_options(synchronize_session=False)
            )
        with self._sessions() as session:
            running = list(session.scalars(select(JobRecord).where(JobRecord.state == RUNNING)))
        for job in running:
            host, pid = _host_pid(job.worker or "")
            stale = job.heartbeat_at is None or job.heartbeat_at < limit or _dead_here(host, pid)
            if not stale:
                continue
            if job.cancel_requested:
                new = {"state": CANCELLED, "message": "Cancelled.", "finished_at": utcnow()}
                key = "failed"
            elif job.attempts >= job.max_attempts:
                reason = (
                    f"The worker running this job stopped {job.attempts} times (last seen "
                    f"{job.heartbeat_at:%H:%M:%S} UTC). What it finished is kept; try again, or ask your administrator."
                    if job.heartbeat_at
                    else "The worker running this job stopped. What it finished is kept."
                )
                new = {"state": FAILED, "error": reason, "message": reason, "finished_at": utcnow()}
                key = "failed"
            else:
                new = {"state": QUEUED, "worker": None, "message": "Interrupted; it will resume where it stopped…"}
                key = "requeued"
            with self._sessions.begin() as session:
                done = session.execute(
                    update(JobRecord)
                    .where(JobRecord.id == job.id, JobRecord.state == RUNNING, JobRecord.worker == job.worker)
                    .values(**new)
                    .execution_options(synchronize_session=False)
                ).rowcount
            if done == 1:
                counts[key] += 1
                logger.warning("job %s: worker %s gone, %s", job.id, job.worker, new["state"])
        return counts


def _lock_for_key(session, key: str) -> None:
    """Serialise the submits of one dedupe key until the transaction ends (PostgreSQL: an advisory lock;
    SQLite: taking the database's write lock now, with an UPDATE that changes nothing)."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
    else:
        session.execute(update(JobRecord).where(JobRecord.id == "").values(state=JobRecord.state))


def _round_robin(queued: Sequence[tuple[str, str]], running: dict[str, int]) -> list[str]:
    """Queued job ids (oldest first, with owners) in the order owners take turns.

    An owner's turn count starts at its number of running jobs, as in :meth:`JobQueue.claim`.
    """
    turn: dict[str, int] = dict(running)
    first: dict[str, int] = {}
    keyed = []
    for position, (job_id, owner) in enumerate(queued):
        first.setdefault(owner, position)
        round_ = turn.get(owner, 0)
        turn[owner] = round_ + 1
        keyed.append((round_, first[owner], job_id))
    return [job_id for _r, _f, job_id in sorted(keyed)]


def _host_pid(worker: str) -> tuple[str, int]:
    parts = worker.split(":")
    try:
        return parts[0], int(parts[1])
    except (IndexError, ValueError):
        return "", 0


def _dead_here(host: str, pid: int) -> bool:
    """True when the worker ran on this machine and its process no longer exists."""
    if host != socket.gethostname() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
