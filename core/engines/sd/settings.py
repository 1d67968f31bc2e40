"""Generation settings in and out of PNGs: this studio's JSON, AUTOMATIC1111 and ComfyUI."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from core.errors import BadInputError
from core.images import read_png_text
from core.metadata import JSON_KEY, PARAMETERS_KEY, parse_parameters

logger = logging.getLogger(__name__)

#: the normalised keys :func:`read_settings` returns (missing ones are None)
SETTING_KEYS = ("prompt", "negative_prompt", "seed", "steps", "guidance", "width", "height", "sampler", "model")


def read_settings(png: bytes | Path | str) -> dict[str, Any]:
    """Settings of a PNG made by this studio, AUTOMATIC1111 or ComfyUI, under :data:`SETTING_KEYS`.

    Also returns ``source`` (``"mosaic"``, ``"a1111"`` or ``"comfyui"``) and, for this studio's
    images, ``extra`` with every other saved setting. Raises ``BadInputError`` when the PNG holds
    no generation settings.
    """
    chunks = read_png_text(png)
    if JSON_KEY in chunks:
        try:
            return _from_mosaic(json.loads(chunks[JSON_KEY]))
        except (ValueError, TypeError):
            logger.info("unreadable %s chunk; trying the others", JSON_KEY)
    if PARAMETERS_KEY in chunks:
        return _from_a1111(chunks[PARAMETERS_KEY])
    for key in ("prompt", "workflow"):
        if key in chunks:
            try:
                data = json.loads(chunks[key])
            except ValueError:
                continue
            found = _from_comfy_api(data) if key == "prompt" else _from_comfy_workflow(data)
            if found is not None:
                return found
    raise BadInputError("This PNG has no generation settings (it was not made by this studio, "
                        "AUTOMATIC1111 or ComfyUI, or its metadata was removed).")


def _normalise(values: dict[str, Any], source: str) -> dict[str, Any]:
    out: dict[str, Any] = {key: values.get(key) for key in SETTING_KEYS}
    for key in ("seed", "steps", "width", "height"):
        out[key] = _number(out[key], int)
    out["guidance"] = _number(out["guidance"], float)
    for key in ("prompt", "negative_prompt"):
        out[key] = "" if out[key] is None else str(out[key])
    out["source"] = source
    return out


def _number(value: Any, kind: type) -> Any:
    if value is None or value == "":
        return None
    try:
        return kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        return None


def _from_mosaic(params: dict[str, Any]) -> dict[str, Any]:
    values = dict(params)
    values.setdefault("sampler", params.get("scheduler"))
    out = _normalise(values, "mosaic")
    out["extra"] = {k: v for k, v in params.items() if k not in SETTING_KEYS}
    return out


def _from_a1111(text: str) -> dict[str, Any]:
    parsed = parse_parameters(text)
    values: dict[str, Any] = {
        "prompt": parsed.get("prompt"), "negative_prompt": parsed.get("negative_prompt"),
        "seed": parsed.get("seed"), "steps": parsed.get("steps"), "guidance": parsed.get("cfg_scale"),
        "sampler": parsed.get("sampler"), "model": parsed.get("model") or parsed.get("model_hash"),
    }
    size = str(parsed.get("size") or "")
    if "x" in size:
        values["width"], values["height"] = size.split("x", 1)
    if parsed.get("schedule_type") and values["sampler"] and parsed["schedule_type"].lower() != "automatic":
        values["sampler"] = f"{values['sampler']} {parsed['schedule_type']}"
    return _normalise(values, "a1111")


_SAMPLER_NODES = ("KSampler", "KSamplerAdvanced", "SamplerCustom")
_TEXT_NODES = ("CLIPTextEncode", "CLIPTextEncodeSDXL", "CLIPTextEncodeSDXLRefiner")


def _comfy_sampler(name: str | None, scheduler: str | None) -> str | None:
    if not name:
        return None
    names = {"euler": "Euler", "euler_ancestral": "Euler a", "dpmpp_2m": "DPM++ 2M", "ddim": "DDIM",
             "dpmpp_2m_sde": "DPM++ 2M SDE", "heun": "Heun", "lms": "LMS", "uni_pc": "UniPC"}
    label = names.get(str(name), str(name))
    return f"{label} Karras" if scheduler == "karras" else label


def _from_comfy_api(graph: Any) -> dict[str, Any] | None:
    """ComfyUI's ``prompt`` chunk: ``{node_id: {"class_type": ..., "inputs": {...}}}``."""
    if not isinstance(graph, dict):
        return None
    nodes = {str(k): v for k, v in graph.items() if isinstance(v, dict) and "class_type" in v}
    sampler = next((n for n in nodes.values() if n["class_type"] in _SAMPLER_NODES), None)
    if sampler is None:
        return None
    inputs = sampler.get("inputs", {})

    def linked(value: Any) -> dict[str, Any] | None:
        if isinstance(value, list) and value:
            return nodes.get(str(value[0]))
        return None

    def text_of(value: Any) -> str:
        node = linked(value)
        for _ in range(8):  # follow pass-through nodes (e.g. conditioning combiners) a few hops
            if node is None:
                return ""
            node_inputs = node.get("inputs", {})
            if node["class_type"] in _TEXT_NODES:
                text = node_inputs.get("text", node_inputs.get("text_g", ""))
                return text if isinstance(text, str) else text_of(text)
            nxt = next((v for v in node_inputs.values() if isinstance(v, list)), None)
            node = linked(nxt)
        return ""

    values: dict[str, Any] = {
        "seed": inputs.get("seed", inputs.get("noise_seed")), "steps": inputs.get("steps"),
        "guidance": inputs.get("cfg"), "sampler": _comfy_sampler(inputs.get("sampler_name"), inputs.get("scheduler")),
        "prompt": text_of(inputs.get("positive")), "negative_prompt": text_of(inputs.get("negative")),
    }
    latent = linked(inputs.get("latent_image"))
    if latent is not None:
        values["width"] = latent.get("inputs", {}).get("width")
        values["height"] = latent.get("inputs", {}).get("height")
    loader = next((n for n in nodes.values() if "ckpt_name" in n.get("inputs", {})), None)
    if loader is not None:
        values["model"] = loader["inputs"]["ckpt_name"]
    return _normalise(values, "comfyui")


