"""SQLAlchemy tables of the job queue, on the store's ``Base`` (same database as the gallery)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.store.models import Base, utcnow

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)
ACTIVE = (QUEUED, RUNNING)
FINISHED = (DONE, FAILED, CANCELLED)

#: what a job does (see :mod:`core.jobs.handlers`)
KINDS = ("generate", "analyze", "campaign", "library-import", "lab")


class JobRecord(Base):
    """One unit of work: submitted by a page or the CLI, run by a worker, watched by anyone."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    #: who asked: a browser session, ``cli:<user>``, later a signed-in user
    owner: Mapped[str] = mapped_column(String(128), index=True)
    #: the workspace it works in: what it makes is saved there, and only that workspace sees it
    workspace: Mapped[str] = mapped_column(String(64), default="default", server_default="default", index=True)
    #: a short line for lists ("4 images from faces", "Originality check of …")
    title: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), default=QUEUED, index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: what the job made so far (record ids, campaign id, analysis file); kept across retries
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    #: the error shown to the user when the job failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: the device the job needs: "cpu" or "gpu"
    device: Mapped[str] = mapped_column(String(16), default="cpu")
    #: one click = one job: a second submit with the same key while the first is active returns the first
    dedupe_key: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    #: the worker running it (see :class:`WorkerRecord`) and its last sign of life
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    def as_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat(timespec="seconds") if value else None

        return {
            "id": self.id,
            "kind": self.kind,
            "owner": self.owner,
            "workspace": self.workspace,
            "title": self.title,
            "state": self.state,
            "progress": round(float(self.progress or 0.0), 4),
            "message": self.message,
            "error": self.error,
            "result": self.result,
            "params": self.params,
            "attempts": self.attempts,
            "worker": self.worker,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
        }


class WorkerRecord(Base):
    """A worker process that runs jobs: where it runs and when it last said it was alive."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(32), default="cpu")
    #: "local" (a worker process) or "ray" (a dispatcher that sends jobs to a Ray cluster)
    backend: Mapped[str] = mapped_column(String(16), default="local")
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    #: the job it is running, if any
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
