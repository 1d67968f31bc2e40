"""``python -m core jobs …`` and ``python -m core worker``, and waiting for a submitted job."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
import threading
import time
from typing import Any

from core.errors import GenerationCancelled, MosaicError
from core.jobs.models import CANCELLED, DONE, FAILED, FINISHED, JobRecord
from core.jobs.queue import JobQueue

logger = logging.getLogger(__name__)


def cli_owner() -> str:
    """Who submits from the command line: the machine's user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _print(data: Any, as_json: bool, text: str) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(text)


def _line(job: JobRecord, queue: JobQueue) -> str:
    state = job.state
    if state == "queued":
        ahead = queue.position(job.id)
        state = f"queued ({ahead} ahead)" if ahead else "queued (next)"
    elif state == "running":
        state = f"running {job.progress:.0%}"
    return f"{job.id}  {job.kind:<15} {state:<18} {job.title or ''}"


def cmd_jobs(args: argparse.Namespace) -> int:
    from core.cli import store_of

    queue = JobQueue(store_of(args))
    if args.action == "list":
        jobs = queue.list(owner=None if args.all else None, limit=args.limit)
        data = [dict(j.as_dict(), position=queue.position(j.id)) for j in jobs]
        _print(data, args.json, "\n".join(_line(j, queue) for j in jobs) or "No jobs yet.")
        return 0
    if not args.id:
        raise MosaicError(f"'jobs {args.action}' needs a job id (see 'python -m core jobs list').")
    if args.action == "show":
        job = queue.get(args.id)
        data = dict(job.as_dict(), position=queue.position(job.id))
        text = _line(job, queue) + (f"\n{job.message}" if job.message else "")
        if job.error:
            text += f"\nerror: {job.error}"
        _print(data, args.json, text)
        return 0
    if args.action == "cancel":
        job = queue.cancel(args.id)
        text = {
            CANCELLED: "Cancelled.",
            "running": "Asked the job to stop; it keeps what it finished.",
        }.get(job.state, f"The job had already ended ({job.state}).")
        _print(job.as_dict(), args.json, text)
        return 0
    raise MosaicError(f"Unknown action {args.action!r}.")


def cmd_worker(args: argparse.Namespace) -> int:
    from core.jobs.backend import ray_address

    if ray_address():
        from core.jobs.ray_backend import RayDispatcher

        dispatcher = RayDispatcher(parent_pid=args.parent_pid)
        dispatcher.install_signal_handlers()
        print(f"Sending jobs to the Ray cluster at {ray_address()} (Ctrl-C to stop).", file=sys.stderr)
        dispatcher.run(max_jobs=args.max_jobs)
        return 0
    from core.jobs.worker import Worker

    if args.threads:  # several CPU workers on one machine share its cores instead of fighting over them
        import torch

        torch.set_num_threads(args.threads)
    queue = None
    if args.workspace:  # only this workspace's jobs
        from core.cli import store_of

        queue = JobQueue(store_of(args))
    worker = Worker(
        queue=queue,
        device=args.device,
        idle_exit_s=args.idle_exit,
        parent_pid=args.parent_pid,
        warm_up=not args.no_warm_up,
    )
    worker.install_signal_handlers()
    if not args.json:
        print(f"Worker {worker.id} is running jobs (Ctrl-C to stop).", file=sys.stderr)
    ran = worker.run(max_jobs=args.max_jobs)
    _print({"worker": worker.id, "ran": ran}, args.json, f"Worker stopped after {ran} job(s).")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    jobs = sub.add_parser("jobs", help="list, show or cancel background jobs")
    jobs.add_argument("action", nargs="?", default="list", choices=["list", "show", "cancel"])
    jobs.add_argument("id", nargs="?")
    jobs.add_argument("--all", action="store_true", help="everybody's jobs (default: all on this studio)")
    jobs.add_argument("--limit", type=_positive, default=50)
    jobs.add_argument("--json", action="store_true")
    jobs.set_defaults(func=cmd_jobs)

    worker = sub.add_parser("worker", help="run background jobs until stopped")
    worker.add_argument("--device", default="cpu", help="cpu, or cuda:N for one GPU")
    worker.add_argument("--max-jobs", type=_positive, default=None, help="stop after this many jobs")
    worker.add_argument("--idle-exit", type=float, default=None, help="stop after this many idle seconds")
    worker.add_argument("--threads", type=_positive, default=None, help="CPU threads for this worker's engines")
    worker.add_argument(
        "--no-warm-up", action="store_true",
        help="do not read and open the libraries' prepared indexes in the background when starting",
    )
    worker.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    worker.add_argument("--workspace", default=None, metavar="NAME", help="only this workspace's jobs (default: all)")
    worker.add_argument("--json", action="store_true")
    worker.set_defaults(func=cmd_worker)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more (got {value})")
    return value


def wait_for(queue: JobQueue, job: JobRecord, show_progress: bool, poll_s: float = 0.1) -> JobRecord:
    """Wait until ``job`` ends; run it here when no worker is alive to take it. Raises on failure.

    Ctrl-C while waiting cancels the job (it keeps what it finished).
    """
    from core.jobs.worker import run_job_here

    here: threading.Thread | None = None
    try:
        while True:
            job = queue.get(job.id)
            if job.state in FINISHED:
                break
            if job.state == "queued" and here is None and not _someone_takes(queue):
                # nobody else will take it: run it in this process, and keep showing its progress
                here = threading.Thread(target=run_job_here, args=(queue, job.id), name=f"job-{job.id}", daemon=True)
                here.start()
            if show_progress:
                ahead = queue.position(job.id) if job.state == "queued" else 0
                text = f"{ahead} job(s) ahead of yours" if ahead else (job.message or "Working…")
                print(f"\r{text} ({job.progress:.0%})".ljust(70), end="", file=sys.stderr, flush=True)
            time.sleep(poll_s)
    except KeyboardInterrupt:
        queue.cancel(job.id)
        if here is not None:
            here.join(30)  # let the job stop at its next step and record what it kept
        raise
    finally:
        if show_progress:
            print(file=sys.stderr)
    if job.state == FAILED:
        raise MosaicError(job.error or "The job failed.")
    if job.state == CANCELLED:
        raise GenerationCancelled(job.message or "The job was cancelled.")
    assert job.state == DONE
    return job


def _someone_takes(queue: JobQueue) -> bool:
    from core.jobs.backend import ray_address

    return bool(queue.live_workers()) or bool(ray_address())
