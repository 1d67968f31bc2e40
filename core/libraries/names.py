"""Library names (short slugs that are safe as folder names) and the names people see for library pictures."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from core.config import SLUG_PATTERN, check_slug

NAME_PATTERN = SLUG_PATTERN
_LABEL_MAX = 64
_NAME_MAX = 80


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


# -- the names of library pictures, as people see them ------------------------------------------------


def _file_name(text: str) -> str:
    """The last part of a path, whatever its separators (``shoes/red.png`` -> ``red.png``)."""
    return " ".join(text.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].split())


def source_name(item: Mapping[str, Any], library: str) -> str:
    """The one name shown for a library picture everywhere (Mosaic view, hover text, originality check, exports).

    ``item`` is one entry of :meth:`core.libraries.LibraryManager.items` (``id``, ``index``, ``label``,
    ``source``, ``file``; a ``title`` when the picture has one). Built-in pictures get a short human title
    ("Faces #52", "Coffee cup #3"); uploaded ones their title, else the file name they were uploaded under,
    without its folders ("red-sneaker.jpg"); a picture with neither is "Picture 4" (its place in the library).
    """
    from core.libraries.builtins import BUILTIN_LIBRARIES, builtin_item_name

    item_id = str(item.get("id") or "")
    label = item.get("label")
    if library in BUILTIN_LIBRARIES:
        named = builtin_item_name(library, item_id, None if label is None else str(label))
        if named:
            return named
    text = " ".join(str(item.get("title") or "").split()) or _file_name(str(item.get("source") or ""))
    if text:
        return text[:_NAME_MAX]
    index = item.get("index")
    return f"Picture {int(index) + 1}" if isinstance(index, int) else "A library picture"


def source_names(items: Sequence[Mapping[str, Any]], library: str) -> dict[int, str]:
    """Library position -> :func:`source_name` of every item (in :meth:`LibraryManager.items` order).

    Two pictures never share a name: a repeated one gets its folder label ("red.png (boots)") or its place
    in the library ("red.png (picture 7)").
    """
    names = {i: source_name({**item, "index": i}, library) for i, item in enumerate(items)}
    for tell_apart in (
        lambda i, name: f"{name} ({items[i]['label']})" if items[i].get("label") else name,
        lambda i, name: f"{name} (picture {i + 1})",
    ):
        counts = Counter(names.values())
        names = {i: tell_apart(i, name) if counts[name] > 1 else name for i, name in names.items()}
    return names


_ROWS = ("top", "", "bottom")
_COLUMNS = ("left", "", "right")


def position_words(y: int, x: int, height: int, width: int) -> str:
    """Where ``(y, x)`` lies in a ``height`` × ``width`` picture: "top left", "top", "middle", "bottom right"."""
    row = _ROWS[min(2, max(0, int(y) * 3 // max(1, int(height))))]
    column = _COLUMNS[min(2, max(0, int(x) * 3 // max(1, int(width))))]
    return " ".join(part for part in (row, column) if part) or "middle"
