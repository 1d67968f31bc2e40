"""Campaign templates as data: the schema, its validation and prompt rendering.

A template is a YAML mapping (see ``assets/templates/*.yaml``)::

    name: Marketing variations
    purpose: One concept in several visual styles.
    fields:                       # what the user fills in
      - {key: product, label: Product, type: text, required: true, help: What is advertised}
    prompt: "{product}, {style}"  # {field} placeholders, plus {style}, {channel}, {aspect}
    negative_prompt: "blurry"     # [[ ... ]] marks a part dropped when a placeholder in it is empty
    channels: [square, feed]      # keys of core.templates.formats.CHANNELS
    variations:
      styles: [{name: Minimal, prompt: "minimalist studio shot"}]
      seeds: 2                    # images per channel × style × guidance
      guidance: [6.5, 8.0]        # guidance sweep (Stable Diffusion only)
    engine_hints:
      sd: {steps: 30, family: sd1}
      local_score: {library: photos, presets: [fine, coarse], size: 32}

Every problem raises :class:`TemplateError`, whose message names the file and the field
(``fields[1].type``) and says what is expected.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import BadInputError
from core.templates.formats import CHANNELS, FAMILY_BASE, LOCAL_SCORE_SIZES

logger = logging.getLogger(__name__)

FIELD_TYPES = ("text", "longtext", "choice", "number", "color", "colors")
#: placeholders every prompt pattern may use besides the template's own fields
BUILTIN_PLACEHOLDERS = ("style", "channel", "aspect")
MAX_SEEDS = 16
MAX_VARIATIONS = 96
MAX_TEXT = 2000
KEY_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,39}")
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_OPTIONAL = re.compile(r"\[\[(.*?)\]\]", re.S)
_HEX = re.compile(r"#?[0-9a-fA-F]{6}")

_TOP_KEYS = {
    "name",
    "purpose",
    "fields",
    "prompt",
    "negative_prompt",
    "channels",
    "variations",
    "engine_hints",
    "version",
    "tags",
}
_FIELD_KEYS = {"key", "label", "type", "required", "default", "help", "choices", "min", "max"}
_STYLE_KEYS = {"name", "prompt", "negative_prompt"}
_VARIATION_KEYS = {"styles", "seeds", "guidance"}
_SD_HINTS = {"steps": int, "scheduler": str, "family": str, "model": str, "preset": str, "task": str}
_LOCAL_HINTS = {"library": str, "label": str, "presets": list, "machine": str, "size": int, "steps": int}


class TemplateError(BadInputError):
    """A template that cannot be used. ``file`` and ``field`` say where the problem is."""

    def __init__(self, file: str, field_path: str, problem: str) -> None:
        self.file = file
        self.field = field_path
        self.problem = problem
        where = f", field '{field_path}'" if field_path else ""
        super().__init__(f"Template {file}{where}: {problem}")


@dataclass
class TemplateField:
    """One value the user fills in."""

    key: str
    label: str
    type: str = "text"
    required: bool = False
    default: Any = None
    help: str = ""
    choices: list[str] = field(default_factory=list)
    min: float | None = None
    max: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key, "label": self.label, "type": self.type}
        if self.required:
            data["required"] = True
        if self.default not in (None, "", []):
            data["default"] = self.default
        if self.help:
            data["help"] = self.help
        if self.choices:
            data["choices"] = list(self.choices)
        if self.min is not None:
            data["min"] = self.min
        if self.max is not None:
            data["max"] = self.max
        return data

    def coerce(self, value: Any, where: str = "") -> Any:
        """``value`` (from a form or the command line) as this field's type; raises BadInputError."""
        label = where or f"'{self.label}'"
        if value is None or (isinstance(value, str) and not value.strip()) or value == []:
            return None
        if self.type in ("text", "longtext"):
            text = str(value).strip()
            if len(text) > MAX_TEXT:
                raise BadInputError(f"{label} is too long ({len(text)} characters; at most {MAX_TEXT}).")
            return text
        if self.type == "choice":
            text = str(value).strip()
            if text not in self.choices:
                raise BadInputError(f"{label} must be one of: {', '.join(self.choices)} (got {text!r}).")
            return text
        if self.type == "number":
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise BadInputError(f"{label} must be a number (got {value!r}).") from None
            if self.min is not None and number < self.min or self.max is not None and number > self.max:
                raise BadInputError(f"{label} must be between {self.min} and {self.max} (got {number:g}).")
            return int(number) if number.is_integer() else number
        if self.type == "color":
            return _colour(value, label)
        if self.type == "colors":
            items = value.split(",") if isinstance(value, str) else list(value)
            colours = [_colour(item, label) for item in items if str(item).strip()]
            return colours or None
        raise BadInputError(f"{label} has an unknown type {self.type!r}.")  # pragma: no cover - validated

    def as_text(self, value: Any) -> str:
        """How a (coerced) value reads inside a prompt."""
        if value is None:
            return ""
        if isinstance(value, list):
            return ", ".join(colour_words(v) if self.type == "colors" else str(v) for v in value)
        if self.type == "color":
            return colour_words(str(value))
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)


