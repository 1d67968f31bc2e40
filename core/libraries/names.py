"""Library names: short slugs that are safe as folder names."""

from __future__ import annotations

import re

from core.config import SLUG_PATTERN, check_slug

NAME_PATTERN = SLUG_PATTERN
_LABEL_MAX = 64


def validate_name(name: object) -> str:
    """Return ``name`` if it is a valid library name, else raise ``BadInputError`` explaining the rule."""
    return check_slug(name, "library", "summer-shoes")


def suggest_name(text: str) -> str:
    """A valid library name derived from free text (``"Summer Shoes!"`` -> ``"summer-shoes"``)."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", text.strip().lower()).strip("-_")
    return slug[:64].rstrip("-_") or "library"


def clean_label(text: str) -> str:
    """A label name as shown to people: trimmed, at most 64 characters."""
    return " ".join(text.split())[:_LABEL_MAX]
