"""Library content at another size than in the library: shrunk into a collage, or a detail blown up.

Planted sets are built here from scikit-image photos: a whole library picture shrunk (0.25×-0.85×) or a
textured 32-64 px region blown up (1.2×-4×), pasted on a photo that is not in the library so that it
covers 25-60 % of the checked image. "Flagged" means what a person reads: the copy risk is not low and
the largest borrowed region names the planted picture.
"""

from __future__ import annotations

import numpy as np
import pytest
from analyzer_synth import clean_image, cropped_copy, planted_at_scale

from core.analyzer import AnalyzerSettings

SCALES = (0.25, 0.35, 0.5, 0.71, 0.85, 1.2, 1.41, 2.0, 2.83, 4.0)


def _scale(case: int) -> float:
    """The scales in turn, each moved by up to ±10 % (so most cases fall between two searched sizes)."""
    return SCALES[case % len(SCALES)] * float(np.random.default_rng(case).uniform(0.9, 1.1))


def _flagged(result, item: int) -> bool:
    return result.copy_risk != "low" and bool(result.regions) and result.regions[0].source == item


def _planted_rate(analyzer, arrays, cases: range) -> tuple[float, list[str]]:
    misses = []
    for case in cases:
        planted = planted_at_scale(arrays, case, _scale(case))
        result = analyzer.analyze(planted.image, "shots")
        if not _flagged(result, planted.item):
            misses.append(f"scale {planted.scale:.2f} (relative {planted.relative:.2f}), covers "
                          f"{planted.cover:.0%} of {planted.image.size}: {result.summary}")
    return 1.0 - len(misses) / len(cases), misses


def _clean_rate(analyzer, cases: range) -> tuple[float, list[str]]:
    flagged = []
    for case in cases:
        result = analyzer.analyze(clean_image(1000 + case), "shots")
        if result.copy_risk != "low":
            flagged.append(f"clean image {case}: {result.summary}")
    return len(flagged) / len(cases), flagged


def test_a_detail_blown_up_twice_is_found_with_its_size(shared):
    analyzer, arrays = shared
    planted = planted_at_scale(arrays, 7, 2.0)
    result = analyzer.analyze(planted.image, "shots")
    assert _flagged(result, planted.item), result.summary
    region = result.regions[0]
    assert region.scale == pytest.approx(planted.relative, rel=0.2), (region.scale, planted.relative)
    assert region.area == pytest.approx(planted.cover, abs=0.15)
    # where it comes from in the library picture: inside the picture, about 1/scale of the region's size
    top, left, bottom, right = region.source_box
    assert 0 <= top < bottom <= 128 and 0 <= left < right <= 128
    assert (bottom - top) == pytest.approx((region.box[2] - region.box[0]) / region.scale, rel=0.35)


def test_a_picture_shrunk_into_a_collage_is_found(shared):
    analyzer, arrays = shared
    planted = planted_at_scale(arrays, 2, 0.5)
    result = analyzer.analyze(planted.image, "shots")
    assert _flagged(result, planted.item), result.summary
    assert result.regions[0].scale < 0.9
    assert result.to_json()["sources"][0]["regions"][0]["scale"] < 0.9


def test_one_size_only_misses_what_the_scale_search_finds(shared, tmp_path):
    """The same planted images with the other sizes switched off: the scale search is what finds them."""
    from core.analyzer import Analyzer

    analyzer, arrays = shared
    one_size = Analyzer(analyzer.libraries, AnalyzerSettings(scale_levels=()), index_root=tmp_path)
    cases = [c for c in range(40) if abs(np.log2(_scale(c))) > 0.6][:8]  # below 0.66× or above 1.5×
    with_scales = sum(_flagged(analyzer.analyze((p := planted_at_scale(arrays, c, _scale(c))).image, "shots"),
                               p.item) for c in cases)
    without = sum(_flagged(one_size.analyze((p := planted_at_scale(arrays, c, _scale(c))).image, "shots"),
                           p.item) for c in cases)
    assert with_scales >= len(cases) - 1
    assert without <= len(cases) // 2, without


def test_content_at_other_sizes_is_flagged(shared):
    """40 planted images over 0.25×-4× (the full 200-case set is the slow test below)."""
    analyzer, arrays = shared
    rate, misses = _planted_rate(analyzer, arrays, range(40))
    print(f"planted at other sizes: {rate:.1%} of 40 flagged; misses: {misses}")
    assert rate >= 0.95, misses


def test_clean_images_are_not_flagged(shared):
    """A quick check on 40 clean images; the 1 % bound itself is asserted on 200 (the slow test below)."""
    analyzer, _ = shared
    _, flagged = _clean_rate(analyzer, range(40))
    assert len(flagged) <= 1, flagged


def test_a_curved_rim_alone_is_not_a_piece_at_another_size(shared):
    """Clean image 31: a retina's orange rim against black lines up with a saucer's rim blown up 2×, along
    the edge only. Such a match needs anchors where detail runs both ways (``level_two_way_anchors``)."""
    from core.analyzer import Analyzer

    analyzer, _ = shared
    image = clean_image(1031)
    assert analyzer.analyze(image, "shots").copy_risk == "low"
    edge_only = Analyzer(analyzer.libraries, AnalyzerSettings(level_two_way_anchors=0),
                         index_root=analyzer.index_root)
    assert edge_only.analyze(image, "shots").copy_risk != "low"  # the rule is what keeps it out