def _from_comfy_workflow(workflow: Any) -> dict[str, Any] | None:
    """ComfyUI's ``workflow`` chunk (the editor graph: nodes with ``widgets_values`` and links)."""
    if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
        return None
    nodes = {n.get("id"): n for n in workflow["nodes"] if isinstance(n, dict)}
    links = {link[0]: link[1] for link in workflow.get("links", []) if isinstance(link, list) and len(link) >= 2}
    sampler = next((n for n in nodes.values() if n.get("type") in ("KSampler", "KSamplerAdvanced")), None)
    if sampler is None:
        return None

    def source_of(node: dict[str, Any], name: str) -> dict[str, Any] | None:
        for item in node.get("inputs", []) or []:
            if isinstance(item, dict) and item.get("name") == name and item.get("link") is not None:
                return nodes.get(links.get(item["link"]))
        return None

    def text_of(name: str) -> str:
        node = source_of(sampler, name)
        if node is not None and node.get("type") in _TEXT_NODES and node.get("widgets_values"):
            return str(node["widgets_values"][0])
        return ""

    widgets = list(sampler.get("widgets_values") or [])
    if sampler.get("type") == "KSamplerAdvanced":  # add_noise, seed, control, steps, cfg, sampler, scheduler, ...
        widgets = widgets[1:]
    get = (lambda i: widgets[i] if len(widgets) > i else None)  # noqa: E731
    values: dict[str, Any] = {
        "seed": get(0), "steps": get(2), "guidance": get(3), "sampler": _comfy_sampler(get(4), get(5)),
        "prompt": text_of("positive"), "negative_prompt": text_of("negative"),
    }
    latent = source_of(sampler, "latent_image")
    if latent is not None and latent.get("widgets_values"):
        values["width"], values["height"] = latent["widgets_values"][:2]
    loader = next((n for n in nodes.values() if str(n.get("type", "")).startswith("CheckpointLoader")), None)
    if loader is not None and loader.get("widgets_values"):
        values["model"] = loader["widgets_values"][0]
    return _normalise(values, "comfyui")
