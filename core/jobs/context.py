"""What a running job's handler sees: its parameters, a progress reporter, a cancel token, its result.

The handler reports progress as often as it likes; the worker's heartbeat thread writes the latest
report to the database (at most every half second) and reads back whether the user asked to
cancel. ``save_result`` is written at once: it is how a job keeps what it finished (image ids, a
campaign id) across a crash and a retry.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from core import config
from core.engines.base import CancelToken, Progress
from core.jobs.models import JobRecord
from core.jobs.queue import JobQueue
from core.store import Store

if TYPE_CHECKING:
    from core.libraries import LibraryManager

logger = logging.getLogger(__name__)


def job_folder(job_id: str) -> Path:
    """Files of one job (its live preview, analysis results) under the data folder."""
    path = config.data_dir() / "jobs" / job_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def preview_path(job_id: str) -> Path:
    return config.data_dir() / "jobs" / job_id / "preview.png"


class JobContext:
    """The running job, as its handler sees it."""

    def __init__(self, queue: JobQueue, job: JobRecord, cache: dict[str, Any] | None = None) -> None:
        self.queue = queue
        self.job = job
        #: the job's workspace: what it reads and makes belongs there (see :meth:`store`, :meth:`libraries`)
        self.workspace: str = job.workspace or config.DEFAULT_WORKSPACE
        self.params: dict[str, Any] = dict(job.params or {})
        self.result: dict[str, Any] = dict(job.result or {})
        self.cancel = CancelToken()
        #: per-worker cache shared by jobs (loaded pipelines, engines)
        self.cache: dict[str, Any] = cache if cache is not None else {}
        self._lock = threading.Lock()
        self._pending: tuple[float, str] | None = None

    # -- called by handlers ---------------------------------------------------------------------
    def store(self) -> Store:
        """The gallery of the job's workspace (same database as the queue)."""
        return self.queue.store.in_workspace(self.workspace)

    def libraries(self) -> LibraryManager:
        """The libraries the job's workspace can read (its own and the built-in ones)."""
        from core.libraries import LibraryManager

        return LibraryManager(workspace=self.workspace)

    def progress(self, fraction: float, message: str = "", preview: Image.Image | None = None) -> None:
        with self._lock:
            self._pending = (float(fraction), message)
        if preview is not None:
            try:
                path = preview_path(self.job.id)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                preview.save(tmp, format="PNG")
                tmp.replace(path)
            except OSError as err:  # a preview is a nicety; never fail a job for it
                logger.debug("preview of job %s not written: %s", self.job.id, err)

    def engine_progress(self, progress: Progress) -> None:
        """An engine's progress callback."""
        self.progress(progress.fraction, progress.message, progress.preview)

    def save_result(self, **values: Any) -> None:
        """Record what the job made so far (written now, kept if the job is interrupted)."""
        self.result.update(values)
        self.queue.report(self.job.id, result=dict(self.result))

    # -- called by the worker -------------------------------------------------------------------
    def flush(self) -> None:
        """Write the latest progress (the worker's heartbeat) and pick up a cancel request."""
        with self._lock:
            pending, self._pending = self._pending, None
        fraction, message = pending if pending else (None, None)
        if self.queue.report(self.job.id, progress=fraction, message=message):
            self.cancel.cancel()
