"""Images of the local score engine (fine patches) are mosaics, not copies; exact sources are compared."""

from __future__ import annotations

import numpy as np

from core.analyzer import Analyzer, compare_with_exact_sources
from core.analyzer.settings import AnalyzerSettings
from core.libraries import LibraryManager


def _engine_images(count: int, seed: int = 0):
    from core.engines.local_score import LocalScoreEngine, LocalScoreRequest

    engine = LocalScoreEngine()
    return engine.generate(LocalScoreRequest(library="faces", preset="fine", size=16, count=count, seed=seed))


def _check(images, analyzer):
    from core.mosaic import build_mosaic

    copies, agreements = 0, []
    for generated in images:
        result = analyzer.analyze(generated.image, "faces")
        copies += result.near_copy.is_copy
        mosaic = build_mosaic(generated.arrays, "faces", analyzer.libraries)
        agreement = compare_with_exact_sources(result, mosaic)
        assert 0.0 <= agreement.agreement <= 1.0 and 0.0 <= agreement.coverage <= 1.0
        agreements.append(agreement.agreement)
    return copies, agreements


def test_local_score_images_flagged_as_copies_in_at_most_1_percent(isolated_data_dir):
    analyzer = Analyzer(LibraryManager(), settings=AnalyzerSettings(work_size=64, scales=(8, 16)))
    images = [g for seed in range(0, 112, 16) for g in _engine_images(16, seed)]
    copies, agreements = _check(images, analyzer)
    print(f"flagged as copies: {copies} of {len(images)}; mean agreement with exact sources: {np.mean(agreements):.3f}")
    assert len(images) == 112
    assert copies / len(images) <= 0.01
