"""Jobs on a Ray cluster (``MOSAIC_RAY_ADDRESS=auto`` or ``ray://host:10001``).

The queue stays in the studio's database; a :class:`RayDispatcher` (``python -m core worker`` with
the variable set, or started by the studio itself) claims queued jobs and sends each to the cluster
as a Ray task. Ray does the scheduling and placement (a job that needs a GPU asks for one:
``num_gpus=1``) and the retries: a task whose worker process dies is run again (``max_retries``),
and the new run picks up what the job had finished (its saved images) from the database.

The task runs the same handler as a local worker and writes progress and results into the same
database. Every node needs the studio installed at the same path, the same ``MOSAIC_DATABASE_URL``
(a PostgreSQL server they all reach) and the same data folder (shared storage), see the README.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import update

from core import config
from core.errors import MosaicError
from core.jobs.backend import ray_address
from core.jobs.models import ACTIVE, FINISHED, QUEUED, RUNNING, JobRecord
from core.jobs.queue import JobQueue
from core.store.models import utcnow

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
#: a task whose worker process dies is run again this many times
MAX_RETRIES = 3


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect this process to the Ray cluster (once)."""
    import ray

    if ray.is_initialized():
        return
    address = address or ray_address()
    env = {
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "0"),
    }
    kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}, "ignore_reinit_error": True, "log_to_driver": False}
    if address and address != "local":
        kwargs["address"] = address
    else:  # a Ray instance of this process, on loopback only
        kwargs["_node_ip_address"] = "127.0.0.1"
        kwargs["include_dashboard"] = False
        num_cpus = num_cpus or int(os.environ.get("MOSAIC_RAY_NUM_CPUS", "0") or 0) or None
        if num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise MosaicError(
            f"Could not reach the Ray cluster at {address!r} ({err}). Start it with 'ray start --head' "
            "or unset MOSAIC_RAY_ADDRESS to run jobs on this machine."
        ) from None


def _task_worker_id() -> str:
    # "ray@" marks a worker whose liveness is judged by its heartbeat alone (it may be on another node)
    return f"ray@{socket.gethostname()}:{os.getpid()}:task:{uuid.uuid4().hex[:6]}"


def adopt(queue: JobQueue, job_id: str, dispatch_id: str, worker: str) -> JobRecord | None:
    """The task takes over its job: first run (claimed by the dispatcher) or a retry after a crash."""
    for _ in range(5):
        job = queue.get(job_id)
        if job.state in FINISHED:
            return None
        values: dict[str, Any] = {"state": RUNNING, "worker": worker, "heartbeat_at": utcnow()}
        if job.worker != dispatch_id:  # a retry: count the attempt
            values["attempts"] = JobRecord.attempts + 1
            values["message"] = "Resuming where it stopped…"
        with queue._sessions.begin() as session:
            won = session.execute(
                update(JobRecord)
                .where(JobRecord.id == job_id, JobRecord.state.in_(ACTIVE))
                .where(JobRecord.worker == job.worker if job.worker else JobRecord.worker.is_(None))
                .values(**values)
                .execution_options(synchronize_session=False)
            ).rowcount
        if won == 1:
            return queue.get(job_id)
    return None


def run_task(job_id: str, dispatch_id: str, data_dir: str, database_url: str) -> str:
    """Body of the Ray task: run one job in this Ray worker process (against the dispatcher's database)."""
    from core.jobs.worker import execute

    logging.basicConfig(level=logging.INFO)
    os.environ[config.DATA_DIR_ENV] = data_dir
    os.environ[config.DATABASE_URL_ENV] = database_url
    queue = JobQueue(all_workspaces=True)
    worker = _task_worker_id()
    queue.worker_alive(worker, device="ray", backend="ray", job_id=job_id)
    try:
        job = adopt(queue, job_id, dispatch_id, worker)
        if job is None:
            return queue.get(job_id).state
        cache = _TASK_CACHE.setdefault(f"{data_dir}|{database_url}", {})
        return execute(queue, job, worker, cache, device="ray")
    finally:
        queue.worker_gone(worker)


#: engines kept loaded between the tasks a Ray worker process runs, per data folder and database
_TASK_CACHE: dict[str, dict[str, Any]] = {}


class RayDispatcher:
    """Claims queued jobs and sends them to the Ray cluster; watches them until they end."""

    def __init__(
        self,
        queue: JobQueue | None = None,
        poll_s: float = 0.5,
        num_cpus: int | None = None,
        parent_pid: int | None = None,
    ) -> None:
        self.parent_pid = parent_pid
        self.queue = queue or JobQueue(all_workspaces=True)
        self.id = f"ray-dispatch@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.poll_s = poll_s
        self.num_cpus = num_cpus
        self.stopping = threading.Event()
        self.in_flight: dict[Any, str] = {}
        self.sent = 0

    def _remote(self):
        import ray

        return ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)(run_task)

    def _capacity(self) -> int:
        import ray

        try:
            return max(1, int(ray.cluster_resources().get("CPU", 1)))
        except Exception:  # the cluster is restarting: send one at a time
            return 1

    def run(self, max_jobs: int | None = None) -> int:
        connect(num_cpus=self.num_cpus)
        remote = self._remote()
        last_requeue = 0.0
        try:
            while not self.stopping.is_set():
                if self.parent_pid and os.getppid() != self.parent_pid and not self.in_flight:
                    logger.info("dispatcher %s: the studio that started it is gone; stopping", self.id)
                    break
                now = time.monotonic()
                self.queue.worker_alive(self.id, device="ray", backend="ray")
                if now - last_requeue > 5.0:
                    self.queue.requeue_stale()
                    last_requeue = now
                self._collect(timeout=0)
                if len(self.in_flight) < self._capacity() and (max_jobs is None or self.sent < max_jobs):
                    job = self.queue.claim(self.id, devices=("cpu", "gpu"))
                    if job is not None:
                        options: dict[str, Any] = {"num_cpus": 1}
                        if job.device == "gpu":
                            options["num_gpus"] = 1
                        ref = remote.options(**options).remote(
                            job.id, self.id, str(config.data_dir()), config.database_url()
                        )
                        self.in_flight[ref] = job.id
                        self.sent += 1
                        continue
                if max_jobs is not None and self.sent >= max_jobs and not self.in_flight:
                    break
                self._collect(timeout=self.poll_s)
        finally:
            self.queue.worker_gone(self.id)
        return self.sent

    def _collect(self, timeout: float) -> None:
        import ray

        if not self.in_flight:
            if timeout:
                self.stopping.wait(timeout)
            return
        ready, _ = ray.wait(list(self.in_flight), num_returns=len(self.in_flight), timeout=timeout)
        for ref in ready:
            job_id = self.in_flight.pop(ref)
            try:
                ray.get(ref)
            except Exception as err:  # Ray gave up (retries spent) or the task could not start
                logger.warning("Ray task of job %s failed: %s", job_id, err)
                job = self.queue.get(job_id)
                if job.state in (QUEUED, RUNNING):
                    self.queue.fail(
                        job_id,
                        f"The Ray cluster could not finish this job after {MAX_RETRIES + 1} tries "
                        f"({type(err).__name__}). What it finished is kept.",
                    )

    def stop(self) -> None:
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        from core.jobs.worker import stop_on_signals

        stop_on_signals(self.stop)
