"""Library names: short slugs that are safe as folder names."""

from __future__ import annotations

import re

from core.errors import BadInputError

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_LABEL_MAX = 64


def validate_name(name: object) -> str:
    """Return ``name`` if it is a valid library name, else raise ``BadInputError`` explaining the rule."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise BadInputError(
            f"{name!r} is not a valid library name. Use 1 to 64 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit (for example 'summer-shoes')."
        )
    return name


def suggest_name(text: str) -> str:
    """A valid library name derived from free text (``"Summer Shoes!"`` -> ``"summer-shoes"``)."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", text.strip().lower()).strip("-_")
    return slug[:64].rstrip("-_") or "library"


def clean_label(text: str) -> str:
    """A label name as shown to people: trimmed, at most 64 characters."""
    return " ".join(text.split())[:_LABEL_MAX]
