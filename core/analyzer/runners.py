"""Where the shard work of an index build runs: in this process, or as Ray tasks.

An index build describes its shards and fills their search lists; each piece reads and writes only
files of its own shard. :class:`LocalRunner` runs the pieces one after the other in this process;
:class:`RayRunner` (``MOSAIC_RAY_ADDRESS`` set) sends them to the Ray cluster as tasks, a few per
worker in flight, and hands the results back in order. Ray places and retries the tasks (a task whose
worker dies runs again); the nodes need the data folder on shared storage, as for jobs.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

logger = logging.getLogger(__name__)

#: a task whose worker process dies is run again this many times
MAX_RETRIES = 3
#: tasks in flight per CPU of the cluster (the next ones wait, so the driver does not run ahead)
_IN_FLIGHT_PER_CPU = 2


class LocalRunner:
    """Runs each piece in this process, in order, when its result is asked for."""

    name = "local"

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            yield fn(item)


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
        for item in items:
            pending.append(remote.remote(fn, item))
            if len(pending) >= window:
                yield ray.get(pending.popleft())
        while pending:
            yield ray.get(pending.popleft())


def shard_runner() -> LocalRunner | RayRunner:
    """Ray when ``MOSAIC_RAY_ADDRESS`` is set, this process otherwise."""
    from core.jobs.backend import ray_address

    address = ray_address()
    if address:
        logger.info("index shards run on Ray (%s)", address)
        return RayRunner(address)
    return LocalRunner()
