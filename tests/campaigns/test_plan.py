"""Campaign planning for Stable Diffusion and for the offline local score engine."""

from __future__ import annotations

import importlib.util

import pytest

from core.campaigns import LOCAL_SCORE, SD, plan_campaign
from core.campaigns.plan import build_request
from core.engines.local_score import LocalScoreRequest
from core.errors import BadInputError, MosaicError
from core.templates import BrandKit, size_for


def test_sd_plan_expands_channels_styles_seeds_and_guidance():
    plan = plan_campaign("product-hero", {"product": "earbuds"}, engine="sd", seed=100)
    # 2 channels x 2 styles x 2 seeds x 2 guidance values
    assert plan.count == 16 and plan.engine == SD and plan.family == "sd1"
    assert {v.channel for v in plan.variations} == {"hero", "square"}
    assert {v.guidance for v in plan.variations} == {6.0, 8.0}
    for v in plan.variations:
        assert (v.width, v.height) == size_for(v.channel, "sd1")
        assert v.request["prompt"] == v.prompt and "earbuds" in v.prompt
        assert v.request["width"] == v.width and v.request["guidance"] == v.guidance and v.request["count"] == 1
    # the guidance sweep is made at the same seed, so the images compare
    pairs = {}
    for v in plan.variations:
        pairs.setdefault(v.seed, set()).add(v.guidance)
    assert len(pairs) == 8 and all(g == {6.0, 8.0} for g in pairs.values())


def test_sdxl_model_gets_sdxl_sizes():
    plan = plan_campaign("social-post-set", {"product": "tea"}, model="stabilityai/stable-diffusion-xl-base-1.0")
    assert plan.family == "sdxl"
    assert {(v.channel, v.width, v.height) for v in plan.variations} >= {("square", 1024, 1024), ("story", 768, 1344)}
    assert "XL" in plan.notices[-1]


def test_brand_kit_words_reach_every_prompt():
    kit = BrandKit(palette=["#FF7F50"], must_use=["sustainable"], avoid=["plastic"])
    plan = plan_campaign("ab-ad-pair", {"product": "bottle", "benefit": "keeps water cold"}, brand_kit=kit, seed=1)
    assert plan.count == 4
    for v in plan.variations:
        assert v.prompt.endswith("colour palette: coral, sustainable")
        assert v.negative_prompt.endswith("plastic")
    assert any("Brand kit" in n for n in plan.notices)
    assert plan.variations[0].style == "A - benefit" and "keeps water cold" in plan.variations[0].prompt


def test_local_score_plan_says_there_is_no_text_model():
    plan = plan_campaign(
        "seasonal-campaign", {"product": "scarf"}, engine="local-score", seed=5, library="digits", label="3"
    )
    assert plan.engine == LOCAL_SCORE and plan.count == 6
    text = " ".join(plan.notices)
    assert "no text model" in text and "square" in text and "digits" in text
    presets = {v.request["preset"] for v in plan.variations}
    assert presets == {"balanced", "fine"}  # the template maps its two styles to two locality presets
    requests = plan.requests()
    assert all(isinstance(r, LocalScoreRequest) for r in requests)
    assert {(r.library, r.label, r.size, r.count) for r in requests} == {("digits", "3", 32, 1)}
    assert [r.seed for r in requests] == list(range(5, 11))
    assert all(v.width == v.height == 32 and not v.prompt_used for v in plan.variations)


def test_local_score_uses_the_brand_kit_library_and_skips_guidance():
    plan = plan_campaign("product-hero", {"product": "x"}, engine="els", brand_kit=BrandKit(library="faces"), seed=0)
    assert plan.count == 8  # the guidance sweep is dropped
    assert {v.request["library"] for v in plan.variations} == {"faces"}
    assert {v.request["machine"] for v in plan.variations} == {"els"}
    assert any("guidance" in n for n in plan.notices)


def test_plan_options_and_errors():
    plan = plan_campaign("mood-board", {"theme": "forest"}, channels=["square"], styles=["Texture", "Light"], seeds=3)
    assert plan.count == 6 and [v.style for v in plan.variations[:3]] == ["Texture"] * 3
    with pytest.raises(BadInputError, match="no style 'Nope'"):
        plan_campaign("mood-board", {"theme": "forest"}, styles=["Nope"])
    with pytest.raises(BadInputError, match="Theme"):
        plan_campaign("mood-board", {})
    with pytest.raises(BadInputError, match="Unknown engine"):
        plan_campaign("mood-board", {"theme": "x"}, engine="dall-e")
    with pytest.raises(BadInputError, match="at most"):
        plan_campaign("product-hero", {"product": "x"}, seeds=16, guidance=[5, 6, 7, 8])


@pytest.mark.skipif(importlib.util.find_spec("core.engines.sd") is not None, reason="the SD engine is installed")
def test_sd_request_needs_the_sd_engine():
    plan = plan_campaign("mood-board", {"theme": "x"}, seed=1)
    with pytest.raises(MosaicError, match="Stable Diffusion engine is not available"):
        build_request(SD, plan.variations[0].request)
