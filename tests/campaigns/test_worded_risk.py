"""Issue 19: the copy verdict in words plus a number a person reads, the same on pages, contact sheet and CSV."""

from __future__ import annotations

import html

import numpy as np
import pytest

from core.analyzer.verdict import in_words, originality_words, verdict_from_exact
from core.campaigns import CampaignRunner, CampaignStore, plan_campaign
from core.campaigns.export import CONTACT_SHEET, MANIFEST, collect, read_manifest

NAMES = {i: f"picture-{i}.png" for i in range(50)}


def _scattered(size: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sources = np.zeros((size, size, 3), dtype=np.int64)
    sources[..., 0] = rng.integers(0, 40, (size, size))
    sources[..., 1:] = rng.integers(0, 32, (size, size, 2))
    return sources


def _paste(sources: np.ndarray, picture: int, height: int, width: int) -> None:
    ys, xs = np.mgrid[0:height, 0:width]
    sources[:height, :width, 0] = picture
    sources[:height, :width, 1] = ys + 3
    sources[:height, :width, 2] = xs + 4


@pytest.mark.parametrize(
    ("score", "expected"),
    [(100, "very original"), (90, "very original"), (75, "original"), (50, "partly borrowed"),
     (12, "mostly borrowed"), (0, "not original"), (0.97, "very original")],
)
def test_originality_reads_as_words_and_a_score_out_of_100(score, expected):
    words = originality_words(score)
    value = round(score * 100) if 0 < score < 1 else score
    assert words == f"Originality {value} / 100 — {expected}"


def test_a_verdict_reads_as_a_risk_with_the_figure_that_decided_it():
    low = verdict_from_exact(_scattered(), NAMES, library_size=1000)
    words = low.words
    assert words.risk.startswith("Low copy risk (") and words.level == "low" and words.reason == ""
    assert words.originality == f"Originality {low.originality} / 100 — very original"
    assert words.line == f"{words.risk} · {words.originality}"

    sources = _scattered()
    _paste(sources, 7, 10, 12)  # one piece: 30 % of the image
    high = verdict_from_exact(sources, NAMES, library_size=1000).words
    assert high.risk == "High copy risk (one copied piece covers 30 % of the image)"
    assert "picture-7.png" in high.reason and high.level == "high"
    for text in (words.line, high.line):  # never a raw fraction
        assert "0." not in text


def test_figures_kept_without_a_verdict_still_read_as_words():
    old = in_words(originality=97, risk="low", value=0.02787)
    assert old.risk == "Low copy risk (3 of 100)" and old.originality == "Originality 97 / 100 — very original"
    assert in_words(originality=0.5, risk="medium").line == "Check before use · Originality 50 / 100 — partly borrowed"
    assert in_words().risk == "Not checked yet" and in_words().line == "Not checked yet"


def test_contact_sheet_and_csv_carry_the_worded_risk(fast):
    plan = plan_campaign("ab-ad-pair", {"product": "bottle", "benefit": "cold"}, engine="local-score", seed=2, **fast)
    campaigns = CampaignStore()
    campaign = campaigns.create(plan)
    # figures as an older analyzer kept them: a score as a fraction, a risk level, the deciding figure
    CampaignRunner(campaigns, analyze=lambda record: {"originality": 0.97, "copy_risk": 0.02787,
                                                      "copy_risk_label": "low"}).run(campaign.id)
    export = collect(campaign.id, campaigns)
    rows = read_manifest(export.files[MANIFEST].decode())
    sheet = export.files[CONTACT_SHEET].decode()
    assert rows and all(r["copy_risk_words"] == "Low copy risk (3 of 100)" for r in rows)
    assert all(r["originality_words"] == "Originality 97 / 100 — very original" for r in rows)
    assert all(r["originality_score"] == "97" and r["deciding_figure_percent"] == "2.8" for r in rows)
    assert "copy_risk" not in rows[0] and "engine" not in rows[0]  # no unclear raw columns
    assert sheet.count(html.escape("Low copy risk (3 of 100)")) == len(rows)
    assert sheet.count(html.escape("Originality 97 / 100 — very original")) == len(rows)
    assert "0.02787" not in sheet and "0.0279" not in sheet and "bbels" not in sheet.lower()
    assert "Made offline from the Faces and backgrounds library" in sheet and "engine" not in sheet.lower()


def test_checking_originality_moves_the_progress_bar(tmp_path, fast):
    """Each image's check reports its own progress ("checking originality…"), so the bar keeps moving."""
    from core.analyzer import analyze_image
    from core.analyzer.settings import AnalyzerSettings
    from core.campaigns.analysis import figures
    from tests.studio_images import tiny_library

    library = tiny_library(tmp_path / "refs")  # not the campaign's library: the check searches it
    plan = plan_campaign("ab-ad-pair", {"product": "bottle", "benefit": "cold"}, engine="local-score", seed=4, **fast)
    campaigns = CampaignStore()
    campaign = campaigns.create(plan)
    quick = AnalyzerSettings(work_size=64, scales=(8, 16))

    def check(record, on_progress=None):
        return figures(analyze_image(campaigns.store.image(record), library, on_progress=on_progress, settings=quick))

    check.reports_progress = True
    seen = []
    report = CampaignRunner(campaigns, analyze=check).run(campaign.id, on_progress=seen.append)
    assert report.status == "done" and len(report.made) == plan.count
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0  # the bar only moves forward, to the end
    checking = [p for p in seen if "checking originality" in p.message]
    for index in range(plan.count):  # every image's check reports several steps, inside that image's share
        mine = [p.fraction for p in checking if p.image_index == index]
        assert len(set(mine)) >= 3, mine
        assert index / plan.count < min(mine) and max(mine) <= (index + 1) / plan.count + 1e-9
    assert any("looking for borrowed pieces" in p.message for p in checking)
    assert all(item.originality is not None for item in campaigns.items(campaign.id))

    # checking the images again later ("Check originality of 4 images") reports progress the same way
    later = []
    count = CampaignRunner(campaigns).analyze_items(campaign.id, check, redo=True, on_progress=later.append)
    assert count == plan.count and later[-1].fraction == 1.0
    assert [p.fraction for p in later] == sorted(p.fraction for p in later)
    assert later[0].message.startswith("Image 1 of 4") and "checking originality" in later[0].message
