"""Running campaigns: pending items are generated one by one and saved immediately.

After every image the PNG, its generation record and the item's status are committed, so a run
that is cancelled, crashes or is killed keeps every finished image; :meth:`CampaignRunner.run`
on the same campaign later makes only the items still pending (resume).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.campaigns.models import ITEM_DONE, PENDING, RUNNING, CampaignItemRecord
from core.campaigns.plan import SD, Variation
from core.campaigns.store import CampaignStore, new_claimant
from core.config import DEFAULT_WORKSPACE
from core.engines.base import CancelToken, Engine, Progress, ProgressCallback
from core.errors import BadInputError, GenerationCancelled, MosaicError
from core.store import GenerationRecord

logger = logging.getLogger(__name__)

#: ``analyze(record) -> {"originality": float, "copy_risk": float | str, "copy_risk_label": str, ...}``
Analyzer = Callable[[GenerationRecord], Mapping[str, Any] | None]
EngineFactory = Callable[[str], Engine]

#: with a check of originality after each image, the part of an image's share of the progress bar spent making it
MAKING_SHARE = 0.8
#: steps of the progress reports of a run that also checks originality (fine enough for a moving bar)
FINE_STEPS = 1000
#: how often a run says it is still making its item (the claim times out after CLAIM_TIMEOUT_S)
CLAIM_TOUCH_S = 5.0
_RUNNING: set[str] = set()
_RUNNING_LOCK = threading.Lock()


@dataclass
class RunReport:
    """What a run did. ``cancelled`` is True when it stopped early on the cancel token."""

    campaign_id: str
    made: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pending: int = 0
    cancelled: bool = False
    status: str = ""
    #: pending items another run (another process or machine) was making when this one ended
    elsewhere: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "made": list(self.made),
            "failed": list(self.failed),
            "errors": list(self.errors),
            "pending": self.pending,
            "cancelled": self.cancelled,
            "status": self.status,
            "elsewhere": self.elsewhere,
        }


def default_engine(name: str, workspace: str = DEFAULT_WORKSPACE) -> Engine:
    """The engine for a campaign's engine name (the registry; SD once it is registered there)."""
    from core.engines.registry import get_engine

    try:
        return get_engine(name, workspace)
    except BadInputError:
        if name == SD:
            try:  # until the registry lists the SD engine
                from core.engines.sd import StableDiffusionEngine
            except ImportError:
                pass
            else:
                return StableDiffusionEngine()
            raise MosaicError(
                "The Stable Diffusion engine is not available in this installation, so this campaign cannot run "
                "here. Plan it with the local score engine instead."
            ) from None
        raise


def _checking_phase(fraction: float) -> str:
    """What an originality check is doing at ``fraction`` of its progress, in plain words."""
    if fraction < 0.6:
        return "preparing the library, once"
    if fraction < 0.8:
        return "looking for borrowed pieces"
    return "measuring the borrowed pieces"


