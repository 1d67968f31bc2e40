"""The studio's own workers: processes on this machine that it starts on first use and keeps alive.

One worker per device (each GPU, or the CPU when there is none; ``MOSAIC_WORKERS=N`` sets the number
of CPU workers), or, with ``MOSAIC_RAY_ADDRESS`` set, one dispatcher that sends jobs to the Ray
cluster. Workers watch the studio's process: when it is gone they finish the job in hand and stop
(a job interrupted anyway is resumed by the next worker, see :meth:`JobQueue.requeue_stale`).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

from core import config
from core.jobs.backend import WORKERS_ENV, ray_address

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]


def local_devices() -> list[str]:
    """The devices that get a worker: each CUDA GPU, else the CPU (``MOSAIC_WORKERS`` CPU workers)."""
    try:
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # a broken CUDA install: run on the CPU
        gpus = 0
    if gpus:
        return [f"cuda:{i}" for i in range(gpus)]
    try:
        count = max(0, int(os.environ.get(WORKERS_ENV, "1")))
    except ValueError:
        count = 1
    return ["cpu"] * count  # 0: the studio starts none (workers are started by hand: python -m core worker)


class WorkerPool:
    """Starts and restarts this studio's worker processes."""

    def __init__(self, devices: list[str] | None = None) -> None:
        self.devices = devices
        self.processes: list[subprocess.Popen] = []
        self._lock = threading.Lock()
        self.log_path = config.data_dir() / "logs" / "workers.log"

    def _command(self, device: str, cpu_workers: int = 1) -> list[str]:
        command = [sys.executable, "-m", "core", "worker", "--device", device, "--parent-pid", str(os.getpid())]
        if device == "cpu" and cpu_workers > 1:  # share the cores: N workers with all cores each would thrash
            command += ["--threads", str(max(1, (os.cpu_count() or 1) // cpu_workers))]
        return command

    def ensure(self) -> None:
        """Start the workers that are not running (cheap when all are)."""
        with self._lock:
            wanted = ["ray"] if ray_address() else (self.devices if self.devices is not None else local_devices())
            alive = [p for p in self.processes if p.poll() is None]
            for gone in set(self.processes) - set(alive):
                logger.warning("worker process %s stopped (exit %s); starting another", gone.pid, gone.returncode)
            self.processes = alive
            for device in wanted[len(alive) :]:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.log_path, "ab") as log:
                    proc = subprocess.Popen(
                        self._command("cpu" if device == "ray" else device, wanted.count("cpu")),
                        cwd=ROOT,
                        env=dict(
                            os.environ,
                            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                        ),
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=log,
                    )
                self.processes.append(proc)
                logger.info("started worker process %s for %s", proc.pid, device)

    def stop(self, timeout: float = 30.0) -> None:
        with self._lock:
            for proc in self.processes:
                if proc.poll() is None:
                    proc.terminate()
            for proc in self.processes:
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
            self.processes = []
