"""A Stable Diffusion campaign with the tiny randomly initialised SD 1.x pipeline (no download)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from core.campaigns import CampaignRunner, CampaignStore, plan_campaign
from core.engines.sd.request import SDRequest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("diffusers") is None, reason="diffusers is not installed")


def test_sd_campaign_with_the_tiny_pipeline(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engines" / "sd"))
    from tiny import build_tiny_sd15

    model = str(build_tiny_sd15(tmp_path / "tiny-sd15"))
    plan = plan_campaign(
        "product-hero",
        {"product": "mug"},
        engine="sd",
        model=model,
        seed=7,
        styles=["Studio"],
        channels=["hero"],
        seeds=1,
        steps=2,
        scale=0.125,
    )
    assert plan.count == 2 and all(isinstance(r, SDRequest) for r in plan.requests())
    campaigns = CampaignStore()
    campaign = campaigns.create(plan)
    report = CampaignRunner(campaigns).run(campaign.id)
    assert report.status == "done", report.errors
    for item in campaigns.items(campaign.id):
        record = campaigns.generation(item)
        variation = campaigns.variation(item)
        assert (record.width, record.height) == (variation.width, variation.height) == (120, 64)
        assert record.params["prompt"] == variation.prompt and "mug" in variation.prompt
        assert float(record.params["guidance"]) == variation.guidance
