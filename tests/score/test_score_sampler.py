"""DDIM sampling with the machines: trajectories, limits, cancellation and input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from score_reference import reference_grid_sample, reference_sample

from core.errors import BadInputError, GenerationCancelled
from core.score import MACHINE_KINDS, denoise, estimate_cost, patch_schedule, sample
from core.score.approximate import choose_candidates, default_top_k, exact_steps, uses_index


@pytest.fixture(scope="module")
def data():
    gen = torch.Generator().manual_seed(10)
    library = torch.rand(3, 2, 6, 6, generator=gen) * 2 - 1
    noise = torch.randn(2, 2, 6, 6, generator=gen)
    return library, noise


@pytest.mark.parametrize("kind", ["ls", "els"])
def test_reference_grid_matches_the_authors_grid(data, kind):
    library, noise = data
    low_to_high = [1, 1, 3, 3, 3, 3, 3, 5, 5, 5, 5, 5, 7, 7, 7, 9, 9, 11, 11, 11]
    sizes = list(reversed(low_to_high))  # sampling order: high noise first
    result = sample(library, noise, kind, sizes, grid="reference")
    ref, used = reference_grid_sample(library.numpy(), noise.numpy(), kind, low_to_high)
    assert result.step_x0.shape[0] == 19 and result.patch_sizes == used
    np.testing.assert_allclose(result.step_x0.numpy(), np.stack(ref), atol=1e-3, rtol=1e-3)
    np.testing.assert_allclose(result.images.numpy(), ref[-1], atol=1e-3, rtol=1e-3)  # not clamped
    assert not torch.equal(result.images, sample(library, noise, kind, sizes).images)  # another grid


def test_reference_grid_needs_the_20_entry_schedule(data):
    library, noise = data
    with pytest.raises(BadInputError, match="20-entry patch schedule"):
        sample(library, noise, "ls", [5, 3, 3], grid="reference")
    with pytest.raises(BadInputError, match="Unknown sampling grid"):
        sample(library, noise, "ls", [5, 3, 3], grid="fancy")


@pytest.mark.parametrize("kind", MACHINE_KINDS)
def test_trajectory_matches_brute_force(data, kind):
    library, noise = data
    sizes = [5, 5, 3, 3]
    result = sample(library, noise, kind, sizes)
    ref = reference_sample(library.numpy(), noise.numpy(), kind, sizes)
    for step in range(len(sizes)):
        np.testing.assert_allclose(result.step_x0[step].numpy(), ref[step], atol=1e-3, rtol=1e-3)
    assert result.images.shape == noise.shape
    assert result.step_sources.shape == (4, 2, 6, 6, 3)
    assert result.step_entropy.shape == (4, 2, 6, 6)
    assert result.patch_sizes == sizes
    assert torch.equal(result.sources, result.step_sources[-1])


def test_conditional_trajectory_matches_brute_force(data):
    library, noise = data
    labels, class_labels = torch.tensor([0, 1, 1]), torch.tensor([1, 0])
    result = sample(library, noise, "bbels", [5, 3, 3], labels=labels, class_labels=class_labels)
    ref = reference_sample(library.numpy(), noise.numpy(), "bbels", [5, 3, 3], labels.numpy(), class_labels.numpy())
    np.testing.assert_allclose(result.step_x0.numpy(), np.stack(ref), atol=1e-3, rtol=1e-3)
    assert set(result.step_sources[:, 1, ..., 0].flatten().tolist()) == {0}


@pytest.mark.parametrize(("kind", "patch"), [("is", 1), ("ls", 11), ("bbels", 11), ("ls", 3)])
def test_single_image_library_is_copied(kind, patch):
    gen = torch.Generator().manual_seed(2)
    library = torch.rand(1, 1, 6, 6, generator=gen) * 2 - 1
    noise = torch.randn(2, 1, 6, 6, generator=gen)
    result = sample(library, noise, kind, [patch] * 10)
    torch.testing.assert_close(result.images, library.expand(2, -1, -1, -1), atol=1e-4, rtol=0)
    assert int(result.sources[..., 0].max()) == 0


def test_single_image_els_gives_a_circular_shift_of_it():
    gen = torch.Generator().manual_seed(2)
    library = torch.rand(1, 1, 6, 6, generator=gen) * 2 - 1
    result = sample(library, torch.randn(2, 1, 6, 6, generator=gen), "els", [11] * 10)
    for image in result.images:
        best = min(
            float((torch.roll(library[0], (dy, dx), (1, 2)) - image).abs().max()) for dy in range(6) for dx in range(6)
        )
        assert best < 1e-4


def test_ideal_score_copies_a_library_image():
    gen = torch.Generator().manual_seed(4)
    library = torch.rand(5, 1, 8, 8, generator=gen) * 2 - 1
    result = sample(library, torch.randn(3, 1, 8, 8, generator=gen), "is", [1] * 20)
    for b in range(3):
        distance = (library - result.images[b]).flatten(1).norm(dim=1)
        assert float(distance.min()) < 1e-3
        assert int(result.sources[b, 0, 0, 0]) == int(distance.argmin())


def test_same_noise_same_result_and_progress(data):
    library, noise = data
    calls = []
    first = sample(library, noise, "bbels", [5, 3], on_step=lambda k, n, x0: calls.append((k, n, x0.shape)))
    again = sample(library, noise.clone(), "bbels", [5, 3])
    assert torch.equal(first.images, again.images)
    assert torch.equal(first.step_sources, again.step_sources)
    assert calls == [(1, 2, noise.shape), (2, 2, noise.shape)]


def test_cancellation(data):
    library, noise = data
    seen = []

    def cancel_after_first_step() -> bool:
        return len(seen) >= 1

    with pytest.raises(GenerationCancelled):
        sample(
            library,
            noise,
            "els",
            [3, 3, 3],
            on_step=lambda *a: seen.append(a),
            should_cancel=cancel_after_first_step,
        )
    assert len(seen) == 1
    with pytest.raises(GenerationCancelled):
        denoise(noise, 0.5, library, "ls", 3, should_cancel=lambda: True)


def test_the_ideal_score_is_cancelled_between_library_chunks(data):
    library, noise = data
    polls = []

    def cancel_on_the_third_check() -> bool:
        polls.append(1)
        return len(polls) >= 3

    with pytest.raises(GenerationCancelled):  # one image per chunk: the third check is inside the step
        denoise(noise[:1], 0.5, library, "is", 1, memory_budget_bytes=64, should_cancel=cancel_on_the_third_check)
    assert len(polls) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"library": torch.zeros(0, 2, 6, 6)}, "empty"),
        ({"noise": torch.zeros(1, 1, 6, 6)}, "must match"),
        ({"noise": torch.zeros(6, 6)}, r"\(B, C, H, W\)"),
        ({"kind": "xyz"}, "Unknown machine kind"),
        ({"patch_sizes": [4]}, "odd"),
        ({"patch_sizes": [0]}, "odd"),
        ({"patch_sizes": []}, "empty"),
        ({"patch_sizes": [13]}, "larger than 11"),
        ({"class_labels": torch.tensor([0, 0])}, "needs a label"),
        ({"labels": torch.tensor([0, 1, 1]), "class_labels": torch.tensor([0, 5])}, "Class label 5"),
        (
            {"labels": torch.tensor([0, 1]), "class_labels": torch.tensor([0, 1])},
            "one entry per library image",
        ),
    ],
)
def test_bad_inputs(data, kwargs, message):
    library, noise = data
    args = {"library": library, "noise": noise, "kind": "bbels", "patch_sizes": [3], **kwargs}
    with pytest.raises(BadInputError, match=message):
        sample(**args)


def test_denoise_rejects_bad_noise_level(data):
    library, noise = data
    with pytest.raises(BadInputError, match="alpha_bar"):
        denoise(noise, 1.0, library, "ls", 3)


def test_patch_schedules():
    assert patch_schedule("fashion-unet", 32) == [
        25,
        25,
        25,
        25,
        23,
        21,
        15,
        15,
        13,
        11,
        11,
        11,
        9,
        7,
        7,
        7,
        5,
        5,
        3,
        3,
    ]
    assert patch_schedule("balanced", 32) == patch_schedule("fashion-unet", 32)
    assert patch_schedule("whole-image", 16, 5) == [31] * 5
    for preset in ("fine", "coarse", "fashion-unet"):
        for size, steps in ((8, 7), (64, 40), (28, 20)):
            sizes = patch_schedule(preset, size, steps)
            assert len(sizes) == steps
            assert all(p % 2 == 1 and 1 <= p <= 2 * size - 1 for p in sizes)
            assert sizes == sorted(sizes, reverse=True)
    assert sum(patch_schedule("fine", 32)) < sum(patch_schedule("fashion-unet", 32)) < sum(patch_schedule("coarse", 32))
    with pytest.raises(BadInputError, match="fashion-unet"):
        patch_schedule("nope", 32)


def test_estimate_cost_grows_with_work():
    small = estimate_cost(100, 1, 16, 1, "bbels", patch_schedule("fashion-unet", 16))
    big = estimate_cost(400, 1, 16, 2, "bbels", patch_schedule("fashion-unet", 16))
    assert 0 < small.flops < big.flops and 0 < small.seconds_estimate < big.seconds_estimate
    assert small.peak_bytes > 0
    els = estimate_cost(100, 1, 16, 1, "els", [3])
    assert els.flops == pytest.approx(2 * 9 * 256 * 100 * 256)


def test_estimate_cost_of_the_approximate_mode():
    sizes = patch_schedule("fashion-unet", 16)
    exact = estimate_cost(400, 1, 16, 2, "bbels", sizes)
    approx = estimate_cost(400, 1, 16, 2, "bbels", sizes, approximate_top_k=32)
    assert 0 < approx.flops < exact.flops and approx.seconds_estimate < exact.seconds_estimate
    # keeping every image is the exact run
    assert estimate_cost(400, 1, 16, 2, "bbels", sizes, approximate_top_k=400).flops == pytest.approx(exact.flops)
    # the exact steps are counted in full: the first 35 % of the steps with all 400 images
    first = sizes[: exact_steps(len(sizes), 16)]
    assert approx.flops > estimate_cost(400, 1, 16, 2, "bbels", first).flops
    # with the patch index: cheaper than exact for a big library, more expensive the more lists probed
    sizes = patch_schedule("fashion-unet", 32)
    indexed = estimate_cost(4000, 1, 32, 2, "bbels", sizes, approximate_top_k=40, indexed=True)
    assert indexed.seconds_estimate < estimate_cost(4000, 1, 32, 2, "bbels", sizes).seconds_estimate
    assert indexed.flops > estimate_cost(4000, 1, 32, 2, "bbels", sizes[: exact_steps(20, 32, indexed=True)]).flops
    # the first run also builds the index: once per patch size of the approximate steps, linear in the library
    assert indexed.index_build_seconds > 0 and exact.index_build_seconds == 0 == approx.index_build_seconds
    bigger = estimate_cost(8000, 1, 32, 2, "bbels", sizes, approximate_top_k=40, indexed=True)
    assert bigger.index_build_seconds == pytest.approx(2 * indexed.index_build_seconds)


def test_approximate_with_all_images_kept_is_exact(data):
    library, noise = data
    labels, class_labels = torch.tensor([0, 1, 1]), torch.tensor([1, 0])
    exact = sample(library, noise, "bbels", [5, 5, 3, 3], labels=labels, class_labels=class_labels)
    approx = sample(
        library, noise, "bbels", [5, 5, 3, 3], labels=labels, class_labels=class_labels, approximate=True, top_k=3
    )
    torch.testing.assert_close(approx.images, exact.images, atol=1e-5, rtol=1e-5)
    assert torch.equal(approx.sources, exact.sources)
    with pytest.raises(BadInputError, match="top_k"):
        sample(library, noise, "bbels", [3], approximate=True, top_k=0)


def test_candidates_are_the_most_used_images_of_the_class_then_the_nearest():
    library = torch.stack([torch.full((1, 4, 4), v) for v in (-1.0, -0.5, 0.0, 0.5, 1.0, 0.9)])
    labels = torch.tensor([0, 0, 0, 0, 1, 0])
    sources = torch.zeros(2, 4, 4, 3, dtype=torch.long)
    sources[0, ..., 0] = 1
    sources[0, :2, :, 0] = 3
    sources[0, 0, 0, 0] = 4  # another class: never kept for a class-0 sample
    sources[1, ..., 0] = 2
    x0 = torch.full((2, 1, 4, 4), 0.95)
    chosen = choose_candidates(x0, sources, library, 3, labels, torch.tensor([0, 0]))
    # sample 0: images 1 (8 pixels) and 3 (7 pixels), then the nearest to x0 among the rest (5: 0.9)
    assert chosen[0].tolist() == [1, 3, 5]
    # sample 1: image 2, then the nearest: 5 (0.9), 3 (0.5)
    assert chosen[1].tolist() == [2, 3, 5]
    # top_k larger than the class keeps the whole class
    assert choose_candidates(x0, sources, library, 10, labels, torch.tensor([0, 0]))[0].tolist() == [0, 1, 2, 3, 5]
    # unconditional: every image is allowed
    assert choose_candidates(x0, sources, library, 2, None, None)[0].tolist() == [1, 3]


def test_approximate_keeps_few_candidates():
    gen = torch.Generator().manual_seed(8)
    library = torch.rand(12, 1, 8, 8, generator=gen) * 2 - 1
    result = sample(library, torch.randn(2, 1, 8, 8, generator=gen), "els", [5, 5, 3, 3], approximate=True, top_k=2)
    assert result.images.shape == (2, 1, 8, 8)
    assert torch.isfinite(result.images).all()


def test_default_candidate_count_is_a_share_of_the_allowed_images():
    assert default_top_k(10, 64) == 10  # small libraries: all of them
    assert default_top_k(60, 64) == 40  # at least 40
    assert default_top_k(398, 64) == 199  # half
    # at 128 px the pictures follow far fewer images (issue 17): 4 %, at least 16
    assert default_top_k(398, 128) == 16 and default_top_k(1000, 128) == 40 and default_top_k(10, 128) == 10
    assert default_top_k(398, 96) == 199 and default_top_k(398, 256) == 16
    assert exact_steps(20, 64) == 7 == exact_steps(20, 128) and exact_steps(20, 128, indexed=True) == 2
    library = torch.stack([torch.full((1, 4, 4), v / 200) for v in range(200)])
    x0 = torch.zeros(1, 1, 4, 4)
    assert len(choose_candidates(x0, None, library, None, None, None)[0]) == 100


def test_draft_method_can_be_chosen_and_is_checked():
    """Issue 17: the candidate-image draft for els/bbels on a CPU (where the index loses)."""
    gen = torch.Generator().manual_seed(9)
    library = torch.rand(12, 1, 8, 8, generator=gen) * 2 - 1
    noise = torch.randn(1, 1, 8, 8, generator=gen)
    sizes = [5, 5, 5, 3, 3, 3]
    images = sample(library, noise, "bbels", sizes, approximate=True, top_k=2, draft="images")
    late = images.step_sources[exact_steps(len(sizes), 8) :, ..., 0]
    assert 1 <= len(torch.unique(late)) <= 2  # the two candidate images only
    exact = sample(library, noise, "bbels", sizes)
    assert len(torch.unique(exact.step_sources[exact_steps(len(sizes), 8) :, ..., 0])) > 2
    if uses_index("bbels", "cpu"):
        indexed = sample(library, noise, "bbels", sizes, approximate=True, top_k=2, draft="index")
        assert len(torch.unique(indexed.step_sources[exact_steps(len(sizes), 8, True) :, ..., 0])) > 2
    with pytest.raises(BadInputError, match="patch-index draft"):
        sample(library, noise, "ls", sizes, approximate=True, draft="index")
    with pytest.raises(BadInputError, match="draft method"):
        sample(library, noise, "bbels", sizes, approximate=True, draft="sideways")
