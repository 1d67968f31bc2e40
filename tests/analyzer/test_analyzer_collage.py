"""Planted collages: pasted library rectangles must be attributed pixel by pixel."""

from __future__ import annotations

import json

import numpy as np
from analyzer_synth import collage

from core.analyzer import rebuilt_image, similarity_heatmap, source_map_image, top_source_images
from core.analyzer.compare import _resample
from core.analyzer.verdict import verdict_from_analysis


def _accuracy(result, truth: np.ndarray) -> float:
    estimate = result.source_map
    if estimate.shape != truth.shape:
        estimate = _resample(estimate, *truth.shape)
    return float((estimate == truth).mean())


def test_clean_collage_is_attributed_pixel_by_pixel(shared):
    analyzer, arrays = shared
    planted = collage(arrays, seed=3)
    result = analyzer.analyze(planted.image, "shots")
    assert _accuracy(result, planted.truth) >= 0.95
    true_sources = set(np.unique(planted.truth[planted.truth >= 0]).tolist())
    assert {s.index for s in result.sources} == true_sources
    assert 0.0 < result.borrowed_fraction < 1.0
    assert result.largest_region_fraction <= result.borrowed_fraction
    assert not result.near_copy.is_copy
    verdict = verdict_from_analysis(result)  # the summary is the verdict's: its label and the figure deciding it
    assert result.summary == verdict.summary and verdict.label.lower() in result.summary
    assert "library picture" in result.summary
    assert set(result.scales) == {8, 16, 32}
    data = result.to_json()
    json.dumps(data)
    assert data["copy_risk"] in ("low", "medium", "high") and 0 <= data["originality"] <= 100
    # renders
    assert source_map_image(result).size == (128 * 4, 128 * 4)
    assert similarity_heatmap(result, scale=16).mode == "RGB"
    assert rebuilt_image(result, analyzer.libraries).size == (256, 256)
    tops = top_source_images(result, analyzer.libraries, k=3)
    assert 1 <= len(tops) <= 3 and tops[0][0].share >= tops[-1][0].share


def test_perturbed_collage_is_still_attributed(shared):
    analyzer, arrays = shared
    planted = collage(arrays, seed=3, perturb=True)  # colour jitter, resize to 160 px, JPEG 50
    result = analyzer.analyze(planted.image, "shots")
    assert _accuracy(result, planted.truth) >= 0.85


SEEDS = range(40)


def test_collage_accuracy_over_many_seeds(shared):
    """Per-pixel source accuracy over 40 clean and 40 perturbed collages (5 pieces of 24-64 px each, pasted
    over a photo that is not in the library; perturbed: colour jitter per piece, resize, JPEG 50)."""
    analyzer, arrays = shared
    results = {}
    for perturb in (False, True):
        accuracies = []
        for seed in SEEDS:
            planted = collage(arrays, seed, perturb=perturb)
            accuracies.append(_accuracy(analyzer.analyze(planted.image, "shots"), planted.truth))
        results[perturb] = accuracies
        label = "perturbed" if perturb else "clean"
        print(f"{label}: mean per-pixel accuracy {np.mean(accuracies):.4f} over {len(accuracies)} collages "
              f"(min {min(accuracies):.3f})")
    assert np.mean(results[False]) >= 0.95, results[False]
    assert np.mean(results[True]) >= 0.85, results[True]
