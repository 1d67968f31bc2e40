"""Issue 16: campaign cards, the contact sheet and the CSV manifest show the Originality check's verdict."""

from __future__ import annotations

import html

from core.analyzer.jobs import analysis_params, load_job_analysis
from core.analyzer.result import AnalysisResult
from core.analyzer.verdict import final_verdict, studio_verdict
from core.campaigns import CampaignRunner, CampaignStore, plan_campaign
from core.campaigns.analysis import figures, item_verdict, make_analyzer
from core.campaigns.export import CONTACT_SHEET, MANIFEST, collect, read_manifest
from core.jobs import DONE, JobQueue
from core.jobs.worker import run_job_here
from core.libraries import LibraryManager
from tests.studio_images import tiny_library


def test_a_studio_campaign_shows_the_same_verdict_as_the_check(tmp_path):
    library = tiny_library(tmp_path / "refs")
    plan = plan_campaign(
        "ab-ad-pair", {"product": "bottle", "benefit": "cold"}, engine="local-score", seed=1, library=library,
        size=16, steps=2,
    )
    campaigns = CampaignStore()
    campaign = campaigns.create(plan)
    analyze = make_analyzer(campaign, campaigns, LibraryManager())
    assert analyze is not None and analyze.library == library
    CampaignRunner(campaigns, analyze=analyze).run(campaign.id)
    items = campaigns.items(campaign.id)
    assert len(items) >= 2 and all(item.status == "done" for item in items)

    export = collect(campaign.id, campaigns)
    rows = {r["item_id"]: r for r in read_manifest(export.files[MANIFEST].decode())}
    sheet = export.files[CONTACT_SHEET].decode()
    queue = JobQueue()
    for item in items:
        record = campaigns.generation(item)
        # the Originality check of this image, run as the page runs it (a job)
        job = queue.submit("analyze", analysis_params(library, record_id=record.id), owner="ann")
        assert run_job_here(queue, job.id) == DONE
        check = final_verdict(load_job_analysis(queue.get(job.id)))
        assert check.basis == "exact" and check == studio_verdict(record, campaigns.store, LibraryManager(), library)
        assert item_verdict(item) == check
        assert item.originality == check.originality and item.copy_risk_label == check.risk
        assert item.copy_risk == check.headline_value  # the figure that decided the label, not another one
        row = rows[item.id]
        words = check.words
        assert row["copy_risk_words"] == words.risk and row["copy_risk_words"].startswith(check.label + " (")
        assert row["originality_words"] == words.originality == f"Originality {check.originality} / 100 — " + (
            words.originality.split(" — ")[1])
        assert row["copy_risk_reason"] == (check.headline if check.driver != "none" else "")
        assert int(row["originality_score"]) == check.originality and row["copy_risk_level"] == check.risk
        assert abs(float(row["largest_copied_piece_percent"]) - 100 * check.largest_region) < 0.1
        assert abs(float(row["from_one_picture_percent"]) - 100 * check.top_share) < 0.1
        assert row["checked_by"] == "exact sources recorded while making it"
        assert html.escape(words.risk) in sheet and html.escape(words.originality) in sheet


def test_a_searched_result_gives_the_search_verdicts_figures(tmp_path):
    """Not a studio image of the library: the figures are the search verdict's (never the near-copy score
    beside a label it did not decide)."""
    from PIL import Image

    from core.analyzer import analyze_image
    from core.analyzer.settings import AnalyzerSettings

    library = tiny_library(tmp_path / "refs")
    photo = Image.open(tmp_path / "refs" / "coffee.png").resize((80, 80))
    result = analyze_image(photo, library, settings=AnalyzerSettings(work_size=64, scales=(8, 16)))
    assert isinstance(result, AnalysisResult)
    verdict = final_verdict(result)
    got = figures(result)
    assert verdict.basis == "search" and got["verdict"] == verdict.to_json()
    assert got["originality"] == verdict.originality and got["copy_risk_label"] == verdict.risk
    assert got["copy_risk"] == verdict.headline_value
