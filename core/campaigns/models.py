"""SQLAlchemy tables of campaigns, on the store's ``Base`` (same database as the generations)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Mapped, mapped_column

from core.store.models import Base, utcnow

#: campaign statuses
PLANNED, RUNNING, PAUSED, DONE, PARTIAL = "planned", "running", "paused", "done", "partial"
#: item statuses
PENDING, ITEM_DONE, FAILED = "pending", "done", "failed"


class CampaignRecord(Base):
    """One campaign: a template filled in, for one engine and model."""

    __tablename__ = "campaigns"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(Text, default="")
    #: the workspace it belongs to; its items and images belong there too
    workspace: Mapped[str] = mapped_column(String(64), default="default", server_default="default", index=True)
    template: Mapped[str] = mapped_column(String(64), index=True)
    #: the template as it was when the campaign was planned (templates can be edited later)
    template_snapshot: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    engine: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    updated: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=PLANNED)
    notices: Mapped[list[str]] = mapped_column(JSON, default=list)
    brand_kit: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    seed: Mapped[int] = mapped_column(BigInteger, default=0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "workspace": self.workspace,
            "template": self.template,
            "fields": self.fields,
            "engine": self.engine,
            "model": self.model,
            "created": self.created.isoformat(timespec="seconds"),
            "status": self.status,
            "notices": list(self.notices or []),
            "brand_kit": self.brand_kit,
            "seed": self.seed,
        }


class CampaignItemRecord(Base):
    """One image of a campaign: its variation spec, its state and the user's verdict on it."""

    __tablename__ = "campaign_items"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(32), ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    #: a :class:`core.campaigns.plan.Variation` as a dict (channel, size, style, seed, prompt, request...)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=PENDING, index=True)
    #: increases each time the item is regenerated; generated images carry it to be matched on resume
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    generation_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: earlier generation ids of this item (regenerated), newest last
    history: Mapped[list[str]] = mapped_column(JSON, default=list)
    starred: Mapped[bool] = mapped_column(Boolean, default=False)
    rejected: Mapped[bool] = mapped_column(Boolean, default=False)
    notes: Mapped[str] = mapped_column(Text, default="")
    originality: Mapped[float | None] = mapped_column(Float, nullable=True)
    copy_risk: Mapped[float | None] = mapped_column(Float, nullable=True)
    copy_risk_label: Mapped[str | None] = mapped_column(String(64), nullable=True)
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    #: the run making this item now (``host:pid:token``) and its last sign of life; NULL when nobody is.
    #: Claimed with a conditional UPDATE, so two runs of one campaign never make the same item.
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "campaign_id": self.campaign_id,
            "position": self.position,
            "spec": self.spec,
            "status": self.status,
            "attempt": self.attempt,
            "generation_id": self.generation_id,
            "history": list(self.history or []),
            "starred": self.starred,
            "rejected": self.rejected,
            "notes": self.notes,
            "originality": self.originality,
            "copy_risk": self.copy_risk,
            "copy_risk_label": self.copy_risk_label,
            "analysis": self.analysis,
            "error": self.error,
        }


TABLES = [CampaignRecord.__table__, CampaignItemRecord.__table__]


def create_tables(bind: Engine | Connection) -> None:
    """Kept for callers of older versions: the tables come from the store's migrations now."""
    del bind
