"""Errors whose message is written for the person using the studio."""

from __future__ import annotations


class MosaicError(Exception):
    """A problem the user can act on. ``str(err)`` is shown as-is in the UI and the CLI.

    ``detail``: optional technical detail for whoever sets the studio up (environment variables,
    commands, paths). The pages show it under an expander, the CLI after the message; the message
    itself stays in the user's words.
    """

    def __init__(self, *args: object, detail: str | None = None) -> None:
        super().__init__(*args)
        self.detail = detail


class BadInputError(MosaicError):
    """An uploaded file, folder, zip or parameter that cannot be used."""


class ResourceError(MosaicError):
    """A request that would not fit in memory or time; the message says what to change."""


class GenerationCancelled(MosaicError):
    """The user pressed cancel; nothing partial is saved."""

    def __init__(self, message: str = "Generation cancelled. Nothing was saved from the unfinished run.") -> None:
        super().__init__(message)
