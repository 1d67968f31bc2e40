"""Generation parameters written into (and read back from) PNG text chunks.

Every image carries two chunks: ``parameters`` in the AUTOMATIC1111 style (a prompt line, an
optional ``Negative prompt:`` line, then ``Key: value`` pairs) so other tools can read it, and
``mosaic`` with the full settings as JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

PARAMETERS_KEY = "parameters"
JSON_KEY = "mosaic"

# Order and display names of the settings shown in the A1111-style line.
_DISPLAY = [
    ("steps", "Steps"),
    ("sampler", "Sampler"),
    ("guidance", "CFG scale"),
    ("seed", "Seed"),
    ("size", "Size"),
    ("model", "Model"),
    ("engine", "Engine"),
    ("machine", "Machine"),
    ("library", "Library"),
    ("preset", "Locality preset"),
    ("label", "Class"),
]


def format_parameters(params: dict[str, Any]) -> str:
    """AUTOMATIC1111-style ``parameters`` text for ``params``."""
    lines = [str(params.get("prompt") or "")]
    if params.get("negative_prompt"):
        lines.append(f"Negative prompt: {params['negative_prompt']}")
    pairs = []
    for key, name in _DISPLAY:
        value = params.get(key)
        if key == "size" and value is None and params.get("width") and params.get("height"):
            value = f"{params['width']}x{params['height']}"
        if value is None or value == "":
            continue
        pairs.append(f"{name}: {_quote(str(value))}")
    lines.append(", ".join(pairs))
    return "\n".join(lines)


def _quote(value: str) -> str:
    if "," in value or ":" in value:
        return json.dumps(value)
    return value


_PAIR = re.compile(r'\s*([\w \-/]+):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')


def parse_parameters(text: str) -> dict[str, Any]:
    """Parse an AUTOMATIC1111-style ``parameters`` text into a dict.

    Returns ``prompt``, ``negative_prompt`` and one entry per ``Key: value`` pair, with the
    keys lower-cased and spaces replaced by underscores (``CFG scale`` → ``cfg_scale``).
    """
    lines = text.strip().split("\n")
    settings_line = lines[-1] if lines and _PAIR.match(lines[-1]) and "Steps:" in lines[-1] else ""
    body = lines[:-1] if settings_line else lines
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    target = prompt_lines
    for line in body:
        if line.startswith("Negative prompt:"):
            target = negative_lines
            line = line[len("Negative prompt:") :].strip()
        target.append(line)
    result: dict[str, Any] = {
        "prompt": "\n".join(prompt_lines).strip(),
        "negative_prompt": "\n".join(negative_lines).strip(),
    }
    for match in _PAIR.finditer(settings_line):
        key = match.group(1).strip().lower().replace(" ", "_")
        value = match.group(2).strip()
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = value.strip('"')
        result[key] = value
    return result


def png_text(params: dict[str, Any]) -> dict[str, str]:
    """The text chunks to embed for ``params``."""
    return {PARAMETERS_KEY: format_parameters(params), JSON_KEY: json.dumps(params, sort_keys=True)}
