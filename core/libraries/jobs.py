"""Library imports as background jobs (the Libraries page submits, a worker imports).

The uploaded files are first kept in ``<data dir>/uploads/import-<hash>/`` (base names only, nothing is
ever written outside that folder; the same uploads give the same folder, so a double click is one
job); the job then imports them, and a server folder, with :meth:`LibraryManager.add_paths`: one
all-or-nothing import, so a failed import under a new name leaves no library.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.errors import BadInputError, MosaicError
from core.jobs.context import JobContext
from core.jobs.requests import uploads_dir

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


def _upload_folder(name: str | None) -> Path | None:
    if not name:
        return None
    root = uploads_dir().resolve()
    path = (root / str(name)).resolve()
    if path.parent != root or not path.is_dir():
        raise BadInputError("The pictures of this import are missing from the studio's uploads folder; add them again.")
    return path


def run_import_job(context: JobContext) -> str:
    params = context.params
    library = str(params.get("library") or "")
    uploads = _upload_folder(params.get("uploads"))
    paths: list[Path] = sorted(p for p in uploads.iterdir() if p.is_file()) if uploads else []
    if params.get("folder"):
        from core.roots import check_folder

        paths.append(check_folder(str(params["folder"])))  # checked again: the rule may have changed
    context.progress(0.05, f"Adding {len(paths)} source(s) to the library…")
    context.cancel.raise_if_cancelled()
    try:
        report = context.libraries().add_paths(library, paths, title=str(params.get("title") or ""))
    except MosaicError:
        if uploads is not None:
            shutil.rmtree(uploads, ignore_errors=True)
        raise
    if uploads is not None:
        shutil.rmtree(uploads, ignore_errors=True)
    context.save_result(
        library=report.library,
        added=report.added,
        skipped=[list(s) for s in report.skipped],
        notices=list(report.notices),
    )
    return f"Added {report.added} picture(s) to the library."