def _colour(value: Any, label: str) -> str:
    text = str(value).strip()
    if _HEX.fullmatch(text):
        return "#" + text.lstrip("#").upper()
    if re.fullmatch(r"[A-Za-z][A-Za-z \-]{0,40}", text):
        return text.lower()
    raise BadInputError(f"{label}: {text!r} is not a colour: use a name (navy) or a hex code (#1B2A4A).")


#: A few named colours, to turn hex codes into words a text model understands.
_COLOUR_NAMES: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "grey": (128, 128, 128),
    "light grey": (200, 200, 200),
    "charcoal": (54, 69, 79),
    "red": (220, 30, 40),
    "crimson": (160, 20, 40),
    "coral": (255, 127, 80),
    "orange": (245, 130, 30),
    "amber": (255, 190, 0),
    "yellow": (250, 225, 40),
    "cream": (250, 240, 215),
    "beige": (225, 205, 170),
    "brown": (120, 75, 40),
    "olive": (110, 120, 40),
    "lime": (170, 220, 50),
    "green": (40, 150, 60),
    "forest green": (25, 85, 45),
    "mint": (160, 230, 190),
    "teal": (0, 128, 128),
    "turquoise": (60, 210, 200),
    "sky blue": (120, 190, 240),
    "blue": (30, 90, 210),
    "navy": (20, 35, 80),
    "indigo": (75, 40, 130),
    "purple": (130, 50, 160),
    "lavender": (190, 170, 230),
    "pink": (245, 150, 190),
    "magenta": (210, 30, 140),
    "burgundy": (110, 20, 40),
    "gold": (212, 175, 55),
    "silver": (192, 192, 192),
}


def colour_words(value: str) -> str:
    """A colour as words: names stay, hex codes become the nearest named colour (``#1B2A4A`` → navy)."""
    if not _HEX.fullmatch(value.strip()):
        return value
    code = value.strip().lstrip("#")
    rgb = tuple(int(code[i : i + 2], 16) for i in (0, 2, 4))
    return min(_COLOUR_NAMES, key=lambda name: sum((a - b) ** 2 for a, b in zip(_COLOUR_NAMES[name], rgb, strict=True)))


@dataclass
class Style:
    """One look of the concept: words added to the prompt (as ``{style}``) and the negative prompt."""

    name: str
    prompt: str = ""
    negative_prompt: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = {"name": self.name, "prompt": self.prompt}
        if self.negative_prompt:
            data["negative_prompt"] = self.negative_prompt
        return data


@dataclass
class VariationStrategy:
    """How one concept becomes many images: styles × guidance values × seeds (× channels)."""

    styles: list[Style] = field(default_factory=lambda: [Style("Default")])
    seeds: int = 1
    guidance: list[float] = field(default_factory=lambda: [7.0])

    def to_dict(self) -> dict[str, Any]:
        return {"styles": [s.to_dict() for s in self.styles], "seeds": self.seeds, "guidance": list(self.guidance)}


