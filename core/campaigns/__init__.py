"""Campaigns: a template filled in, planned into concrete images, generated (resumably) and exported.

::

    plan = plan_campaign("social-post-set", {"product": "oat milk"}, engine="local-score", seed=1)
    campaigns = CampaignStore()                      # same database as the Store
    campaign = campaigns.create(plan)
    CampaignRunner(campaigns).run(campaign.id, on_progress, cancel)   # resumable
    campaigns.star(item_id); campaigns.set_notes(item_id, "use for launch")
    data = export_campaign_zip(campaign.id)          # PNGs + manifest.csv + contact-sheet.html
"""

from core.campaigns.cli import CampaignCliResult, parse_field_args, resume_campaign_cli, run_campaign_cli
from core.campaigns.export import (
    CONTACT_SHEET,
    MANIFEST,
    MANIFEST_COLUMNS,
    collect,
    export_campaign_dir,
    export_campaign_zip,
    read_manifest,
)
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
    create_tables,
)
from core.campaigns.plan import LOCAL_SCORE, SD, CampaignPlan, Variation, build_request, plan_campaign
from core.campaigns.runner import Analyzer, CampaignRunner, RunReport
from core.campaigns.store import CampaignStore

__all__ = [
    "CONTACT_SHEET",
    "DONE",
    "FAILED",
    "ITEM_DONE",
    "LOCAL_SCORE",
    "MANIFEST",
    "MANIFEST_COLUMNS",
    "PARTIAL",
    "PAUSED",
    "PENDING",
    "PLANNED",
    "RUNNING",
    "SD",
    "Analyzer",
    "CampaignCliResult",
    "CampaignItemRecord",
    "CampaignPlan",
    "CampaignRecord",
    "CampaignRunner",
    "CampaignStore",
    "RunReport",
    "Variation",
    "build_request",
    "collect",
    "create_tables",
    "export_campaign_dir",
    "export_campaign_zip",
    "parse_field_args",
    "plan_campaign",
    "read_manifest",
    "resume_campaign_cli",
    "run_campaign_cli",
]
