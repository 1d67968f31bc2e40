"""How far a long library task has come, in words a person reads while waiting.

``RateMeter.update(done, expected)`` gives "12,345 of 100,000 pictures · 310 a second · about 5 minutes
left": the count, the recent rate (an average over about the last half minute, so a slow start or a
slow stretch does not distort the time left for long) and the time left at that rate. The first
seconds only give the count: a rate measured over a moment says nothing yet.

Used by library imports (the CLI's ``libraries add`` and the Libraries page's import jobs) and by
the preparation of a library's search data (the copy check).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from core.words import plural

#: The rate is an average over about this many seconds (exponentially weighted).
RATE_WINDOW_S = 30.0
#: No rate or time left before this many seconds, or before this many items are done.
SETTLE_S = 2.0
SETTLE_ITEMS = 2


def time_left(seconds: float) -> str:
    """``seconds`` still to wait, in words: "a few seconds left", "about 40 seconds left",
    "about 5 minutes left", "about 2 hours left"."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"time left must be a finite number of seconds, not {seconds!r}")
    if seconds < 10:
        return "a few seconds left"
    if seconds < 55:
        return f"about {int(5 * round(seconds / 5))} seconds left"
    if seconds < 90:
        return "about a minute left"
    minutes = seconds / 60
    if minutes < 90:
        return f"about {round(minutes)} minutes left"
    hours = minutes / 60
    if hours < 36:
        return f"about {round(hours)} hours left"
    return f"about {round(hours / 24)} days left"


def rate_text(per_second: float) -> str:
    """A rate in words: "310 a second", "4.5 a second", "12 a minute", "40 an hour"."""
    if per_second >= 10:
        return f"{round(per_second):,} a second"
    if per_second >= 1:
        return f"{per_second:.1f} a second"
    if per_second * 60 >= 1:
        return f"{round(per_second * 60)} a minute"
    if per_second * 3600 >= 1:
        return f"{round(per_second * 3600)} an hour"
    return "less than 1 an hour"


class RateMeter:
    """The rate of a count that grows over time, and the time left until an expected total.

    ``clock`` (seconds, monotonic) is there for tests; ``noun`` names what is counted.
    """

    def __init__(self, noun: str = "picture", clock: Callable[[], float] = time.monotonic) -> None:
        self.noun = noun
        self._clock = clock
        self._started = clock()
        self._last_time = self._started
        self._last_done = 0
        self._rate: float | None = None

    @property
    def rate(self) -> float | None:
        """Items a second, averaged over about the last :data:`RATE_WINDOW_S`; None while settling."""
        return self._rate

    def seconds_left(self, done: int, expected: int) -> float | None:
        """Seconds until ``expected`` at the current rate; None while there is no rate yet."""
        if self._rate is None or self._rate <= 0:
            return None
        return max(0, expected - done) / self._rate

    def observe(self, done: int) -> None:
        """Note that ``done`` items are finished now."""
        now = self._clock()
        elapsed = now - self._started
        if elapsed < SETTLE_S or done < SETTLE_ITEMS:
            return
        if self._rate is None:
            # the first rate: the average since the start
            self._rate = done / elapsed
        else:
            dt = now - self._last_time
            if dt <= 0:
                return
            weight = 1.0 - math.exp(-dt / RATE_WINDOW_S)
            recent = max(0, done - self._last_done) / dt
            self._rate += weight * (recent - self._rate)
        self._last_time, self._last_done = now, done

    def update(self, done: int, expected: int) -> str:
        """Note ``done`` and describe the progress towards ``expected`` (at least ``done``; 0 or less:
        not known, then the count and the rate only: "1,200 pictures so far · 310 a second")."""
        done = max(0, int(done))
        self.observe(done)
        if expected <= 0:
            text = f"{plural(done, self.noun)} so far"
            return f"{text} · {rate_text(self._rate)}" if self._rate is not None else text
        expected = max(done, int(expected))
        parts = [f"{done:,} of {plural(expected, self.noun)}"]
        if self._rate is not None and done < expected:
            parts.append(rate_text(self._rate))
            left = self.seconds_left(done, expected)
            if left is not None:
                parts.append(time_left(left))
        return " · ".join(parts)
