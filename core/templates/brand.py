"""The brand kit: palette, words to always use or avoid and a default reference library.

One kit per workspace, stored as YAML in ``config.data_dir()/brand_kits/<workspace>.yaml``. It is
applied to every template: palette words and must-use words are appended to the prompt, avoid-words
to the negative prompt; its library is the default for the local score engine (and the analyzer).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core import config
from core.config import DEFAULT_WORKSPACE
from core.errors import BadInputError
from core.templates.schema import TemplateError, TemplateField, colour_words, join_phrases

logger = logging.getLogger(__name__)

_KEYS = {"name", "palette", "must_use", "avoid", "library"}
_MAX_WORDS = 40


@dataclass
class BrandKit:
    """A workspace's brand rules. ``palette`` holds colour names or ``#RRGGBB`` codes."""

    name: str = ""
    palette: list[str] = field(default_factory=list)
    must_use: list[str] = field(default_factory=list)
    avoid: list[str] = field(default_factory=list)
    library: str | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.palette or self.must_use or self.avoid or self.library)

    def palette_words(self) -> str:
        """``"colour palette: navy, coral"`` (hex codes named), or empty."""
        words = []
        for colour in self.palette:
            word = colour_words(colour)
            if word not in words:
                words.append(word)
        return f"colour palette: {', '.join(words)}" if words else ""

    def apply(self, prompt: str, negative_prompt: str) -> tuple[str, str]:
        """The prompt with palette and must-use words appended; avoid-words added to the negative."""
        prompt = join_phrases(
            prompt, self.palette_words(), *[w for w in self.must_use if w.lower() not in prompt.lower()]
        )
        negative = join_phrases(negative_prompt, *[w for w in self.avoid if w.lower() not in negative_prompt.lower()])
        return prompt, negative

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "palette": list(self.palette),
            "must_use": list(self.must_use),
            "avoid": list(self.avoid),
            "library": self.library,
        }

    @classmethod
    def from_dict(cls, data: Any, file: str = "brand kit") -> BrandKit:
        """Validate a mapping (from YAML, JSON or a form). Errors name ``file`` and the field."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise TemplateError(file, "", "the file must be a mapping (key: value lines)")
        for key in data:
            if key not in _KEYS:
                raise TemplateError(file, str(key), f"is not a brand kit setting. Known: {', '.join(sorted(_KEYS))}")
        name = data.get("name") or ""
        if not isinstance(name, str) or len(name) > 80:
            raise TemplateError(file, "name", "must be text of at most 80 characters")
        colour = TemplateField(key="palette", label="palette", type="color")
        palette = []
        for i, value in enumerate(_list(data.get("palette"), file, "palette")):
            try:
                palette.append(colour.coerce(value, "a colour"))
            except BadInputError as err:
                raise TemplateError(file, f"palette[{i}]", str(err)) from None
        library = data.get("library")
        if library is not None and (not isinstance(library, str) or not library.strip()):
            raise TemplateError(file, "library", "must be a library name or left out")
        return cls(
            name=name.strip(),
            palette=[p for p in palette if p],
            must_use=_words(data.get("must_use"), file, "must_use"),
            avoid=_words(data.get("avoid"), file, "avoid"),
            library=library.strip() if isinstance(library, str) else None,
        )


def _list(value: Any, file: str, path: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [part for part in value.split(",")]
    if not isinstance(value, list):
        raise TemplateError(file, path, "must be a list (or comma-separated text)")
    if len(value) > _MAX_WORDS:
        raise TemplateError(file, path, f"has {len(value)} entries; at most {_MAX_WORDS}")
    return value


def _words(value: Any, file: str, path: str) -> list[str]:
    words = []
    for i, item in enumerate(_list(value, file, path)):
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            raise TemplateError(file, f"{path}[{i}]", "must be a word or short phrase")
        text = re.sub(r"\s+", " ", str(item)).strip()
        if len(text) > 80:
            raise TemplateError(file, f"{path}[{i}]", "is too long (at most 80 characters)")
        if text and text not in words:
            words.append(text)
    return words


def brand_kits_dir() -> Path:
    path = config.data_dir() / "brand_kits"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _path(workspace: str) -> Path:
    config.check_workspace_name(workspace)
    return brand_kits_dir() / f"{workspace}.yaml"


def load_brand_kit(workspace: str = DEFAULT_WORKSPACE) -> BrandKit:
    """The workspace's brand kit (an empty kit if none was saved)."""
    path = _path(workspace)
    if not path.is_file():
        return BrandKit()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise TemplateError(str(path), "", f"not valid YAML: {err}") from None
    return BrandKit.from_dict(data, file=str(path))


def save_brand_kit(kit: BrandKit | dict[str, Any], workspace: str = DEFAULT_WORKSPACE) -> BrandKit:
    """Validate and store the workspace's brand kit (atomically). Returns it as stored."""
    path = _path(workspace)
    checked = BrandKit.from_dict(kit.to_dict() if isinstance(kit, BrandKit) else kit, file=path.name)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(checked.to_dict(), handle, sort_keys=False, allow_unicode=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    logger.info("saved brand kit %s", path)
    return checked
