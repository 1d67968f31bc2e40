"""Counts in words a person reads: ``plural(1, "picture")`` is "1 picture", ``plural(1797, "picture")``
"1,797 pictures" (never "picture(s)")."""

from __future__ import annotations


def plural(count: int, word: str, many: str | None = None) -> str:
    """``count`` and ``word``, in the plural unless it is exactly one (``many`` for irregular plurals)."""
    count = int(count)
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


def time_ago(seconds: float) -> str:
    """How long ago, as people say it: "just now", "5 minutes ago", "2 hours ago", "3 days ago"."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return "just now"
    for size, word in ((86_400, "day"), (3_600, "hour"), (60, "minute")):
        if seconds >= size:
            return f"{plural(int(seconds // size), word)} ago"
    return "just now"
