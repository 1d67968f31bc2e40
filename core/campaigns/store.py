"""Campaigns in the database, next to the generations they produce.

Each image of a campaign is an item. An item's image is an ordinary generation (saved with
``Store.save`` under ``batch_id = campaign id``); the item keeps its id. Generated images carry
``campaign_id``, ``campaign_item`` and ``campaign_attempt`` in their params, so :meth:`reconcile`
can re-link an image that was saved just before the process died, before its item was updated.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from core.campaigns.models import (
    DONE,
    FAILED,
    ITEM_DONE,
    PARTIAL,
    PAUSED,
    PENDING,
    PLANNED,
    RUNNING,
    CampaignItemRecord,
    CampaignRecord,
)
from core.campaigns.plan import CampaignPlan, Variation
from core.errors import BadInputError
from core.store import GenerationRecord, Store
from core.store.models import utcnow

logger = logging.getLogger(__name__)

MAX_NOTES = 4000
STATUSES = (PLANNED, RUNNING, PAUSED, DONE, PARTIAL)
#: shown instead of "running" when the run making a campaign has died (resume to finish)
INTERRUPTED = "interrupted"
#: a run that has not said it is alive for this long is taken for dead (it touches its claim every few seconds)
CLAIM_TIMEOUT_S = 120.0


class CampaignStore:
    """Create, read and update campaigns. Shares the database of ``store`` (default: a new Store).

    Scoped to the store's workspace: a campaign (or campaign image) of another workspace is reported
    exactly like a missing one, and new campaigns belong to this workspace.
    """

    def __init__(self, store: Store | None = None) -> None:
        self.store = store or Store()
        self.workspace = self.store.workspace

    # ------------------------------------------------------------------ creating
    def create(self, plan: CampaignPlan, name: str | None = None) -> CampaignRecord:
        """Persist a plan as a new campaign with one pending item per variation."""
        if not plan.variations:
            raise BadInputError("This campaign has no images to make.")
        campaign_id = uuid.uuid4().hex[:16]
        record = CampaignRecord(
            id=campaign_id,
            name=(name or plan.name)[:120],
            workspace=self.workspace,
            template=plan.template_id,
            template_snapshot=plan.template,
            fields=dict(plan.fields),
            engine=plan.engine,
            model=plan.model,
            status=PLANNED,
            notices=list(plan.notices),
            brand_kit=plan.brand_kit,
            seed=int(plan.seed),
        )
        items = [
            CampaignItemRecord(
                id=uuid.uuid4().hex[:16],
                campaign_id=campaign_id,
                position=i,
                spec=v.to_dict(),
                status=PENDING,
                attempt=0,
                history=[],
                starred=False,
                rejected=False,
                notes="",
            )
            for i, v in enumerate(plan.variations)
        ]
        with self.store.session() as session, session.begin():
            session.add(record)
            session.flush()  # the campaign row first: items reference it (foreign key)
            session.add_all(items)
        logger.info("created campaign %s (%d items)", campaign_id, len(items))
        return self.get(campaign_id)

    # ------------------------------------------------------------------ reading
    def list(self, limit: int | None = None) -> list[CampaignRecord]:
        """Campaigns, newest first."""
        with self.store.session() as session:
            query = (
                select(CampaignRecord)
                .where(CampaignRecord.workspace == self.workspace)
                .order_by(CampaignRecord.created.desc(), CampaignRecord.id)
            )
            if limit:
                query = query.limit(limit)
            return list(session.scalars(query))

    def get(self, campaign_id: str) -> CampaignRecord:
        with self.store.session() as session:
            return self._campaign(session, campaign_id)

    def items(self, campaign_id: str, status: str | None = None) -> list[CampaignItemRecord]:
        """Items in plan order (optionally only those with ``status``)."""
        with self.store.session() as session:
            self._campaign(session, campaign_id)
            query = select(CampaignItemRecord).where(CampaignItemRecord.campaign_id == campaign_id)
            if status:
                query = query.where(CampaignItemRecord.status == status)
            return list(session.scalars(query.order_by(CampaignItemRecord.position)))

    def item(self, item_id: str) -> CampaignItemRecord:
        with self.store.session() as session:
            return self._item(session, item_id)

    def variation(self, item: CampaignItemRecord) -> Variation:
        return Variation.from_dict(item.spec)

    def counts(self, campaign_id: str) -> dict[str, int]:
        """Number of items per status, plus ``total``, ``starred`` and ``rejected``."""
        items = self.items(campaign_id)
        counts = {PENDING: 0, ITEM_DONE: 0, FAILED: 0}
        for item in items:
            counts[item.status] = counts.get(item.status, 0) + 1
        counts["total"] = len(items)
        counts["starred"] = sum(1 for i in items if i.starred)
        counts["rejected"] = sum(1 for i in items if i.rejected)
        return counts

    def generation(self, item: CampaignItemRecord) -> GenerationRecord | None:
        """The item's saved image record, or None (pending, failed or deleted from the gallery)."""
        if not item.generation_id:
            return None
        with self.store.session() as session:
            record = session.get(GenerationRecord, item.generation_id)
        return record if record is not None and record.workspace == self.workspace else None

    # ------------------------------------------------------------------ the user's verdicts
    def star(self, item_id: str, starred: bool = True) -> CampaignItemRecord:
        """Star (or unstar) an image; starring clears a rejection."""
        return self._update(item_id, starred=bool(starred), **({"rejected": False} if starred else {}))

    def reject(self, item_id: str, rejected: bool = True) -> CampaignItemRecord:
        """Reject (or un-reject) an image; rejecting clears a star."""
        return self._update(item_id, rejected=bool(rejected), **({"starred": False} if rejected else {}))

    def set_notes(self, item_id: str, notes: str) -> CampaignItemRecord:
        notes = (notes or "").strip()
        if len(notes) > MAX_NOTES:
            raise BadInputError(f"Notes are too long ({len(notes)} characters; at most {MAX_NOTES}).")
        return self._update(item_id, notes=notes)

    def rename(self, campaign_id: str, name: str) -> CampaignRecord:
        name = (name or "").strip()
        if not name:
            raise BadInputError("A campaign needs a name.")
        with self.store.session() as session, session.begin():
            record = self._campaign(session, campaign_id)
            record.name = name[:120]
        return self.get(campaign_id)

    # ------------------------------------------------------------------ state changes (used by the runner)
    def set_status(self, campaign_id: str, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown campaign status {status!r}")
        with self.store.session() as session, session.begin():
            self._campaign(session, campaign_id).status = status

    def refresh_status(self, campaign_id: str, running: bool = False) -> str:
        """Set the campaign status from its items: done, partial (some failed), paused or planned.

        A campaign stays "running" while another run is still making some of its items.
        """
        counts = self.counts(campaign_id)
        if running or (counts[PENDING] and self.live_claims(campaign_id)):
            status = RUNNING
        elif counts[PENDING] == 0:
            status = DONE if counts[FAILED] == 0 else PARTIAL
        elif counts[ITEM_DONE] or counts[FAILED]:
            status = PAUSED
        else:
            status = PLANNED
        self.set_status(campaign_id, status)
        return status

    def mark_done(
        self, item_id: str, generation_id: str, analysis: Mapping[str, Any] | None = None
    ) -> CampaignItemRecord:
        changes: dict[str, Any] = {"status": ITEM_DONE, "generation_id": generation_id, "error": None}
        changes.update(_analysis_columns(analysis))
        return self._update(item_id, **changes)

    def mark_failed(self, item_id: str, error: str) -> CampaignItemRecord:
        return self._update(item_id, status=FAILED, error=str(error)[:2000])

    def set_analysis(self, item_id: str, analysis: Mapping[str, Any] | None) -> CampaignItemRecord:
        """Store analyzer figures: ``originality`` and ``copy_risk`` (floats), ``copy_risk_label`` and the rest."""
        return self._update(item_id, **_analysis_columns(analysis))

    def retry_failed(self, campaign_id: str) -> int:
        """Make failed items pending again. Returns how many."""
        failed = self.items(campaign_id, FAILED)
        for item in failed:
            self._update(item.id, status=PENDING, error=None)
        if failed:
            self.refresh_status(campaign_id)
        return len(failed)

    def prepare_regenerate(self, item_id: str, seed: int | None = None) -> CampaignItemRecord:
        """Give an item a new seed and make it pending again; its old image stays in the gallery."""
        item = self.item(item_id)
        variation = self.variation(item)
        new_seed = int(seed) if seed is not None else _new_seed(variation.seed)
        history = list(item.history or [])
        if item.generation_id:
            history.append(item.generation_id)
        updated = self._update(
            item_id,
            spec=variation.with_seed(new_seed).to_dict(),
            status=PENDING,
            generation_id=None,
            attempt=int(item.attempt) + 1,
            history=history,
            error=None,
            originality=None,
            copy_risk=None,
            copy_risk_label=None,
            analysis=None,
        )
        self.refresh_status(item.campaign_id)
        return updated

    def reconcile(self, campaign_id: str) -> int:
        """Repair links after a crash. Returns the number of items changed.

        * a pending item whose image was saved (matching item id and attempt) becomes done;
        * a done item whose image record is gone (deleted in the gallery) becomes pending again.
        """
        changed = 0
        items = self.items(campaign_id)
        with self.store.session() as session:
            generations = list(
                session.scalars(
                    select(GenerationRecord).where(
                        GenerationRecord.batch_id == campaign_id, GenerationRecord.workspace == self.workspace
                    )
                )
            )
            present = {g.id for g in generations}
            if any(i.generation_id and i.generation_id not in present for i in items):
                ids = [i.generation_id for i in items if i.generation_id]
                present |= self.store.owns(ids)
        saved = {}
        for g in sorted(generations, key=lambda g: g.created_at):
            params = g.params or {}
            if params.get("campaign_id") == campaign_id and params.get("campaign_item"):
                saved[(params["campaign_item"], int(params.get("campaign_attempt", 0)))] = g.id
        for item in items:
            if item.status == PENDING and (item.id, int(item.attempt)) in saved:
                self._update(item.id, status=ITEM_DONE, generation_id=saved[(item.id, int(item.attempt))], error=None)
                changed += 1
            elif item.status == ITEM_DONE and (not item.generation_id or item.generation_id not in present):
                self._update(item.id, status=PENDING, generation_id=None)
                changed += 1
        if changed:
            logger.warning("campaign %s: reconciled %d item(s) after an interruption", campaign_id, changed)
        return changed

    # ------------------------------------------------------------------ claims (several runs at once)
    def claim_next(
        self, campaign_id: str, claimant: str, item_ids: Sequence[str] | None = None
    ) -> CampaignItemRecord | None:
        """Atomically take the next pending item nobody is making (in plan order); None when there is none.

        A claim is a conditional UPDATE that only one run can win, on SQLite and PostgreSQL alike; a claim
        whose run has died (its process is gone, or it has not said it is alive for ``CLAIM_TIMEOUT_S``)
        can be taken over.
        """
        wanted = set(item_ids) if item_ids is not None else None
        for item in self.items(campaign_id, PENDING):
            if wanted is not None and item.id not in wanted:
                continue
            if item.claimed_by and item.claimed_by != claimant and claim_alive(item.claimed_by, item.claimed_at):
                continue
            with self.store.session() as session, session.begin():
                won = session.execute(
                    update(CampaignItemRecord)
                    .where(
                        CampaignItemRecord.id == item.id,
                        CampaignItemRecord.status == PENDING,
                        _same_claim(item.claimed_by),
                    )
                    .values(claimed_by=claimant, claimed_at=utcnow())
                    .execution_options(synchronize_session=False)
                ).rowcount
            if won == 1:
                return self.item(item.id)
        return None

    def touch_claim(self, item_id: str, claimant: str) -> None:
        """The run making this item is alive (called while it works)."""
        with self.store.session() as session, session.begin():
            session.execute(
                update(CampaignItemRecord)
                .where(CampaignItemRecord.id == item_id, CampaignItemRecord.claimed_by == claimant)
                .values(claimed_at=utcnow())
                .execution_options(synchronize_session=False)
            )

    def release_claim(self, item_id: str, claimant: str) -> None:
        with self.store.session() as session, session.begin():
            session.execute(
                update(CampaignItemRecord)
                .where(CampaignItemRecord.id == item_id, CampaignItemRecord.claimed_by == claimant)
                .values(claimed_by=None, claimed_at=None)
                .execution_options(synchronize_session=False)
            )

    def live_claims(self, campaign_id: str) -> int:
        """How many of the campaign's pending items a living run is making now."""
        return sum(
            1 for i in self.items(campaign_id, PENDING) if i.claimed_by and claim_alive(i.claimed_by, i.claimed_at)
        )

    def shown_status(self, campaign: CampaignRecord) -> str:
        """The status to show: "running" only while a run is alive; a run that died shows "interrupted"."""
        if campaign.status != RUNNING:
            return campaign.status
        return RUNNING if self.live_claims(campaign.id) else INTERRUPTED

    # ------------------------------------------------------------------ deleting
    def delete(self, campaign_id: str, delete_images: bool = False) -> None:
        """Delete a campaign and its items; with ``delete_images`` also its images from the gallery."""
        items = self.items(campaign_id)
        with self.store.session() as session, session.begin():
            self._campaign(session, campaign_id)
            session.execute(delete(CampaignItemRecord).where(CampaignItemRecord.campaign_id == campaign_id))
            session.execute(delete(CampaignRecord).where(CampaignRecord.id == campaign_id))
        if delete_images:
            for item in items:
                for gid in [*(item.history or []), item.generation_id]:
                    if gid:
                        try:
                            self.store.delete(gid)
                        except BadInputError:
                            pass

    # ------------------------------------------------------------------ helpers
    def _campaign(self, session, campaign_id: str) -> CampaignRecord:
        """The campaign if it is one of this workspace's; another workspace's is reported as missing."""
        record = session.get(CampaignRecord, str(campaign_id))
        if record is None or record.workspace != self.workspace:
            raise BadInputError(f"No campaign with id {campaign_id!r}. It may have been deleted.")
        return record

    def _item(self, session, item_id: str) -> CampaignItemRecord:
        item = session.get(CampaignItemRecord, str(item_id))
        if item is not None:
            campaign = session.get(CampaignRecord, item.campaign_id)
            if campaign is not None and campaign.workspace == self.workspace:
                return item
        raise BadInputError(f"No campaign image with id {item_id!r}.")

    def _update(self, item_id: str, **changes: Any) -> CampaignItemRecord:
        with self.store.session() as session, session.begin():
            item = self._item(session, item_id)
            for key, value in changes.items():
                setattr(item, key, value)
            if item.status != PENDING:  # made (or failed): nobody is making it any more
                item.claimed_by = None
                item.claimed_at = None
            item.updated = utcnow()
        return self.item(item_id)


def _analysis_columns(analysis: Mapping[str, Any] | None) -> dict[str, Any]:
    if not analysis:
        return {}
    data = dict(analysis)
    out: dict[str, Any] = {}
    for key in ("originality", "copy_risk"):
        if key in data:
            value = data.pop(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[key] = float(value)
            elif value is not None and key == "copy_risk":  # a label such as "low"
                out["copy_risk_label"] = str(value)[:64]
            elif value is not None:
                data["originality_label"] = str(value)
    if "copy_risk_label" in data:
        label = data.pop("copy_risk_label")
        out["copy_risk_label"] = None if label is None else str(label)[:64]
    if data:
        out["analysis"] = {k: v for k, v in data.items() if _is_json(v)}
    return out


def _is_json(value: Any) -> bool:
    import json

    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def claim_alive(claimant: str, claimed_at: datetime | None) -> bool:
    """Whether the run that claimed an item still lives: its process exists (same machine) and it spoke lately."""
    if claimed_at is None or utcnow() - claimed_at > timedelta(seconds=CLAIM_TIMEOUT_S):
        return False
    host, _, rest = claimant.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host == socket.gethostname() and pid_text.isdigit():
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True


def new_claimant() -> str:
    """An id for one run: ``host:pid:token``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _same_claim(claimed_by: str | None):
    if claimed_by is None:
        return CampaignItemRecord.claimed_by.is_(None)
    return CampaignItemRecord.claimed_by == claimed_by


def _new_seed(old: int) -> int:
    seed = old
    while seed == old:
        seed = random.SystemRandom().randrange(2**31 - 1)
    return seed