@dataclass
class Template:
    """A validated campaign template. Build one with :meth:`from_dict` (it validates)."""

    id: str
    name: str
    purpose: str
    fields: list[TemplateField]
    prompt: str
    negative_prompt: str = ""
    channels: list[str] = field(default_factory=lambda: ["square"])
    variations: VariationStrategy = field(default_factory=VariationStrategy)
    engine_hints: dict[str, dict[str, Any]] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    version: int = 1
    #: True for the read-only templates shipped in ``assets/templates``
    builtin: bool = False
    #: the file it was read from (for messages); empty for one built in memory
    source: str = ""

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """The YAML mapping of this template (without ``id``: that is the file name)."""
        data: dict[str, Any] = {
            "version": self.version,
            "name": self.name,
            "purpose": self.purpose,
            "fields": [f.to_dict() for f in self.fields],
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "channels": list(self.channels),
            "variations": self.variations.to_dict(),
        }
        if self.engine_hints:
            data["engine_hints"] = {k: dict(v) for k, v in self.engine_hints.items()}
        if self.tags:
            data["tags"] = list(self.tags)
        return data

    @classmethod
    def from_dict(cls, data: Any, template_id: str, source: str = "", builtin: bool = False) -> Template:
        """Validate ``data`` (a parsed YAML document) and build the template. Raises TemplateError."""
        return _Validator(source or f"{template_id}.yaml").template(data, template_id, source, builtin)

    # ------------------------------------------------------------------ use
    def field(self, key: str) -> TemplateField:
        for item in self.fields:
            if item.key == key:
                return item
        raise BadInputError(f"Template {self.name!r} has no field {key!r}. Fields: {', '.join(self.field_keys)}.")

    @property
    def field_keys(self) -> list[str]:
        return [f.key for f in self.fields]

    def resolve_fields(self, values: Mapping[str, Any] | None) -> dict[str, Any]:
        """The user's values checked and typed, defaults filled in. Raises BadInputError naming the field."""
        values = dict(values or {})
        unknown = sorted(set(values) - set(self.field_keys))
        if unknown:
            raise BadInputError(
                f"Template {self.name!r} has no field {', '.join(map(repr, unknown))}. "
                f"Its fields are: {', '.join(self.field_keys)}."
            )
        resolved: dict[str, Any] = {}
        for item in self.fields:
            value = item.coerce(values.get(item.key), f"Field '{item.label}' ({item.key})")
            if value is None:
                value = item.default
            if value is None and item.required:
                raise BadInputError(
                    f"Field '{item.label}' ({item.key}) is required: {item.help or 'please fill it in'}."
                )
            resolved[item.key] = value
        return resolved

    def render(
        self, values: Mapping[str, Any], style: Style | None = None, channel_key: str = "square"
    ) -> tuple[str, str]:
        """(prompt, negative prompt) for resolved ``values``, one style and one channel."""
        style = style or self.variations.styles[0]
        fmt = CHANNELS.get(channel_key)
        words = {f.key: f.as_text(values.get(f.key)) for f in self.fields}
        words["channel"] = fmt.label.split(" (")[0].lower() if fmt else channel_key
        words["aspect"] = fmt.aspect if fmt else ""
        words["style"] = fill(style.prompt, words)
        prompt = fill(self.prompt, words)
        if style.prompt and not _uses(self.prompt, "style"):
            prompt = join_phrases(prompt, words["style"])
        negative = join_phrases(fill(self.negative_prompt, words), fill(style.negative_prompt, words))
        return prompt, negative

    def variation_count(self, engine: str = "sd") -> int:
        v = self.variations
        guidance = len(v.guidance) if engine == "sd" else 1
        return len(self.channels) * len(v.styles) * guidance * v.seeds


