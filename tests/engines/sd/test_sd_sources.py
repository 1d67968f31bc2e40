"""Model listing (models folder, HF cache, curated list), hub file selection, devices and memory."""

from __future__ import annotations

import shutil

import pytest

from core.engines.sd import CURATED, list_models, models_dir, plan_memory, select_device
from core.engines.sd.hub import select_files
from core.engines.sd.sources import cached_pipelines
from core.errors import BadInputError


def test_models_folder_and_hf_cache_are_listed(tiny_models, tmp_path, monkeypatch):
    shutil.copytree(tiny_models.sd15, models_dir() / "my-sd15")
    shutil.copy(tiny_models.sd15_file, models_dir() / "merged.safetensors")
    (models_dir() / "old.ckpt").write_bytes(b"x")
    cache = tmp_path / "hub"
    snapshot = cache / "models--acme--tiny-xl" / "snapshots" / "0123abcd"
    shutil.copytree(tiny_models.sdxl_config, snapshot)
    (cache / "models--acme--tiny-xl" / "refs").mkdir()
    (cache / "models--acme--tiny-xl" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert cached_pipelines() == {"acme/tiny-xl": snapshot}
    entries = {e.id: e for e in list_models()}
    assert entries["my-sd15"].kind == "folder" and entries["my-sd15"].available
    assert entries["merged.safetensors"].kind == "single_file"
    assert "old.ckpt" not in entries
    assert entries["acme/tiny-xl"].family == "sdxl" and entries["acme/tiny-xl"].available
    turbo = entries["stabilityai/sdxl-turbo"]
    assert not turbo.available and turbo.recommended["guidance"] == 0.0 and turbo.recommended["steps"] <= 4
    assert len(CURATED) == 5


def test_models_folder_names_resolve(engine, tiny_models):
    shutil.copytree(tiny_models.sd15, models_dir() / "by-name")
    from core.engines.sd import SDRequest

    result = engine.generate(SDRequest(model="by-name", prompt="x", steps=1, width=64, height=64))[0]
    assert result.params["model"] == "by-name"


def test_hub_file_selection():
    files = [
        "model_index.json", "v1-5-pruned.safetensors", "v1-5-pruned.ckpt", "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.bin", "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors", "text_encoder/flax_model.msgpack", "tokenizer/vocab.json",
        "tokenizer/merges.txt", "scheduler/scheduler_config.json", "safety_checker/pytorch_model.bin",
    ]
    chosen = select_files(files)
    assert "unet/diffusion_pytorch_model.safetensors" in chosen and "tokenizer/merges.txt" in chosen
    assert not any(f.endswith((".ckpt", ".bin", ".msgpack")) or "fp16" in f for f in chosen)
    assert "v1-5-pruned.safetensors" not in chosen
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in select_files(files, variant="fp16")
    with pytest.raises(BadInputError, match="pickle"):
        select_files(["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.bin"])


def test_device_and_memory_plans():
    assert select_device("auto") in ("cpu", "cuda", "mps")
    assert select_device("cpu") == "cpu"
    with pytest.raises(BadInputError):
        select_device("tpu")
    assert plan_memory("auto", "cpu", "sd1", 512, 512).describe() == "none"
    roomy = plan_memory("auto", "cuda", "sdxl", 1024, 1024, free_bytes=40 * 2**30)
    tight = plan_memory("auto", "cuda", "sdxl", 1024, 1024, free_bytes=12 * 2**30)
    tiny = plan_memory("auto", "cuda", "sdxl", 1024, 1024, free_bytes=3 * 2**30)
    assert not roomy.attention_slicing and tight.vae_tiling and not tight.cpu_offload and tiny.cpu_offload
    assert plan_memory("low", "cuda", "sd1", 512, 512).cpu_offload
