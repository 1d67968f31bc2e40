"""Background jobs: every generation, originality check, campaign, import and Lab run is a job.

Pages and the CLI submit jobs and watch them (:class:`JobQueue`); workers run them
(:mod:`core.jobs.worker`, or a Ray cluster through :mod:`core.jobs.ray_backend`).
"""

from core.jobs.models import ACTIVE, CANCELLED, DONE, FAILED, FINISHED, KINDS, QUEUED, RUNNING, JobRecord
from core.jobs.queue import JobQueue

__all__ = ["ACTIVE", "CANCELLED", "DONE", "FAILED", "FINISHED", "KINDS", "QUEUED", "RUNNING", "JobQueue", "JobRecord"]
