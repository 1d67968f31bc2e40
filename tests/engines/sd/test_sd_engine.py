"""Generation with tiny pipelines: sizes, seeds, tasks, single files, cancel, threads, trajectories."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from core.engines.base import CancelToken
from core.engines.registry import get_engine, resolve
from core.engines.sd import SDRequest, StableDiffusionEngine
from core.errors import GenerationCancelled


def _req(model, **kw) -> SDRequest:
    base = dict(model=str(model), prompt="a red bicycle on a beach", steps=2, width=64, height=64, seed=7)
    base.update(kw)
    return SDRequest(**base)


def _px(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_registry_knows_sd():
    assert resolve("sd") == ("sd", {})
    assert resolve("stable-diffusion") == ("sd", {})
    assert resolve("bbels") == ("local-score", {"machine": "bbels"})
    assert isinstance(get_engine("sd"), StableDiffusionEngine)


def test_txt2img_sizes_seeds_and_batch_reproducible(engine, tiny_models):
    batch = engine.generate(_req(tiny_models.sd15, count=2, width=64, height=96))
    assert [g.image.size for g in batch] == [(64, 96), (64, 96)]
    assert [g.seed for g in batch] == [7, 8]
    assert not np.array_equal(_px(batch[0].image), _px(batch[1].image))  # different seeds differ
    alone = engine.generate(_req(tiny_models.sd15, seed=8, width=64, height=96))[0]
    assert np.array_equal(_px(alone.image), _px(batch[1].image))  # image 2 of the batch, made alone
    params = batch[1].params
    assert params["seed"] == 8 and params["steps"] == 2 and params["family"] == "sd1"
    assert params["width"] == 64 and params["height"] == 96 and params["sampler"] == "DPM++ 2M Karras"
    assert batch[0].arrays["latents"].shape == (4, 48, 32)


def test_img2img_and_inpaint_share_components(engine, tiny_models):
    start = engine.generate(_req(tiny_models.sd15))[0].image
    a = engine.generate(_req(tiny_models.sd15, task="img2img", init_image=start, strength=0.6, steps=4))
    b = engine.generate(_req(tiny_models.sd15, task="img2img", init_image=start, strength=0.6, steps=4))
    assert a[0].image.size == (64, 64)
    assert np.array_equal(_px(a[0].image), _px(b[0].image))
    assert a[0].params["strength"] == 0.6
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    inpainted = engine.generate(_req(tiny_models.sd15, task="inpaint", init_image=start.resize((80, 80)),
                                     mask_image=mask, strength=1.0, scheduler="Euler a"))[0]
    assert inpainted.image.size == (64, 64) and inpainted.params["sampler"] == "Euler a"
    loaded = engine.load(str(tiny_models.sd15))
    assert loaded.pipeline("img2img").unet is loaded.pipe.unet
    assert loaded.pipeline("inpaint").vae is loaded.pipe.vae


def test_sdxl_txt2img(engine, tiny_models):
    first = engine.generate(_req(tiny_models.sdxl, guidance=5.0))[0]
    again = engine.generate(_req(tiny_models.sdxl, guidance=5.0))[0]
    assert first.image.size == (64, 64)
    assert first.params["family"] == "sdxl"
    assert np.array_equal(_px(first.image), _px(again.image))
    start = first.image
    edited = engine.generate(_req(tiny_models.sdxl, task="img2img", init_image=start, strength=0.5, steps=4))[0]
    assert edited.image.size == (64, 64)


@pytest.mark.parametrize("kind", ["sd15", "sdxl"])
def test_single_file_gives_the_folders_images(engine, tiny_models, kind):
    folder = getattr(tiny_models, kind)
    single = getattr(tiny_models, f"{kind}_file")
    config = None if kind == "sd15" else str(tiny_models.sdxl_config)  # sd15: found next to the file
    from_folder = engine.generate(_req(folder))[0]
    from_file = engine.generate(_req(single, model_config=config))[0]
    assert from_file.params["model"] == single.stem
    assert np.array_equal(_px(from_folder.image), _px(from_file.image))


def test_progress_previews_and_trajectory(engine, tiny_models):
    seen = []
    result = engine.generate(_req(tiny_models.sd15, steps=3, return_trajectory=True), on_progress=seen.append)[0]
    steps = [p for p in seen if p.total_steps == 3]
    assert [p.step for p in steps] == [1, 2, 3]
    assert all(p.preview is not None and p.preview.mode == "RGB" for p in steps)
    assert result.arrays["x0_trajectory"].shape == (3, 4, 32, 32)
    assert result.arrays["timesteps"].shape == (3,)
    plain = engine.generate(_req(tiny_models.sd15, steps=3, scheduler="Euler", return_trajectory=True))[0]
    assert plain.arrays["x0_trajectory"].shape[0] == 3  # from the scheduler's pred_original_sample


def test_cancel_raises_and_returns_nothing(engine, tiny_models):
    token = CancelToken()

    def on_progress(progress):
        if progress.step >= 1:
            token.cancel()

    with pytest.raises(GenerationCancelled):
        engine.generate(_req(tiny_models.sd15, steps=5, count=2), on_progress=on_progress, cancel=token)
    # the model is usable again straight after
    assert len(engine.generate(_req(tiny_models.sd15))) == 1


def test_two_threads_get_the_same_images_as_alone(engine, tiny_models):
    requests = [_req(tiny_models.sd15, seed=11, steps=3), _req(tiny_models.sd15, seed=12, steps=3, scheduler="Euler a")]
    alone = [engine.generate(r)[0].image for r in requests]
    results: dict[int, Image.Image] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = engine.generate(requests[i])[0].image
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    for i in range(2):
        assert np.array_equal(_px(results[i]), _px(alone[i]))


def test_vae_for_encodes_into_the_models_latent_space(engine, tiny_models):
    codec = engine.vae_for(str(tiny_models.sd15))
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    latents = codec.encode([image, image])
    assert tuple(latents.shape) == (2, 4, 32, 32)
    assert codec.downscale == 2 and codec.latent_channels == 4
    assert codec.decode(latents[:1])[0].size == (64, 64)


def test_presets_fill_missing_settings(engine, tiny_models):
    result = engine.generate(SDRequest(model=str(tiny_models.sd15), prompt="x", preset="fast", width=64, height=64,
                                       steps=None, scheduler="DDIM"))[0]
    assert result.params["steps"] == 15 and result.params["guidance"] == 7.0


def test_on_image_gets_each_image_before_the_next_one_starts(engine, tiny_models):
    """Issue 13 item 5: each image is handed over as soon as it is made, so a caller can save it at once."""
    events: list[str] = []

    def progress(p) -> None:
        if p.step == 1:
            events.append(f"start {p.image_index}")

    batch = engine.generate(
        _req(tiny_models.sd15, count=3), on_progress=progress, on_image=lambda g: events.append(f"done {g.seed}")
    )
    assert events == ["start 0", "done 7", "start 1", "done 8", "start 2", "done 9"]
    assert [g.seed for g in batch] == [7, 8, 9]


def test_width_zero_is_refused_not_replaced(engine, tiny_models):
    from core.errors import BadInputError

    for bad in ({"width": 0, "height": None}, {"width": None, "height": -8}):
        with pytest.raises(BadInputError, match="positive number of pixels"):
            engine.generate(_req(tiny_models.sd15, **bad))