class CampaignRunner:
    """Generates a campaign's pending items.

    ``engines`` maps engine names to engines (or is a factory ``name -> Engine``); by default the
    engine registry is used. ``analyze`` (optional) is called with each saved generation record and
    returns originality / copy-risk figures stored on the item; a failing analyzer never loses an image.
    """

    def __init__(
        self,
        campaigns: CampaignStore | None = None,
        engines: Mapping[str, Engine] | EngineFactory | None = None,
        analyze: Analyzer | None = None,
    ) -> None:
        self.campaigns = campaigns or CampaignStore()
        self._engines = engines
        self._cache: dict[str, Engine] = {}
        self.analyze = analyze

    @property
    def store(self):
        return self.campaigns.store

    def engine(self, name: str) -> Engine:
        if name not in self._cache:
            if isinstance(self._engines, Mapping):
                if name not in self._engines:
                    raise MosaicError(f"No {name!r} engine was given to the campaign runner.")
                self._cache[name] = self._engines[name]
            elif self._engines is None:
                self._cache[name] = default_engine(name, self.campaigns.workspace)
            else:
                self._cache[name] = self._engines(name)
        return self._cache[name]

    # ------------------------------------------------------------------ running
    def run(
        self,
        campaign_id: str,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        item_ids: Sequence[str] | None = None,
    ) -> RunReport:
        """Generate the pending items (all, or those in ``item_ids``) in plan order.

        Progress is reported over all images of this run (``image_index`` of ``count``). Each image
        is saved, with its item marked done, before the next starts. An item whose generation fails
        with a user-facing error is marked failed and the run goes on; cancelling stops after the
        current step and leaves the rest pending. Raises MosaicError before generating anything if
        the settings cannot work at all (unknown library, engine missing, too large).
        """
        with _RUNNING_LOCK:
            if campaign_id in _RUNNING:
                raise MosaicError("This campaign is already being generated. Wait for that run to finish.")
            _RUNNING.add(campaign_id)
        try:
            return self._run(campaign_id, on_progress, cancel, item_ids)
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(campaign_id)

    def _run(
        self,
        campaign_id: str,
        on_progress: ProgressCallback | None,
        cancel: CancelToken | None,
        item_ids: Sequence[str] | None,
    ) -> RunReport:
        campaign = self.campaigns.get(campaign_id)
        self.campaigns.reconcile(campaign_id)
        pending = self.campaigns.items(campaign_id, PENDING)
        if item_ids is not None:
            wanted = set(item_ids)
            pending = [item for item in pending if item.id in wanted]
        report = RunReport(campaign_id=campaign_id)
        if not pending:
            report.status = self.campaigns.refresh_status(campaign_id)
            return report
        engine = self.engine(campaign.engine)
        self._preflight(engine, pending[0])
        self.campaigns.set_status(campaign_id, RUNNING)
        total = len(pending)
        claimant = new_claimant()
        k = 0
        try:
            while True:
                if cancel is not None and cancel.cancelled:
                    report.cancelled = True
                    break
                # items are claimed one at a time in the database: another run of the same campaign
                # (another process, another machine) takes the others, and no item is made twice
                item = self.campaigns.claim_next(campaign_id, claimant, item_ids)
                if item is None:
                    break
                variation = Variation.from_dict(item.spec)
                try:
                    record = self._make(
                        campaign.name, campaign_id, item, variation, engine, k, total, on_progress, cancel, claimant
                    )
                except GenerationCancelled:
                    self.campaigns.release_claim(item.id, claimant)
                    report.cancelled = True
                    break
                except MosaicError as err:
                    self.campaigns.mark_failed(item.id, str(err))
                    report.failed.append(item.id)
                    report.errors.append(f"{variation.title}: {err}")
                    continue
                except Exception as err:  # a bug in an engine: keep the campaign going, record why
                    logger.exception("campaign %s item %s failed", campaign_id, item.id)
                    self.campaigns.mark_failed(item.id, f"Unexpected error: {err}")
                    report.failed.append(item.id)
                    report.errors.append(f"{variation.title}: unexpected error: {err}")
                    continue
                except BaseException:  # Ctrl-C, a worker stopping: the item goes back for the next run
                    self.campaigns.release_claim(item.id, claimant)
                    raise
                finally:
                    k += 1
                checking = self._checking_progress(on_progress, variation, k - 1, total) if self.analyze else None
                self.campaigns.mark_done(item.id, record.id, self._analysis(record, report=checking))
                report.made.append(item.id)
        finally:
            report.status = self.campaigns.refresh_status(campaign_id)
            report.pending = self.campaigns.counts(campaign_id)[PENDING]
            report.elsewhere = self.campaigns.live_claims(campaign_id)
        logger.info(
            "campaign %s: %d made, %d failed, %d pending (%d being made by another run)",
            campaign_id,
            len(report.made),
            len(report.failed),
            report.pending,
            report.elsewhere,
        )
        return report

    def _preflight(self, engine: Engine, item: CampaignItemRecord) -> None:
        """Let the engine refuse impossible settings before anything is generated."""
        plan = getattr(engine, "plan", None)
        if callable(plan):
            plan(Variation.from_dict(item.spec).build_request())

    def _make(
        self,
        campaign_name: str,
        campaign_id: str,
        item: CampaignItemRecord,
        variation: Variation,
        engine: Engine,
        index: int,
        total: int,
        on_progress: ProgressCallback | None,
        cancel: CancelToken | None,
        claimant: str | None = None,
    ) -> GenerationRecord:
        request = variation.build_request()
        last_touch = [time.monotonic()]

        def relay(progress: Progress) -> None:
            if claimant and time.monotonic() - last_touch[0] > CLAIM_TOUCH_S:
                self.campaigns.touch_claim(item.id, claimant)
                last_touch[0] = time.monotonic()
            if on_progress is not None and self.analyze is not None:  # the check of originality follows
                made = progress.step / max(1, progress.total_steps)
                on_progress(
                    Progress(
                        step=round(FINE_STEPS * MAKING_SHARE * min(1.0, made)),
                        total_steps=FINE_STEPS,
                        image_index=index,
                        count=total,
                        message=f"Image {index + 1} of {total} ({variation.title}): {progress.message}".rstrip(": "),
                        preview=progress.preview,
                    )
                )
            elif on_progress is not None:
                on_progress(
                    Progress(
                        step=progress.step,
                        total_steps=progress.total_steps,
                        image_index=index,
                        count=total,
                        message=f"Image {index + 1} of {total} ({variation.title}): {progress.message}".rstrip(": "),
                        preview=progress.preview,
                    )
                )

        images = engine.generate(request, on_progress=relay, cancel=cancel)
        if not images:
            raise MosaicError("The engine returned no image.")
        image = images[0]
        params = dict(image.params)
        params.update(
            campaign_id=campaign_id,
            campaign_item=item.id,
            campaign_attempt=int(item.attempt),
            channel=variation.channel,
            style=variation.style,
        )
        if variation.prompt_used:
            params.setdefault("prompt", variation.prompt)
            params.setdefault("negative_prompt", variation.negative_prompt)
        else:
            params["brief"] = variation.prompt
        if variation.guidance is not None:
            params.setdefault("guidance", variation.guidance)
        image.params = params
        (record,) = self.store.save([image], title=f"{campaign_name} · {variation.title}", batch_id=campaign_id)
        return record

    def _checking_progress(
        self,
        on_progress: ProgressCallback | None,
        variation: Variation,
        index: int,
        total: int,
        start: float = MAKING_SHARE,
    ) -> Callable[[float, str], None] | None:
        """The progress of checking image ``index``'s originality, reported from ``start`` to the end of its share
        of the bar (after the share spent making it)."""
        if on_progress is None:
            return None

        def report(fraction: float, message: str = "") -> None:
            done = start + (1 - start) * min(1.0, max(0.0, float(fraction)))
            detail = f" ({_checking_phase(fraction)})" if message else ""
            on_progress(
                Progress(
                    step=round(FINE_STEPS * done),
                    total_steps=FINE_STEPS,
                    image_index=index,
                    count=total,
                    message=f"Image {index + 1} of {total} ({variation.title}): checking originality…{detail}",
                )
            )

        return report

    def _analysis(
        self,
        record: GenerationRecord,
        analyze: Analyzer | None = None,
        report: Callable[[float, str], None] | None = None,
    ) -> Mapping[str, Any] | None:
        """The analyzer's figures for ``record`` (None when there is no analyzer or it failed). ``report``
        gets its progress (fraction, message) when the analyzer reports progress, else only start and end."""
        analyze = analyze or self.analyze
        if analyze is None:
            return None
        try:
            if report is None:
                return analyze(record)
            report(0.0, "")
            if getattr(analyze, "reports_progress", False):
                figures = analyze(record, on_progress=report)  # type: ignore[call-arg]
            else:
                figures = analyze(record)
            report(1.0, "")
            return figures
        except Exception as err:  # the image is kept; the figures stay empty
            logger.warning("analysis of %s failed: %s", record.id, err)
            return None

    # ------------------------------------------------------------------ single items
    def regenerate(
        self,
        item_id: str,
        seed: int | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> CampaignItemRecord:
        """Make one variation again with a new seed (random unless given). Returns the updated item."""
        item = self.campaigns.prepare_regenerate(item_id, seed)
        report = self.run(item.campaign_id, on_progress=on_progress, cancel=cancel, item_ids=[item_id])
        if report.errors:
            raise MosaicError(report.errors[0])
        return self.campaigns.item(item_id)

    def analyze_items(
        self,
        campaign_id: str,
        analyze: Analyzer | None = None,
        redo: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> int:
        """Run the analyzer on done items (those without figures, or all with ``redo``). Returns how many.

        ``on_progress`` hears "Image 2 of 5: checking originality…" as each check goes on."""
        analyze = analyze or self.analyze
        if analyze is None:
            raise MosaicError("No analyzer is available.")
        count = 0
        todo = [
            item
            for item in self.campaigns.items(campaign_id, ITEM_DONE)
            if redo or (item.originality is None and item.copy_risk is None and not item.copy_risk_label)
        ]
        for k, item in enumerate(todo):
            record = self.campaigns.generation(item)
            if record is None:
                continue
            report = None
            if on_progress is not None:
                report = self._checking_progress(on_progress, Variation.from_dict(item.spec), k, len(todo), 0.0)
            figures = self._analysis(record, analyze, report)
            if figures:
                self.campaigns.set_analysis(item.id, figures)
                count += 1
        return count
