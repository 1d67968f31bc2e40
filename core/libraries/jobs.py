"""Library imports as background jobs (the Libraries page submits, a worker imports).

The uploaded files are first kept in ``<data dir>/uploads/import-<hash>/`` (base names only, nothing is
ever written outside that folder; the same uploads give the same folder, so a double click is one
job); the job then imports them, and a server folder, with :meth:`LibraryManager.add_paths`: one
all-or-nothing import, so a failed import under a new name leaves no library.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import shlex
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core import config
from core.errors import BadInputError, GenerationCancelled, MosaicError
from core.images import DEFAULT_MAX_SIDE
from core.jobs.context import JobContext
from core.jobs.requests import uploads_dir
from core.libraries.datasource import HUB_PREFIX, DatasetOptions
from core.libraries.journal import StoppedImport
from core.libraries.manager import NothingAddedError
from core.libraries.progress import RateMeter
from core.words import plural

logger = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9._ ()-]+")


def _safe_name(raw: str, taken: set[str]) -> str:
    base = _SAFE.sub("_", Path(str(raw).replace("\\", "/")).name).strip(" .") or "picture"
    base = base[:120]
    name, k = base, 2
    while name.lower() in taken:
        stem, dot, ext = base.rpartition(".")
        name = f"{stem} ({k}).{ext}" if dot else f"{base} ({k})"
        k += 1
    taken.add(name.lower())
    return name


def keep_uploads(uploads: Sequence[tuple[str, bytes]]) -> str | None:
    """Keep uploaded files for an import job; returns the folder's name under the uploads folder."""
    if not uploads:
        return None
    digest = hashlib.sha256()
    for name, data in uploads:
        digest.update(str(name).encode("utf-8", "replace") + b"\0" + hashlib.sha256(data).digest())
    folder_name = f"import-{digest.hexdigest()[:24]}"
    folder = uploads_dir() / folder_name
    if folder.is_dir():
        return folder_name
    staging = uploads_dir() / f".{folder_name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    taken: set[str] = set()
    for name, data in uploads:
        (staging / _safe_name(name, taken)).write_bytes(data)
    staging.replace(folder)
    return folder_name


def import_params(library: str, title: str, upload_folder: str | None, folder: str | None) -> dict[str, Any]:
    """JSON parameters of a ``library-import`` job (``folder`` already checked against the allowed folders)."""
    if not upload_folder and not folder:
        raise BadInputError("Choose some pictures, a .zip or a folder first.")
    return {"library": library, "title": title, "uploads": upload_folder, "folder": folder}


def resume_params(stopped: StoppedImport) -> dict[str, Any] | None:
    """The ``library-import`` job that goes on with ``stopped`` (the same import again: it takes over what was
    read), or None when only the command line can (several sources, dataset options, a Hub dataset)."""
    page_options = {"max_side": DEFAULT_MAX_SIDE, **dataclasses.asdict(DatasetOptions())}
    if len(stopped.sources) != 1 or stopped.options != page_options or stopped.sources[0].startswith(HUB_PREFIX):
        return None
    return import_params(stopped.library, stopped.title, None, stopped.sources[0])


def resume_command(stopped: StoppedImport, workspace: str | None = None) -> str | None:
    """The command that goes on with ``stopped`` (None when its sources were not noted)."""
    if not stopped.sources:
        return None
    words = ["python", "-m", "core", "libraries", "add", stopped.library, *stopped.sources]
    for option, flag in (("split", "--split"), ("image_column", "--image-column"), ("label_column", "--label-column")):
        if stopped.options.get(option):
            words += [flag, str(stopped.options[option])]
    if workspace and workspace != config.DEFAULT_WORKSPACE:
        words += ["--workspace", workspace]
    return shlex.join(words)


def prepare_params(library: str) -> dict[str, Any]:
    """JSON parameters of a ``library-import`` job that prepares a built-in library (makes its pictures)."""
    return {"library": library, "prepare": True}


