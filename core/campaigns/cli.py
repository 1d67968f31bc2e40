"""What ``python -m core campaign`` calls: plan, generate and export a campaign in one go."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.campaigns.export import export_campaign_dir, export_campaign_zip, slug
from core.campaigns.models import ITEM_DONE
from core.campaigns.plan import CampaignPlan, plan_campaign
from core.campaigns.runner import Analyzer, CampaignRunner, EngineFactory, RunReport
from core.campaigns.store import CampaignStore
from core.engines.base import CancelToken, Engine, ProgressCallback
from core.errors import BadInputError, MosaicError
from core.store import Store
from core.templates.brand import DEFAULT_WORKSPACE, BrandKit, load_brand_kit

logger = logging.getLogger(__name__)


@dataclass
class CampaignCliResult:
    campaign_id: str
    report: RunReport
    out_dir: Path
    zip_path: Path | None
    files: list[Path] = field(default_factory=list)
    plan: CampaignPlan | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "out_dir": str(self.out_dir),
            "zip": str(self.zip_path) if self.zip_path else None,
            "files": [str(p) for p in self.files],
            "notices": list(self.plan.notices) if self.plan else [],
            **self.report.as_dict(),
        }


def parse_field_args(pairs: Sequence[str]) -> dict[str, str]:
    """``--field key=value`` arguments as a dict; a repeated key is comma-joined.

    ``["product=oat milk", "colours=navy", "colours=#FF7F50"]``
    → ``{"product": "oat milk", "colours": "navy,#FF7F50"}``.
    """
    fields: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BadInputError(f"--field takes key=value (got {pair!r}).")
        fields[key] = f"{fields[key]},{value.strip()}" if key in fields else value.strip()
    return fields


def run_campaign_cli(
    template: str,
    fields: Mapping[str, Any],
    engine: str = "local-score",
    out_dir: Path | str = ".",
    *,
    model: str | None = None,
    name: str | None = None,
    seed: int | None = None,
    workspace: str = DEFAULT_WORKSPACE,
    brand_kit: BrandKit | None = None,
    use_brand_kit: bool = True,
    channels: Sequence[str] | None = None,
    styles: Sequence[str] | None = None,
    seeds: int | None = None,
    steps: int | None = None,
    size: int | None = None,
    library: str | None = None,
    label: str | None = None,
    family: str | None = None,
    scale: float = 1.0,
    make_zip: bool = True,
    on_progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    analyze: Analyzer | None = None,
    engines: Mapping[str, Engine] | EngineFactory | None = None,
    store: Store | None = None,
) -> CampaignCliResult:
    """Plan ``template`` with ``fields``, generate every image, and export into ``out_dir``.

    ``out_dir`` receives ``images/*.png``, ``manifest.csv``, ``contact-sheet.html``,
    ``campaign.json`` and (``make_zip``) ``<campaign-name>.zip`` with the same files. The
    workspace brand kit is applied unless ``use_brand_kit`` is False (or ``brand_kit`` is given).
    Images that failed are listed in the result's ``errors``; raises MosaicError if none was made.
    """
    kit = brand_kit if brand_kit is not None else (load_brand_kit(workspace) if use_brand_kit else None)
    plan = plan_campaign(
        template,
        fields,
        engine=engine,
        model=model,
        brand_kit=kit,
        name=name,
        seed=seed,
        channels=channels,
        styles=styles,
        seeds=seeds,
        steps=steps,
        size=size,
        library=library,
        label=label,
        family=family,
        scale=scale,
        workspace=workspace,
    )
    campaigns = CampaignStore(store or Store(workspace=workspace))
    campaign = campaigns.create(plan)
    for notice in plan.notices:
        logger.info("campaign %s: %s", campaign.id, notice)
    result = resume_campaign_cli(
        campaign.id,
        out_dir,
        make_zip=make_zip,
        on_progress=on_progress,
        cancel=cancel,
        analyze=analyze,
        engines=engines,
        campaigns=campaigns,
    )
    result.plan = plan
    return result


def resume_campaign_cli(
    campaign_id: str,
    out_dir: Path | str = ".",
    *,
    make_zip: bool = True,
    on_progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    analyze: Analyzer | None = None,
    engines: Mapping[str, Engine] | EngineFactory | None = None,
    campaigns: CampaignStore | None = None,
) -> CampaignCliResult:
    """Generate what is still pending in a campaign, then export it into ``out_dir``."""
    campaigns = campaigns or CampaignStore()
    runner = CampaignRunner(campaigns, engines=engines, analyze=analyze)
    report = runner.run(campaign_id, on_progress=on_progress, cancel=cancel)
    return export_campaign_result(campaign_id, report, out_dir, make_zip=make_zip, campaigns=campaigns)


def export_campaign_result(
    campaign_id: str,
    report: RunReport,
    out_dir: Path | str = ".",
    *,
    make_zip: bool = True,
    campaigns: CampaignStore | None = None,
) -> CampaignCliResult:
    """Export what a run made into ``out_dir`` (images, manifest, contact sheet, ZIP)."""
    campaigns = campaigns or CampaignStore()
    if not campaigns.items(campaign_id, ITEM_DONE):
        detail = f" First error: {report.errors[0]}" if report.errors else ""
        raise MosaicError(f"No image of this campaign could be made.{detail}")
    out = Path(out_dir)
    files = export_campaign_dir(campaign_id, out, campaigns)
    zip_path = None
    if make_zip:
        zip_path = out / f"{slug(campaigns.get(campaign_id).name, 60)}.zip"
        export_campaign_zip(campaign_id, zip_path, campaigns)
        files.append(zip_path)
    return CampaignCliResult(campaign_id=campaign_id, report=report, out_dir=out, zip_path=zip_path, files=files)
