"""Clear messages for everything that can go wrong before or while loading a model."""

from __future__ import annotations

import pytest

from core.engines.sd import SDRequest, StableDiffusionEngine, resolve_source
from core.errors import BadInputError


def _gen(engine: StableDiffusionEngine, model, **kw):
    base = dict(model=str(model), prompt="a cat", steps=2, width=64, height=64)
    base.update(kw)
    return engine.generate(SDRequest(**base))


def test_missing_folder(engine, tmp_path):
    with pytest.raises(BadInputError, match="was not found"):
        _gen(engine, tmp_path / "nope" / "model")


def test_folder_that_is_not_a_pipeline(engine, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.txt").write_text("hi")
    with pytest.raises(BadInputError, match="no model_index.json"):
        _gen(engine, folder)


def test_unknown_hub_id_offline(engine, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(BadInputError, match="offline") as err:
        _gen(engine, "someone/not-a-real-model")
    # the command is for whoever sets the studio up: in the detail, not in the user's message
    assert "huggingface-cli download someone/not-a-real-model" in err.value.detail
    assert "huggingface-cli" not in str(err.value)


def test_truncated_safetensors(engine, tiny_models, tmp_path):
    data = tiny_models.sd15_file.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError, match="incomplete"):
        _gen(engine, cut, model_config=str(tiny_models.sd15_config))
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01not a model")
    with pytest.raises(BadInputError, match="damaged or incomplete"):
        _gen(engine, garbage)


def test_truncated_weights_in_a_folder(engine, tiny_models, tmp_path):
    import shutil

    folder = shutil.copytree(tiny_models.sd15, tmp_path / "broken")
    weights = next((folder / "unet").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(BadInputError, match="incomplete"):
        _gen(engine, folder)


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin"])
def test_pickle_files_are_refused(engine, tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"PK\x03\x04 pretend pickle")
    with pytest.raises(BadInputError, match="pickle") as err:
        _gen(engine, path)
    assert ".safetensors" in str(err.value)


def test_single_file_without_config_offline(engine, tiny_models, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    lonely = shutil.copy(tiny_models.sd15_file, tmp_path / "lonely.safetensors")
    with pytest.raises(BadInputError, match="config") as err:
        _gen(engine, lonely)
    assert "offline" in str(err.value) and "lonely" in str(err.value)


def test_invalid_sizes(engine, tiny_models):
    with pytest.raises(BadInputError, match="multiple of 8"):
        _gen(engine, tiny_models.sd15, width=100)
    with pytest.raises(BadInputError, match="outside"):
        _gen(engine, tiny_models.sd15, height=4096)


def test_bad_settings(engine, tiny_models):
    with pytest.raises(BadInputError, match="starting image"):
        _gen(engine, tiny_models.sd15, task="img2img")
    with pytest.raises(BadInputError, match="Unknown sampler"):
        _gen(engine, tiny_models.sd15, scheduler="Warp drive")
    with pytest.raises(BadInputError, match="no denoising step"):
        from PIL import Image

        _gen(engine, tiny_models.sd15, task="img2img", init_image=Image.new("RGB", (64, 64)), strength=0.1)


def test_too_long_prompt_warns(engine, tiny_models, caplog):
    prompt = " ".join(["the"] * 80) + " ending words"  # "the" is one token of the tiny vocabulary
    with caplog.at_level("WARNING"):
        result = _gen(engine, tiny_models.sd15, prompt=prompt)[0]
    notices = result.params["notices"]
    assert len(notices) == 1 and "91 tokens long" in notices[0] and "only the first 75" in notices[0]
    assert "ending words" in notices[0]
    assert "was ignored" in notices[0]
    assert any("only the first 75" in r.getMessage() for r in caplog.records)
    short = _gen(engine, tiny_models.sd15, prompt="a short prompt")[0]
    assert short.params["notices"] == []


def test_resolve_source_kinds(tiny_models):
    assert resolve_source(str(tiny_models.sd15)).kind == "folder"
    single = resolve_source(str(tiny_models.sd15_file))
    assert single.kind == "single_file" and single.config == str(tiny_models.sd15_config.resolve())
    assert resolve_source("stabilityai/sdxl-turbo").kind == "hub"


@pytest.mark.parametrize(
    "index",
    [
        "[1, 2, 3]",
        '"StableDiffusionPipeline"',
        '{"_class_name": ["StableDiffusionPipeline"], "unet": ["diffusers", "UNet2DConditionModel"]}',
        '{"_class_name": "StableDiffusionPipeline", "unet": [["diffusers"], "UNet2DConditionModel"]}',
        "{not json",
    ],
)
def test_model_index_of_the_wrong_shape_is_a_clear_error(engine, tmp_path, index):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model_index.json").write_text(index)
    with pytest.raises(BadInputError, match="model"):
        _gen(engine, str(folder))


@pytest.mark.parametrize("header", [b"[1, 2, 3]", b"42", b'"text"', b'{"w": [1, 2]}', b"\xff\xfe"])
def test_safetensors_header_that_is_not_a_table_of_weights_is_a_clear_error(engine, tmp_path, header):
    import struct

    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 32)
    with pytest.raises(BadInputError, match="not a valid .safetensors"):
        _gen(engine, str(path))


def test_safetensors_header_longer_than_the_file_is_a_clear_error(engine, tmp_path):
    import struct

    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    with pytest.raises(BadInputError, match="not a valid .safetensors"):
        _gen(engine, str(path))