def placeholders(pattern: str) -> list[str]:
    """The ``{name}`` placeholders of a pattern (``{{``/``}}`` are literal braces)."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(pattern.replace("{{", "").replace("}}", ""))]


def _uses(pattern: str, name: str) -> bool:
    return name in placeholders(pattern)


def fill(pattern: str, words: Mapping[str, str]) -> str:
    """Substitute ``{name}`` placeholders once (values are never re-read as patterns).

    A ``[[ ... ]]`` part is dropped when a placeholder inside it is empty. Stray commas and spaces
    left by empty values are tidied.
    """

    def optional(match: re.Match[str]) -> str:
        inner = match.group(1)
        if any(not str(words.get(name, "")).strip() for name in placeholders(inner)):
            return ""
        return inner

    text = _OPTIONAL.sub(optional, pattern)
    parts = re.split(r"(\{\{|\}\}|\{[^{}]*\})", text)
    out = []
    for part in parts:
        if part == "{{":
            out.append("{")
        elif part == "}}":
            out.append("}")
        elif part.startswith("{") and part.endswith("}") and len(part) >= 2:
            out.append(str(words.get(part[1:-1], "")))
        else:
            out.append(part)
    return tidy("".join(out))


def tidy(text: str) -> str:
    """Collapse whitespace and the empty comma-separated parts that missing values leave behind."""
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([,.;])", r"\1", text)
    text = re.sub(r"(,\s*)+,", ",", text)
    text = re.sub(r"^[\s,]+|[\s,]+$", "", text)
    return text.strip()


def join_phrases(*parts: str) -> str:
    """Comma-join the non-empty parts."""
    return tidy(", ".join(p.strip() for p in parts if p and p.strip()))


class _Validator:
    """Checks a parsed YAML document; every error names the file and the field path."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, path: str, problem: str) -> TemplateError:
        return TemplateError(self.file, path, problem)

    # ---------------------------------------------------------------- primitives
    def mapping(self, value: Any, path: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a mapping (key: value lines), got {_kind(value)}")
        for key in value:
            if not isinstance(key, str):
                raise self.fail(path, f"has a non-text key {key!r}")
            if key not in allowed:
                raise self.fail(_join(path, key), f"is not a known setting. Known: {', '.join(sorted(allowed))}")
        return value

    def text(self, value: Any, path: str, required: bool = True, limit: int = MAX_TEXT) -> str:
        if value is None:
            if required:
                raise self.fail(path, "is missing")
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.fail(path, f"must be text, got {_kind(value)}")
        text = str(value).strip()
        if required and not text:
            raise self.fail(path, "must not be empty")
        if len(text) > limit:
            raise self.fail(path, f"is too long ({len(text)} characters; at most {limit})")
        return text

    def integer(self, value: Any, path: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float) or float(value) != int(value):
            raise self.fail(path, f"must be a whole number, got {_kind(value)} {value!r}")
        if not low <= int(value) <= high:
            raise self.fail(path, f"must be between {low} and {high}, got {value}")
        return int(value)

    def number(self, value: Any, path: str, low: float, high: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, f"must be a number, got {_kind(value)} {value!r}")
        if not low <= float(value) <= high:
            raise self.fail(path, f"must be between {low:g} and {high:g}, got {value}")
        return float(value)

    def seq(self, value: Any, path: str, min_items: int = 1, max_items: int = 50) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, f"must be a list, got {_kind(value)}")
        if not min_items <= len(value) <= max_items:
            raise self.fail(path, f"must have between {min_items} and {max_items} entries, got {len(value)}")
        return value

    # ---------------------------------------------------------------- document
    def template(self, data: Any, template_id: str, source: str, builtin: bool) -> Template:
        if not ID_PATTERN.fullmatch(template_id or ""):
            raise self.fail(
                "", f"the template id {template_id!r} (the file name) must be lower-case letters, digits and dashes"
            )
        if data is None:
            raise self.fail("", "the file is empty")
        doc = self.mapping(data, "", _TOP_KEYS)
        version = self.integer(doc.get("version", 1), "version", 1, 1)
        name = self.text(doc.get("name"), "name", limit=80)
        purpose = self.text(doc.get("purpose"), "purpose", limit=200)
        if "\n" in purpose:
            raise self.fail("purpose", "must be one line")
        fields = [
            self.field(item, f"fields[{i}]") for i, item in enumerate(self.seq(doc.get("fields", []), "fields", 0, 30))
        ]
        keys = [f.key for f in fields]
        for i, key in enumerate(keys):
            if key in keys[:i]:
                raise self.fail(f"fields[{i}].key", f"{key!r} is used twice")
            if key in BUILTIN_PLACEHOLDERS:
                raise self.fail(f"fields[{i}].key", f"{key!r} is reserved (built-in placeholder)")
        known = set(keys) | set(BUILTIN_PLACEHOLDERS)
        prompt = self.pattern(doc.get("prompt"), "prompt", known, required=True)
        negative = self.pattern(doc.get("negative_prompt"), "negative_prompt", known, required=False)
        channels = self.channels(doc.get("channels", ["square"]))
        variations = self.variations(doc.get("variations", {}), known - {"style"})
        hints = self.hints(doc.get("engine_hints", {}))
        tags = [
            self.text(t, f"tags[{i}]", limit=40) for i, t in enumerate(self.seq(doc.get("tags", []), "tags", 0, 20))
        ]
        template = Template(
            id=template_id,
            name=name,
            purpose=purpose,
            fields=fields,
            prompt=prompt,
            negative_prompt=negative,
            channels=channels,
            variations=variations,
            engine_hints=hints,
            tags=tags,
            version=version,
            builtin=builtin,
            source=source,
        )
        count = template.variation_count("sd")
        if count > MAX_VARIATIONS:
            raise self.fail(
                "variations",
                f"makes {count} images per campaign (channels × styles × guidance × seeds); at most {MAX_VARIATIONS}",
            )
        return template

    def field(self, value: Any, path: str) -> TemplateField:
        data = self.mapping(value, path, _FIELD_KEYS)
        key = self.text(data.get("key"), f"{path}.key", limit=40)
        if not KEY_PATTERN.fullmatch(key):
            raise self.fail(f"{path}.key", f"{key!r} must be lower-case letters, digits and _ (starting with a letter)")
        kind = self.text(data.get("type", "text"), f"{path}.type")
        if kind not in FIELD_TYPES:
            raise self.fail(f"{path}.type", f"must be one of {', '.join(FIELD_TYPES)}, got {kind!r}")
        required = data.get("required", False)
        if not isinstance(required, bool):
            raise self.fail(f"{path}.required", f"must be true or false, got {required!r}")
        choices = []
        if "choices" in data:
            choices = [
                self.text(c, f"{path}.choices[{i}]", limit=80)
                for i, c in enumerate(self.seq(data["choices"], f"{path}.choices", 1, 50))
            ]
        if kind == "choice" and not choices:
            raise self.fail(f"{path}.choices", "a choice field needs a list of choices")
        low = self.number(data["min"], f"{path}.min", -1e9, 1e9) if "min" in data else None
        high = self.number(data["max"], f"{path}.max", -1e9, 1e9) if "max" in data else None
        item = TemplateField(
            key=key,
            label=self.text(data.get("label", key), f"{path}.label", limit=80),
            type=kind,
            required=required,
            help=self.text(data.get("help"), f"{path}.help", required=False, limit=300),
            choices=choices,
            min=low,
            max=high,
        )
        if data.get("default") is not None:
            try:
                item.default = item.coerce(data["default"], "the default")
            except BadInputError as err:
                raise self.fail(f"{path}.default", str(err)) from None
        return item

    def pattern(self, value: Any, path: str, known: set[str], required: bool) -> str:
        text = self.text(value, path, required=required)
        if text.count("[[") != text.count("]]"):
            raise self.fail(path, "has an unclosed [[ ... ]] optional part")
        for name in placeholders(text):
            if name not in known:
                hint = "" if KEY_PATTERN.fullmatch(name) else " (placeholders are plain names like {product})"
                raise self.fail(
                    path,
                    f"uses the placeholder {{{name}}}, which is not a field of this template{hint}. "
                    f"Available: {', '.join('{' + k + '}' for k in sorted(known))}",
                )
        stray = _PLACEHOLDER.sub("", text.replace("{{", "").replace("}}", ""))
        if "{" in stray or "}" in stray:
            raise self.fail(path, "has an unmatched brace; write {{ or }} for a literal brace")
        return text

    def channels(self, value: Any) -> list[str]:
        items = self.seq(value, "channels", 1, len(CHANNELS))
        result = []
        for i, item in enumerate(items):
            key = self.text(item, f"channels[{i}]")
            if key not in CHANNELS:
                raise self.fail(
                    f"channels[{i}]", f"{key!r} is not a channel format. Choose from: {', '.join(CHANNELS)}"
                )
            if key in result:
                raise self.fail(f"channels[{i}]", f"{key!r} is listed twice")
            result.append(key)
        return result

    def variations(self, value: Any, known: set[str]) -> VariationStrategy:
        data = self.mapping(value or {}, "variations", _VARIATION_KEYS)
        styles = []
        for i, item in enumerate(self.seq(data.get("styles", [{"name": "Default"}]), "variations.styles", 1, 24)):
            path = f"variations.styles[{i}]"
            if isinstance(item, str):
                item = {"name": item, "prompt": item}
            s = self.mapping(item, path, _STYLE_KEYS)
            style = Style(
                name=self.text(s.get("name"), f"{path}.name", limit=60),
                prompt=self.pattern(s.get("prompt"), f"{path}.prompt", known, required=False),
                negative_prompt=self.pattern(
                    s.get("negative_prompt"), f"{path}.negative_prompt", known, required=False
                ),
            )
            if style.name in [x.name for x in styles]:
                raise self.fail(f"{path}.name", f"{style.name!r} is used twice")
            styles.append(style)
        seeds = self.integer(data.get("seeds", 1), "variations.seeds", 1, MAX_SEEDS)
        raw = data.get("guidance", [7.0])
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            raw = [raw]
        guidance = [
            self.number(g, f"variations.guidance[{i}]", 1.0, 30.0)
            for i, g in enumerate(self.seq(raw, "variations.guidance", 1, 8))
        ]
        return VariationStrategy(styles=styles, seeds=seeds, guidance=guidance)

    def hints(self, value: Any) -> dict[str, dict[str, Any]]:
        data = self.mapping(value or {}, "engine_hints", {"sd", "local_score"})
        result: dict[str, dict[str, Any]] = {}
        for engine, spec in (("sd", _SD_HINTS), ("local_score", _LOCAL_HINTS)):
            if data.get(engine) is None:
                continue
            path = f"engine_hints.{engine}"
            hints = dict(self.mapping(data[engine], path, set(spec)))
            for key, kind in spec.items():
                if key not in hints or hints[key] is None:
                    hints.pop(key, None)
                    continue
                sub = f"{path}.{key}"
                if kind is int:
                    hints[key] = self.integer(hints[key], sub, 1, 1024 if key == "size" else 200)
                elif kind is str:
                    hints[key] = self.text(hints[key], sub, limit=200)
                else:
                    hints[key] = [
                        self.text(x, f"{sub}[{i}]", limit=40) for i, x in enumerate(self.seq(hints[key], sub, 1, 10))
                    ]
            self.check_hint_values(engine, hints, path)
            result[engine] = hints
        return result

    def check_hint_values(self, engine: str, hints: dict[str, Any], path: str) -> None:
        if engine == "sd" and "family" in hints and hints["family"] not in FAMILY_BASE:
            raise self.fail(f"{path}.family", f"must be one of {', '.join(FAMILY_BASE)}, got {hints['family']!r}")
        if engine != "local_score":
            return
        from core.score import MACHINE_KINDS, PRESETS  # local import: keeps template loading light

        for i, preset in enumerate(hints.get("presets", [])):
            if preset not in PRESETS:
                raise self.fail(
                    f"{path}.presets[{i}]", f"{preset!r} is not a locality preset. Choose from: {', '.join(PRESETS)}"
                )
        if "machine" in hints and hints["machine"] not in MACHINE_KINDS:
            raise self.fail(f"{path}.machine", f"must be one of {', '.join(MACHINE_KINDS)}, got {hints['machine']!r}")
        if "size" in hints and hints["size"] not in LOCAL_SCORE_SIZES:
            sizes = ", ".join(map(str, LOCAL_SCORE_SIZES))
            raise self.fail(f"{path}.size", f"must be one of {sizes}, got {hints['size']}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )
