"""Workers: processes that take jobs from the queue and run them.

``python -m core worker`` runs one until it is stopped (Ctrl-C / SIGTERM finish or hand back the
current job). The studio starts its own workers on first use (:mod:`core.jobs.pool`); a command
that waits for its job runs it itself when no worker is alive.

A worker keeps loaded engines (the Stable Diffusion pipeline, libraries) between jobs, says it is
alive every two seconds, and, every few seconds, puts back in the queue the jobs of workers that
stopped saying so (:meth:`core.jobs.queue.JobQueue.requeue_stale`).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable

from core.errors import GenerationCancelled, MosaicError
from core.jobs.context import JobContext
from core.jobs.handlers import run_handler
from core.jobs.models import JobRecord
from core.jobs.queue import HEARTBEAT_S, JobQueue, new_worker_id
from core.words import plural

logger = logging.getLogger(__name__)

REQUEUE_EVERY_S = 5.0


def execute(queue: JobQueue, job: JobRecord, worker: str, cache: dict | None = None, device: str = "cpu") -> str:
    """Run one claimed job to its end (done, failed or cancelled) with a heartbeat. Returns the state."""
    context = JobContext(queue, job, cache)
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(min(0.5, HEARTBEAT_S)):
            try:
                context.flush()
                queue.worker_alive(worker, device=device, job_id=job.id)
            except Exception as err:  # a database hiccup must not kill the job
                logger.warning("heartbeat of job %s failed: %s", job.id, err)

    thread = threading.Thread(target=heartbeat, name=f"heartbeat-{job.id}", daemon=True)
    thread.start()
    try:
        context.flush()
        message = run_handler(context)
        context.flush()
        queue.finish(job.id, context.result, message=message or "Done.")
        return "done"
    except GenerationCancelled:
        queue.cancelled(job.id, _cancel_message(context), result=context.result)
        return "cancelled"
    except MosaicError as err:  # the message for the user; the technical detail kept apart for the pages
        result = {**context.result, "error_detail": err.detail} if err.detail else context.result
        queue.fail(job.id, str(err), result=result)
        return "failed"
    except MemoryError:
        queue.fail(
            job.id, "The studio ran out of memory for this job. Try fewer or smaller images.", result=context.result
        )
        return "failed"
    except Exception as err:
        logger.exception("job %s failed", job.id)
        queue.fail(
            job.id,
            f"Something went wrong while running this job ({type(err).__name__}: {err}). What it finished is kept.",
            result=context.result,
        )
        return "failed"
    finally:
        stop.set()
        thread.join(timeout=5)


def _cancel_message(context: JobContext) -> str:
    if context.result.get("cancel_note"):  # the handler knows better what it kept (a library import)
        return str(context.result["cancel_note"])
    kept = len(context.result.get("records") or [])
    if kept:
        return f"Cancelled. {plural(kept, 'finished image')} kept in the Gallery."
    return "Cancelled. Nothing was saved from the unfinished work."


class Worker:
    """Takes jobs for one device from the queue until stopped."""

    def __init__(
        self,
        queue: JobQueue | None = None,
        device: str = "cpu",
        poll_s: float = 0.25,
        idle_exit_s: float | None = None,
        parent_pid: int | None = None,
        warm_up: bool = False,
    ) -> None:
        """``warm_up``: read and open the libraries' prepared indexes in the background when
        :meth:`run` starts (:mod:`core.analyzer.warmup`), so that the first check does not wait for them."""
        self.queue = queue or JobQueue(all_workspaces=True)
        self.device = device
        self.devices = ("cpu", "gpu") if device.startswith("cuda") else ("cpu",)
        self.id = new_worker_id(device)
        self.poll_s = poll_s
        self.idle_exit_s = idle_exit_s
        self.parent_pid = parent_pid
        self.cache: dict = {}
        self.stopping = threading.Event()
        self.ran = 0
        self.warm_up = warm_up
        self.warm_up_thread: threading.Thread | None = None

    def run(self, max_jobs: int | None = None, on_job: Callable[[JobRecord, str], None] | None = None) -> int:
        """Run jobs until stopped (or ``max_jobs`` ran, or idle too long). Returns the number run."""
        if self.device.startswith("cuda"):
            os.environ.setdefault("MOSAIC_DEVICE", self.device)
        last_requeue = 0.0
        idle_since = time.monotonic()
        self.queue.worker_alive(self.id, device=self.device)
        if self.warm_up and self.warm_up_thread is None:
            from core.analyzer.warmup import start_warm_up

            only = None if self.queue.all_workspaces else self.queue.workspace
            self.warm_up_thread = start_warm_up(self.stopping, only)
        try:
            while not self.stopping.is_set():
                if self.parent_pid and os.getppid() != self.parent_pid:
                    logger.info("worker %s: the studio that started it is gone; stopping", self.id)
                    break
                now = time.monotonic()
                if now - last_requeue > REQUEUE_EVERY_S:
                    self.queue.requeue_stale()
                    last_requeue = now
                self.queue.worker_alive(self.id, device=self.device)
                job = self.queue.claim(self.id, devices=self.devices)
                if job is None:
                    if self.idle_exit_s is not None and now - idle_since > self.idle_exit_s:
                        break
                    self.stopping.wait(self.poll_s)
                    continue
                state = execute(self.queue, job, self.id, self.cache, self.device)
                self.ran += 1
                idle_since = time.monotonic()
                if on_job:
                    on_job(job, state)
                if max_jobs is not None and self.ran >= max_jobs:
                    break
        finally:
            self.queue.worker_gone(self.id)
        return self.ran

    def stop(self) -> None:
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        stop_on_signals(self.stop)


def stop_on_signals(stop: Callable[[], None]) -> None:
    """Ctrl-C and SIGTERM ask a worker (or dispatcher) to stop after the job in hand."""

    def handler(_signum, _frame) -> None:
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_job_here(queue: JobQueue, job_id: str) -> str:
    """Run one queued job in this process (a waiting command when no worker is alive)."""
    worker = new_worker_id("cpu")
    job = queue.claim_id(job_id, worker)
    if job is None:
        return queue.get(job_id).state
    try:
        queue.worker_alive(worker)
        return execute(queue, job, worker)
    finally:
        queue.worker_gone(worker)
