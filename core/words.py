"""Counts in words a person reads: ``plural(1, "picture")`` is "1 picture", ``plural(1797, "picture")``
"1,797 pictures" (never "picture(s)")."""

from __future__ import annotations


def plural(count: int, word: str, many: str | None = None) -> str:
    """``count`` and ``word``, in the plural unless it is exactly one (``many`` for irregular plurals)."""
    count = int(count)
    return f"{count:,} {word if count == 1 else (many or word + 's')}"