@pytest.mark.slow
def test_content_at_other_sizes_is_flagged_in_95_percent_of_200_cases(shared):
    analyzer, arrays = shared
    rate, misses = _planted_rate(analyzer, arrays, range(200))
    clean, flagged = _clean_rate(analyzer, range(200))
    print(f"planted at other sizes: {rate:.1%} of 200 flagged; clean images flagged: {clean:.1%} of 200")
    for line in misses + flagged:
        print("  ", line)
    assert rate >= 0.95
    assert clean <= 0.01


def test_cropped_resized_recoloured_copies_are_near_copies(shared):
    """Crops keeping 55-90 % of each side, resized ×0.5-3, colour-shifted, JPEG 50-90: a near copy of the
    right picture (the whole-image check alone allows crops down to 85 %)."""
    analyzer, arrays = shared
    cases = range(30)
    missed = []
    for case in cases:
        item = case % len(arrays)
        result = analyzer.analyze(cropped_copy(arrays[item], case), "shots")
        if not (result.near_copy.is_copy and result.near_copy.index == item and result.copy_risk == "high"):
            missed.append(f"{case}: {result.summary}")
    print(f"cropped copies: {len(cases) - len(missed)} of {len(cases)} flagged as near copies")
    assert len(missed) <= 2, missed  # measured: 57 of 60 (BENCHMARKS.md); resized-only copies: test_analyzer_nearcopy


def test_the_verdict_says_a_piece_was_blown_up(shared):
    analyzer, arrays = shared
    planted = planted_at_scale(arrays, 7, 2.0)
    result = analyzer.analyze(planted.image, "shots")
    assert "blown up" in result.summary, result.summary
    assert result.verdict is None or "blown up" in result.verdict.summary



def test_the_checked_image_is_described_once_per_patch_size(shared, monkeypatch):
    """The whole-size and every reduced-size searcher of a patch size take the same query patches: they are
    described once per analysis (and once per reduced copy of the checked image), not once per searcher."""
    import core.analyzer.voting as voting

    analyzer, arrays = shared
    calls: dict[tuple[int, tuple[int, ...]], int] = {}
    describe = voting.query_descriptors

    def counted(describer, features, structure):  # noqa: ANN001, ANN202
        key = (describer.patch, tuple(features.shape))
        calls[key] = calls.get(key, 0) + 1
        return describe(describer, features, structure)

    monkeypatch.setattr(voting, "query_descriptors", counted)
    planted = planted_at_scale(arrays, 3, 0.5)
    result = analyzer.analyze(planted.image, "shots")
    assert _flagged(result, planted.item), result.summary
    whole = [key for key in calls if key[1][-2:] == max(k[1][-2:] for k in calls)]
    assert {patch for patch, _ in whole} >= {8, 16, 32}  # every patch size searched on the whole image
    assert calls and set(calls.values()) == {1}, calls


def test_covers_finds_the_patches_that_hold_a_marked_pixel():
    from core.analyzer.voting import covers

    where = np.zeros((10, 12), dtype=bool)
    where[4, 7] = True
    positions = np.array([[0, 0], [4, 7], [1, 4], [2, 5], [4, 8], [5, 7], [8, 10], [3, 6]], dtype=np.int32)
    assert covers(where, positions, 4).tolist() == [False, True, True, True, False, False, False, True]
    assert not covers(np.zeros((10, 12), dtype=bool), positions, 4).any()
    assert covers(np.ones((10, 12), dtype=bool), positions, 4).all()


def test_the_library_reduced_sizes_are_searched_only_where_the_whole_size_found_nothing(shared, monkeypatch):
    """Other sizes only fill pixels the whole-size search left unexplained: the library's reduced sizes are
    searched with the patches over such pixels only, and not at all for a picture of the library itself."""
    import core.analyzer.voting as voting

    analyzer, arrays = shared
    seen: list[tuple[bool, int]] = []
    vote = voting.OffsetVoter.candidates

    def recorded(self, scale, features, structure, allowed, library_size, nprobe=None, where=None):  # noqa: ANN001, ANN202
        if where is not None:
            seen.append((bool(where.all()), int(where.sum())))
        return vote(self, scale, features, structure, allowed, library_size, nprobe, where)

    monkeypatch.setattr(voting.OffsetVoter, "candidates", recorded)
    planted = planted_at_scale(arrays, 3, 0.5)
    result = analyzer.analyze(planted.image, "shots")
    assert _flagged(result, planted.item), result.summary
    assert seen and len(set(seen)) == 1  # every reduced size gets the same pixels to explain
    seen.clear()
    from PIL import Image

    itself = analyzer.analyze(Image.fromarray(arrays[5]), "shots")
    assert itself.near_copy.is_copy and itself.borrowed_fraction > 0.95
    assert seen == []  # nothing left to explain: no reduced size searched
