"""The one copy verdict: exact sources of studio images, the search, one rule, words that follow the figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.analyzer.result import NearCopy, SourceShare
from core.analyzer.scoring import HIGH_REGION, MEDIUM_REGION, MEDIUM_SOURCE_SHARE, copy_risk, originality_score
from core.analyzer.verdict import (
    RISK_LABELS,
    Verdict,
    one_offset_pieces,
    verdict_from_exact,
    verdict_from_search,
)

NAMES = {i: f"picture-{i}.png" for i in range(50)}


def scattered(size: int = 20, pictures: int = 40, seed: int = 0) -> np.ndarray:
    """Exact sources where every pixel comes from a random picture at a random place: no piece, no main source."""
    rng = np.random.default_rng(seed)
    sources = np.zeros((size, size, 3), dtype=np.int64)
    sources[..., 0] = rng.integers(0, pictures, (size, size))
    sources[..., 1:] = rng.integers(0, 32, (size, size, 2))
    return sources


def paste(sources: np.ndarray, picture: int, top: int, left: int, height: int, width: int, offset=(3, 4)) -> None:
    """Pixels [top:top+height, left:left+width] copied from ``picture`` at one offset."""
    ys, xs = np.mgrid[top : top + height, left : left + width]
    sources[top : top + height, left : left + width, 0] = picture
    sources[top : top + height, left : left + width, 1] = ys + offset[0]
    sources[top : top + height, left : left + width, 2] = xs + offset[1]


def test_scattered_pixels_are_a_low_risk_mosaic():
    verdict = verdict_from_exact(scattered(), NAMES, library_size=1000)
    assert verdict.basis == "exact" and verdict.risk == "low" and verdict.driver == "none"
    assert verdict.largest_region < 0.01 and verdict.borrowed == 0.0 and verdict.originality == 100
    assert verdict.label == RISK_LABELS["low"] and "too small to recognise" in verdict.summary
    assert not verdict.small_library and verdict.library_advice == ""


def test_a_large_piece_at_one_offset_is_high_risk_and_named():
    sources = scattered()
    paste(sources, 7, 0, 0, 10, 12)  # 120 of 400 pixels = 30 %
    verdict = verdict_from_exact(sources, NAMES, library_size=1000)
    assert verdict.largest_region == pytest.approx(0.30)
    assert verdict.risk == "high" and verdict.driver == "region" and verdict.region_source == "picture-7.png"
    assert verdict.originality == originality_score(verdict.borrowed, 0.30, False)
    assert "30 %" in verdict.headline and "picture-7.png" in verdict.headline
    assert verdict.card_text.startswith(f"Originality {verdict.originality}/100 · High copy risk: one piece")


def test_pieces_at_different_offsets_are_separate_and_a_one_pixel_shift_is_one_piece():
    sources = scattered()
    paste(sources, 7, 0, 0, 10, 6, offset=(3, 4))
    paste(sources, 7, 0, 6, 10, 6, offset=(9, 9))  # same picture, another place: another piece
    verdict = verdict_from_exact(sources, NAMES, library_size=1000)
    assert verdict.largest_region == pytest.approx(0.15)
    assert verdict.top_share >= 0.30 and verdict.driver == "region" and verdict.risk == "medium"
    shifted = scattered()
    paste(shifted, 7, 0, 0, 10, 6, offset=(3, 4))
    paste(shifted, 7, 0, 6, 10, 6, offset=(4, 4))  # one pixel apart: the studio's tiny shifts
    assert verdict_from_exact(shifted, NAMES, library_size=1000).largest_region == pytest.approx(0.30)
    labels = one_offset_pieces(shifted, jitter=0)
    assert labels[0, 5] != labels[0, 6]  # strictly one offset: two pieces


def test_one_picture_supplying_much_in_small_pieces_is_checked_before_use():
    sources = scattered(pictures=40)
    rng = np.random.default_rng(1)
    many = rng.random(sources.shape[:2]) < 0.45
    sources[..., 0][many] = 3  # 45 % of the pixels from picture 3, scattered (random places)
    verdict = verdict_from_exact(sources, NAMES, library_size=1000)
    assert verdict.largest_region < MEDIUM_REGION <= MEDIUM_SOURCE_SHARE <= verdict.top_share
    assert verdict.risk == "medium" and verdict.driver == "source" and verdict.label == "Check before use"
    assert "picture-3.png" in verdict.headline and f"{verdict.top_share * 100:.0f} %" in verdict.headline


def test_a_piece_over_60_percent_is_a_near_copy_and_a_small_library_is_said_plainly():
    sources = scattered(pictures=4)
    paste(sources, 2, 0, 0, 16, 16)  # 64 %
    verdict = verdict_from_exact(sources, NAMES, library_size=4)
    assert verdict.near_copy and verdict.originality == 0 and verdict.risk == "high"
    assert verdict.driver == "near_copy" and "near copy" in verdict.summary and "64 %" in verdict.headline
    assert verdict.small_library and "only 4 pictures" in verdict.library_advice
    assert "bigger library" in verdict.library_advice
    assert not verdict_from_exact(sources, NAMES, library_size=5000).small_library


def test_search_and_exact_share_one_rule():
    shares = [SourceShare(1, "a", "a.png", 0.3), SourceShare(2, "b", "b.png", 0.1)]
    for largest in (0.0, 0.05, MEDIUM_REGION, 0.2, HIGH_REGION, 0.5):
        verdict = verdict_from_search(0.4, shares, largest, shares[0], NearCopy(is_copy=False, score=0.48))
        assert verdict.risk == copy_risk(largest, 0.3, False)
        assert verdict.originality == originality_score(0.4, largest, False)
        assert "48 %" not in verdict.summary + verdict.headline  # the near-copy match decides nothing here
    near = NearCopy(is_copy=True, score=0.72, index=2, item_id="b", name="b.png", mirrored=True)
    verdict = verdict_from_search(0.4, shares, 0.2, shares[0], near)
    assert verdict.driver == "near_copy" and verdict.originality == 0 and verdict.headline_value == 0.72
    assert "b.png" in verdict.headline and "mirrored" in verdict.headline and "72 %" in verdict.headline
    nothing = verdict_from_search(0.0, [], 0.0, None, NearCopy(is_copy=False, score=0.1))
    assert nothing.summary == "No part of this image was found in the library — low copy risk."


def test_a_verdict_round_trips_through_json_and_refuses_nonsense():
    sources = scattered()
    paste(sources, 7, 0, 0, 10, 12)
    verdict = verdict_from_exact(sources, NAMES, library_size=40)
    data = json.loads(json.dumps(verdict.to_json()))
    assert data["label"] == verdict.label and data["summary"] == verdict.summary
    assert Verdict.from_json(data) == verdict
    for broken in ({**data, "risk": "dunno"}, {**data, "top_share": 3}, {**data, "basis": "guess"}, [1]):
        with pytest.raises((ValueError, TypeError)):
            Verdict.from_json(broken)
    del data["originality"]
    with pytest.raises(TypeError):
        Verdict.from_json(data)


def test_a_studio_image_verdict_has_the_mosaic_views_figures(tmp_path):
    """The exact verdict's figures are the Mosaic view's: largest source share, number of pictures."""
    from core.analyzer.verdict import studio_verdict
    from core.libraries import LibraryManager
    from core.mosaic import build_mosaic, top_sources
    from core.store import Store
    from tests.studio_images import studio_record, tiny_library

    library = tiny_library(tmp_path / "refs")
    record = studio_record(library, seed=0)
    store, libraries = Store(), LibraryManager()
    mosaic = build_mosaic(store.arrays(record), library, libraries)
    verdict = studio_verdict(record, store, libraries, library)
    assert verdict is not None and verdict.basis == "exact"
    top = top_sources(mosaic, k=1)[0]
    assert verdict.top_share == top.share and verdict.top_source == mosaic.names[top.index]
    assert verdict.source_count == len(np.unique(mosaic.sources[..., 0]))
    assert verdict.risk == copy_risk(verdict.largest_region, verdict.top_share, verdict.near_copy)
    if verdict.risk != "low":  # 4 pictures: the studio mostly copies one; said plainly
        assert verdict.small_library and "only 4 pictures" in verdict.library_advice
    assert studio_verdict(record, store, libraries, "faces") is None  # another library: no exact sources for it


def test_the_originality_check_of_a_studio_image_uses_its_exact_sources(tmp_path):
    """The job attaches the exact verdict; it is saved, loads back, and the job's figures are the verdict's."""
    from core.analyzer.jobs import analysis_params, load_job_analysis
    from core.analyzer.saved import load_analysis
    from core.analyzer.settings import AnalyzerSettings
    from core.analyzer.verdict import final_verdict, studio_verdict
    from core.jobs import DONE, JobQueue
    from core.jobs.worker import run_job_here
    from core.libraries import LibraryManager
    from core.store import Store
    from tests.studio_images import studio_record, tiny_library

    library = tiny_library(tmp_path / "refs")
    record = studio_record(library, seed=0)
    queue = JobQueue()
    quick = AnalyzerSettings(work_size=64, scales=(8, 16))
    job = queue.submit("analyze", analysis_params(library, settings=quick, record_id=record.id), owner="ann")
    assert run_job_here(queue, job.id) == DONE
    job = queue.get(job.id)
    result = load_job_analysis(job)
    exact = studio_verdict(record, Store(), LibraryManager(), library)
    assert result.verdict == exact and final_verdict(result) == exact
    assert (result.originality, result.copy_risk, result.summary) == (exact.originality, exact.risk, exact.summary)
    assert job.result["originality"] == exact.originality and job.result["copy_risk"] == exact.risk
    assert job.result["verdict"]["basis"] == "exact"
    assert result.to_json()["verdict"]["summary"] == exact.summary

    # an analysis saved before verdicts existed loads, and shows its search verdict
    from core.analyzer.jobs import job_result_folder

    meta_path = job_result_folder(job.id) / "analysis.json"
    meta = json.loads(meta_path.read_text())
    del meta["verdict"]
    meta_path.write_text(json.dumps(meta))
    old = load_analysis(job_result_folder(job.id))
    assert old.verdict is None and final_verdict(old).basis == "search"
