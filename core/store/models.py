"""SQLAlchemy tables of the store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class GenerationRecord(Base):
    """One generated image. Files are relative to the images directory."""

    __tablename__ = "generations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    batch_id: Mapped[str] = mapped_column(String(32), index=True)
    #: the workspace it belongs to (see :mod:`core.accounts`); every query of the store is scoped to one
    workspace: Mapped[str] = mapped_column(String(64), default="default", server_default="default", index=True)
    engine: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    library: Mapped[str | None] = mapped_column(String(128), nullable=True)
    title: Mapped[str] = mapped_column(Text, default="")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    image_file: Mapped[str] = mapped_column(String(256))
    arrays_file: Mapped[str | None] = mapped_column(String(256), nullable=True)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(timespec="seconds"),
            "batch_id": self.batch_id,
            "workspace": self.workspace,
            "engine": self.engine,
            "seed": self.seed,
            "width": self.width,
            "height": self.height,
            "library": self.library,
            "title": self.title,
            "params": self.params,
            "image_file": self.image_file,
            "arrays_file": self.arrays_file,
        }
