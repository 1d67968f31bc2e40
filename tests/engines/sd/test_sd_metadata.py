"""Settings written into PNGs and read back: this studio, AUTOMATIC1111 and ComfyUI."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from core.engines.sd import SDRequest, read_settings
from core.errors import BadInputError
from core.images import save_png
from core.metadata import parse_parameters, png_text


def _png(text: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    save_png(Image.new("RGB", (8, 8)), buffer, text)
    return buffer.getvalue()


def test_studio_png_round_trip(engine, tiny_models):
    result = engine.generate(SDRequest(model=str(tiny_models.sd15), prompt="a lamp, studio light",
                                       negative_prompt="blurry", steps=2, width=64, height=64, seed=42))[0]
    data = _png(png_text(result.params))
    settings = read_settings(data)
    assert settings["source"] == "mosaic"
    assert settings["prompt"] == "a lamp, studio light" and settings["negative_prompt"] == "blurry"
    assert (settings["seed"], settings["steps"], settings["width"], settings["height"]) == (42, 2, 64, 64)
    assert settings["guidance"] == 7.0 and settings["sampler"] == "DPM++ 2M Karras"
    assert settings["model"] == "tiny-sd15" and settings["extra"]["task"] == "txt2img"
    a1111 = parse_parameters(png_text(result.params)["parameters"])
    assert a1111["seed"] == "42" and a1111["sampler"] == "DPM++ 2M Karras" and a1111["size"] == "64x64"


def test_a1111_parameters():
    text = (
        "masterpiece, a castle on a hill, (sunset:1.2)\n"
        "Negative prompt: lowres, bad anatomy\n"
        "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 1234567, Size: 832x1216, "
        "Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Version: v1.9.4"
    )
    settings = read_settings(_png({"parameters": text}))
    assert settings == {
        "prompt": "masterpiece, a castle on a hill, (sunset:1.2)", "negative_prompt": "lowres, bad anatomy",
        "seed": 1234567, "steps": 28, "guidance": 6.5, "width": 832, "height": 1216,
        "sampler": "DPM++ 2M Karras", "model": "sd_xl_base_1.0", "source": "a1111",
    }


COMFY_PROMPT = {
    "3": {"class_type": "KSampler", "inputs": {
        "seed": 156680208700286, "steps": 20, "cfg": 8.0, "sampler_name": "euler", "scheduler": "normal",
        "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 768, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "beautiful scenery, glass bottle", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
}

COMFY_WORKFLOW = {
    "nodes": [
        {"id": 3, "type": "KSampler", "widgets_values": [99, "fixed", 12, 4.5, "dpmpp_2m", "karras", 1],
         "inputs": [{"name": "positive", "link": 4}, {"name": "negative", "link": 6},
                    {"name": "latent_image", "link": 2}]},
        {"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["sdxl.safetensors"]},
        {"id": 5, "type": "EmptyLatentImage", "widgets_values": [1024, 1024, 1]},
        {"id": 6, "type": "CLIPTextEncode", "widgets_values": ["a fox in snow"]},
        {"id": 7, "type": "CLIPTextEncode", "widgets_values": ["ugly"]},
    ],
    "links": [[2, 5, 0, 3, 3, "LATENT"], [4, 6, 0, 3, 1, "CONDITIONING"], [6, 7, 0, 3, 2, "CONDITIONING"]],
}


def test_comfyui_prompt_chunk():
    settings = read_settings(_png({"prompt": json.dumps(COMFY_PROMPT), "workflow": "{}"}))
    assert settings["source"] == "comfyui"
    assert settings["prompt"] == "beautiful scenery, glass bottle" and settings["negative_prompt"] == "text, watermark"
    assert (settings["seed"], settings["steps"], settings["guidance"]) == (156680208700286, 20, 8.0)
    assert (settings["width"], settings["height"], settings["sampler"]) == (512, 768, "Euler")
    assert settings["model"] == "v1-5-pruned-emaonly.safetensors"


def test_comfyui_workflow_chunk_only():
    settings = read_settings(_png({"workflow": json.dumps(COMFY_WORKFLOW)}))
    assert settings["prompt"] == "a fox in snow" and settings["negative_prompt"] == "ugly"
    assert (settings["seed"], settings["steps"], settings["guidance"]) == (99, 12, 4.5)
    assert settings["sampler"] == "DPM++ 2M Karras" and (settings["width"], settings["height"]) == (1024, 1024)
    assert settings["model"] == "sdxl.safetensors"


def test_png_without_settings():
    with pytest.raises(BadInputError, match="no generation settings"):
        read_settings(_png({"Software": "GIMP"}))
    with pytest.raises(BadInputError):
        read_settings(b"not a png")
