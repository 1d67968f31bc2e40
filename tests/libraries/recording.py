"""A real job context that also keeps every progress report its handler makes (library job tests)."""

from __future__ import annotations

from core.jobs.context import JobContext


class RecordingContext(JobContext):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reports: list[tuple[float, str]] = []

    def progress(self, fraction: float, message: str = "", preview=None) -> None:
        self.reports.append((fraction, message))
        super().progress(fraction, message, preview)
