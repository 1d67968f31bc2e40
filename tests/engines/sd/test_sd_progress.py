"""Loading a model shows real progress: each part of the pipeline as it loads (share of the weights' bytes),
then the generation steps; a model that is not on this computer is explained in plain words, with the
commands for whoever sets up the studio kept in the error's detail."""

from __future__ import annotations

import shutil

import pytest
import torch

from core.engines.base import Progress
from core.engines.sd import PipelineCache, SDRequest, StableDiffusionEngine
from core.engines.sd.loader import PART_WORDS
from core.errors import BadInputError


def _events(engine: StableDiffusionEngine, model, **kw) -> list[Progress]:
    events: list[Progress] = []
    base = dict(model=str(model), prompt="a cat", steps=2, width=64, height=64)
    base.update(kw)
    engine.generate(SDRequest(**base), on_progress=events.append)
    return events


@pytest.mark.parametrize("which", ["sd15", "sdxl"])
def test_loading_reports_each_part_then_the_steps(tiny_models, which):
    folder = getattr(tiny_models, which)
    engine = StableDiffusionEngine(cache=PipelineCache(max_loaded=1))  # a fresh cache: the model really loads
    events = _events(engine, folder)
    loading = [e for e in events if e.message.startswith("Loading the model")]
    steps = [e for e in events if e.message.startswith("Image 1 of 1")]
    assert events.index(loading[-1]) < events.index(steps[0])  # all of the loading comes first
    parts = [e for e in loading if "part " in e.message and "of" in e.message and "(" in e.message]
    names = sorted(p for p in (folder / "model_index.json").read_text().split('"') if p in PART_WORDS)
    expected = {n for n in names if (folder / n).is_dir()}
    assert len(parts) == len(expected)  # one report per part of the pipeline
    for number, event in enumerate(parts, start=1):
        assert f"part {number} of {len(expected)}" in event.message
    words = {PART_WORDS[n] for n in expected}
    assert {e.message.split("(")[1].rstrip(")…") for e in parts} == words
    fractions = [e.fraction for e in loading]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0  # the bar only moves forward, to full
    assert any(0.0 < f < 1.0 for f in fractions)  # and in between, by the bytes of the parts loaded
    assert "image generator" in parts[-1].message  # the biggest part last: the bar does not sit at 100 %
    assert [e.step for e in steps] == [1, 2]
    # a loaded model is not loaded again: no loading reports the second time
    assert not [e for e in _events(engine, folder) if e.message.startswith("Loading")]


def test_parts_loaded_one_by_one_are_the_model_diffusers_loads(tiny_models):
    """Loading part by part gives the same weights and settings as diffusers' own loading."""
    from diffusers import AutoPipelineForText2Image

    engine = StableDiffusionEngine(cache=PipelineCache(max_loaded=1))
    ours = engine.load(str(tiny_models.sd15), device="cpu").pipe
    theirs = AutoPipelineForText2Image.from_pretrained(str(tiny_models.sd15), use_safetensors=True,
                                                       local_files_only=True)
    assert type(ours) is type(theirs)
    for name in ("unet", "vae", "text_encoder"):
        a, b = getattr(ours, name).state_dict(), getattr(theirs, name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert dict(ours.scheduler.config) == dict(theirs.scheduler.config)
    assert ours.tokenizer("a red kettle")["input_ids"] == theirs.tokenizer("a red kettle")["input_ids"]


def test_a_damaged_part_names_the_model_and_keeps_the_technical_reason_apart(tiny_models, tmp_path):
    folder = shutil.copytree(tiny_models.sd15, tmp_path / "broken-config")
    (folder / "vae" / "config.json").write_text("{ not json")
    engine = StableDiffusionEngine(cache=PipelineCache(max_loaded=1))
    with pytest.raises(BadInputError) as err:
        _events(engine, folder)
    assert "broken-config" in str(err.value) and "Traceback" not in str(err.value)
    assert err.value.detail  # what went wrong, for whoever sets up the studio


def test_a_model_not_here_is_explained_in_plain_words_with_the_commands_in_the_detail(engine, tmp_path,
                                                                                        monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    for model, name in (("stabilityai/sd-turbo", "SD Turbo"), ("someone/not-a-real-model", "someone/not-a-real")):
        with pytest.raises(BadInputError) as err:
            _events(engine, model)
        message, detail = str(err.value), err.value.detail or ""
        assert message.startswith(name) and "isn't on this computer yet" in message
        assert "Ask whoever sets up the studio to download it, or pick one of the models already here." in message
        for term in ("HF_HUB_OFFLINE", "huggingface-cli", "model_index.json", str(tmp_path)):
            assert term not in message
        assert "HF_HUB_OFFLINE" in detail and f"huggingface-cli download {model}" in detail


def test_loading_progress_is_carried_by_the_job(tiny_models, isolated_data_dir):
    """A generation job's progress shows the loading (message and a moving fraction) before the steps."""
    from core.jobs import JobQueue
    from core.jobs.context import JobContext
    from core.jobs.requests import encode_request

    shutil.copytree(tiny_models.sd15, isolated_data_dir / "models" / "tiny-sd15")
    queue = JobQueue()
    request = SDRequest(model="tiny-sd15", prompt="a cat", steps=2, width=64, height=64)
    job = queue.submit("generate", encode_request("sd", request), owner="ann", title="1 image")
    job = queue.claim_id(job.id, "test-worker")  # running, as a worker would have it
    context = JobContext(queue, job)
    seen: list[tuple[float, str]] = []
    original = context.progress

    def progress(fraction, message="", preview=None):
        original(fraction, message, preview)
        context.flush()  # what the worker's heartbeat writes, every time
        record = queue.get(job.id)
        seen.append((record.progress, record.message))

    context.progress = progress
    engine = StableDiffusionEngine(cache=PipelineCache(max_loaded=1))
    engine.generate(request, on_progress=context.engine_progress)
    loading = [(f, m) for f, m in seen if m.startswith("Loading the model")]
    assert len(loading) >= 4 and any(0.0 < f < 1.0 for f, _ in loading) and loading[-1][0] == 1.0
    assert seen[-1] == (1.0, "Image 1 of 1: step 2 of 2")
