"""Where the pieces of a long library task run: in this process, on a few threads, or as Ray tasks.

Two tasks are cut into independent pieces. An index build describes its shards and fills their search
lists; each piece reads and writes only files of its own shard (:func:`shard_runner`). An import decodes
and re-encodes each picture; a piece gets the file's bytes and hands back the encoded picture, the caller
writes it (:func:`picture_runner`).

:class:`LocalRunner` runs the pieces one after the other in this process; :class:`ThreadRunner` on a few
threads of this process (Pillow lets go of the interpreter lock while it decodes, resizes and encodes, so
the threads use the cores); :class:`RayRunner` (``MOSAIC_RAY_ADDRESS`` set) sends them to the Ray cluster
as tasks. Every runner hands the results back in order and keeps only a few pieces in flight, so the
caller's loop never runs far ahead of the work. Ray places and retries the tasks (a task whose worker dies
runs again); an index build on Ray needs the data folder on shared storage, as for jobs.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

logger = logging.getLogger(__name__)

#: a task whose worker process dies is run again this many times
MAX_RETRIES = 3
#: pieces in flight per worker (the next ones wait, so the caller does not run ahead)
_IN_FLIGHT_PER_CPU = 2
#: an import of fewer pictures than this decodes them in the caller's thread (threads do not pay off)
THREADS_FROM = 64


class Runner(Protocol):
    name: str

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]: ...


class LocalRunner:
    """Runs each piece in this process, in order, when its result is asked for."""

    name = "local"

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            yield fn(item)


class ThreadRunner:
    """Runs the pieces on ``workers`` threads of this process; results in order.

    For work that lets go of the interpreter lock (Pillow's codecs and resampling). Stopping early
    (the caller closes the iterator, or a piece raises) drops the pieces not yet started.
    """

    name = "threads"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        window = max(2, _IN_FLIGHT_PER_CPU * self.workers)
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="mosaic-piece")
        pending: deque[Future] = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)


def _run_one(fn: Callable[[Any], Any], item: Any) -> Any:
    """A piece on a Ray worker: one thread for torch and FAISS (the cluster runs one task per CPU)."""
    import faiss
    import torch

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    return fn(item)


class RayRunner:
    """Runs each piece as a Ray task (``num_cpus=1``, retried on a lost worker); results in order."""

    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        from core.jobs.ray_backend import connect

        connect(address)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        import ray

        remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_run_one)
        window = max(2, _IN_FLIGHT_PER_CPU * int(ray.cluster_resources().get("CPU", 1)))
        pending: deque = deque()
        try:
            for item in items:
                pending.append(remote.remote(fn, item))
                if len(pending) >= window:
                    yield ray.get(pending.popleft())
            while pending:
                yield ray.get(pending.popleft())
        finally:
            for ref in pending:
                ray.cancel(ref)


def _ray_address() -> str | None:
    from core.jobs.backend import ray_address

    return ray_address()


def shard_runner() -> LocalRunner | RayRunner:
    """Ray when ``MOSAIC_RAY_ADDRESS`` is set, this process otherwise (torch and FAISS use its cores)."""
    address = _ray_address()
    if address:
        logger.info("index shards run on Ray (%s)", address)
        return RayRunner(address)
    return LocalRunner()


def picture_runner(expected: int = 0) -> Runner:
    """Where an import decodes its pictures: Ray when ``MOSAIC_RAY_ADDRESS`` is set, else threads of this
    process when ``expected`` is unknown (0) or at least :data:`THREADS_FROM`, else the caller's thread."""
    address = _ray_address()
    if address:
        logger.info("pictures are decoded on Ray (%s)", address)
        return RayRunner(address)
    if expected and expected < THREADS_FROM:
        return LocalRunner()
    return ThreadRunner()