def _upload_folder(name: str | None) -> Path | None:
    if not name:
        return None
    root = uploads_dir().resolve()
    path = (root / str(name)).resolve()
    if path.parent != root or not path.is_dir():
        raise BadInputError(
            "The pictures of this import are no longer on the studio's server (it may have been restarted "
            "or cleaned up). Add them again.",
            detail=f"Missing upload folder: {path} (under the data folder's uploads folder).",
        )
    return path


def _progress(context: JobContext, start: float, verb: str, noun: str) -> Callable[[int, int], None]:
    """A ``progress(done, expected)`` callback that moves the job's bar from ``start`` to 0.95 with plain words
    ("Reading: 1,200 of 40,000 pictures · 310 a second · about 2 minutes left") and stops the work when
    the job is cancelled."""
    meter = RateMeter(noun)

    def report(done: int, expected: int) -> None:
        # with no total known the bar still moves: half way at 1,000, ever slower after
        share = min(1.0, done / expected) if expected > 0 else done / (done + 1000)
        fraction = start + (0.95 - start) * share
        context.progress(fraction, f"{verb}: {meter.update(done, expected)}")
        context.cancel.raise_if_cancelled()

    return report


def run_import_job(context: JobContext) -> str:
    params = context.params
    library = str(params.get("library") or "")
    if params.get("prepare"):
        return _run_prepare(context, library)
    uploads = _upload_folder(params.get("uploads"))
    paths: list[Path] = sorted(p for p in uploads.iterdir() if p.is_file()) if uploads else []
    if params.get("folder"):
        from core.roots import check_folder

        paths.append(check_folder(str(params["folder"])))  # checked again: the rule may have changed
    context.progress(0.02, "Looking through the pictures…")
    context.cancel.raise_if_cancelled()
    title = str(params.get("title") or "")
    try:
        report = context.libraries().add_paths(
            library,
            paths,
            title=title,
            progress=_progress(context, 0.05, "Reading", "picture"),
            resumable=uploads is None,  # a folder import goes on where it stopped; uploads are not kept
        )
    except NothingAddedError as err:
        context.save_result(
            library=library, title=title or library, added=0, skipped=[list(s) for s in err.report.skipped]
        )
        if uploads is not None:
            shutil.rmtree(uploads, ignore_errors=True)
        raise
    except GenerationCancelled:
        if uploads is not None:
            shutil.rmtree(uploads, ignore_errors=True)
        else:
            context.save_result(
                library=library,
                title=title or library,
                cancel_note="Cancelled. The pictures read so far are kept: import the same folder into this library "
                "again to go on where it stopped.",
            )
        raise
    except MosaicError:
        if uploads is not None:
            shutil.rmtree(uploads, ignore_errors=True)
        raise
    if uploads is not None:
        shutil.rmtree(uploads, ignore_errors=True)
    shown = _title(context, library, title)
    context.save_result(
        library=report.library,
        title=shown,
        added=report.added,
        skipped=[list(s) for s in report.skipped],
        notices=list(report.notices),
    )
    return added_message(report.added, shown, len(report.skipped))


def _title(context: JobContext, library: str, fallback: str) -> str:
    try:
        return context.libraries().get(library).title
    except MosaicError:
        return fallback or library


def added_message(added: int, title: str, skipped: int = 0) -> str:
    """``Added 3 pictures to “Spring catalogue”.`` (and how many files were skipped), in plain words."""
    text = f"Added {plural(added, 'picture')} to “{title}”."
    if skipped:
        text += f" {plural(skipped, 'file')} could not be used: see the list below."
    return text


def _run_prepare(context: JobContext, library: str) -> str:
    """Make a built-in library's pictures (a few seconds the first time), with moving progress."""
    libraries = context.libraries()
    title = libraries.get(library).title
    context.progress(0.02, f"Preparing {title}…")
    info = libraries.ensure(library, progress=_progress(context, 0.05, "Preparing pictures", "picture"))
    context.save_result(library=library, title=info.title, added=info.count, prepared=True)
    return f"{info.title} is ready: {plural(info.count, 'picture')}."
