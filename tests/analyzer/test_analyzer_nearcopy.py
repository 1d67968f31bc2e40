"""Whole-image near copies (resized, cropped ≤ 10 %, JPEG, mirrored, recoloured) are flagged."""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from analyzer_synth import background, clean_image, collage, near_copy
from PIL import Image

from core.analyzer.nearcopy import NearCopyChecker, detail_share
from core.images import to_tensor


def _checker(analyzer):
    index, _ = analyzer.index("shots")
    return NearCopyChecker(index.global_index, index.pixels), index


def _flagged(checker, image, threshold) -> tuple[bool, int]:
    match = checker.check(to_tensor(image.convert("RGB")))
    return bool(match is not None and match.score >= threshold), -1 if match is None else match.row


def _rates(analyzer, arrays, cases: int):
    checker, index = _checker(analyzer)
    threshold = analyzer.settings.copy_threshold
    hits = 0
    for case in range(cases):
        item = case % len(arrays)
        flagged, row = _flagged(checker, near_copy(arrays[item], seed=case), threshold)
        hits += flagged and index.item_ids[row] == index.item_ids[item]
    false = 0
    rng = np.random.default_rng(0)
    from PIL import Image

    for case in range(cases // 4):
        image = Image.fromarray(background(rng)) if case % 2 else collage(arrays, seed=100 + case).image
        false += _flagged(checker, image, threshold)[0]
    return hits / cases, false / max(1, cases // 4)


def test_near_copies_are_flagged(shared):
    analyzer, arrays = shared
    hit_rate, false_rate = _rates(analyzer, arrays, 16)
    assert hit_rate == 1.0
    assert false_rate == 0.0


def test_full_analysis_reports_a_near_copy(shared):
    analyzer, arrays = shared
    result = analyzer.analyze(near_copy(arrays[5], seed=7), "shots")
    assert result.near_copy.is_copy and result.near_copy.index == 5
    assert result.copy_risk == "high" and result.originality == 0
    assert "near copy" in result.summary


def test_near_copies_are_flagged_in_99_percent_of_240_cases(shared):
    """240 near copies (each library image about 6 times: resized ×0.6-2.5, cropped ≤ 10 % per side,
    JPEG 40-90, half mirrored, half colour-jittered) and 60 images that are not copies."""
    analyzer, arrays = shared
    hit_rate, false_rate = _rates(analyzer, arrays, 240)
    print(f"near copies flagged: {hit_rate * 100:.1f} % of 240; non-copies flagged: {false_rate * 100:.1f} % of 60")
    assert hit_rate >= 0.99
    assert false_rate <= 0.01


def test_an_almost_flat_image_is_never_a_near_copy(shared):
    """A close-up of a smooth surface lines up with any smooth library picture (a sky, a plate): with
    detail on under 5 % of it there is nothing to tell a copy by, so it is not compared as a whole."""
    analyzer, arrays = shared
    checker, _ = _checker(analyzer)
    flat = clean_image(1161)  # a retina close-up: orange, faint veins; once matched a mirrored sky at 62 %
    query = to_tensor(flat.convert("RGB"))
    assert detail_share(F.interpolate(query[None], size=(64, 64), mode="bilinear", antialias=True)[0]) < 0.05
    assert checker.check(query) is None
    assert not analyzer.analyze(flat, "shots").near_copy.is_copy
    # the rule looks at detail, not at size or colour: a textured library picture is still compared
    assert checker.check(to_tensor(near_copy(arrays[3], seed=3).convert("RGB"))) is not None
    # ... and a faint one too (a grey face of the built-in faces has a tenth of a photo's contrast)
    faint = to_tensor(Image.fromarray(arrays[3]).convert("RGB")) * 0.12
    faint64 = F.interpolate(faint[None], size=(64, 64), mode="bilinear", antialias=True)[0]
    assert float(faint64.std()) < 0.1 and detail_share(faint64) > 0.05


def test_a_crop_box_at_or_past_the_edge_still_gives_a_picture():
    """An aligned box can end up at an image's edge; the crop keeps at least one pixel instead of failing
    ("Expected non-zero, positive output size" once, under load, in the slow test)."""
    import torch

    from core.analyzer.nearcopy import _crop

    images = torch.rand(2, 3, 64, 64)
    for box in [(1.0, 1.0, 0.0, 0.0), (0.999, 0.2, 0.001, 0.5), (-0.1, -0.2, 0.5, 0.5)]:
        out = _crop(images, box, 16)
        assert out.shape == (2, 3, 16, 16) and torch.isfinite(out).all()
    torch.testing.assert_close(_crop(images, (0.0, 0.0, 1.0, 1.0), 64), images)
