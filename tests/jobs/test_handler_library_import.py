"""Library imports as jobs: uploads kept safely, all or nothing, a failed new library leaves nothing."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from core.jobs import DONE, FAILED, JobQueue
from core.jobs.requests import uploads_dir
from core.jobs.worker import run_job_here
from core.libraries import LibraryManager
from core.libraries.jobs import import_params, keep_uploads


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_uploads_go_into_a_new_library_and_names_never_leave_the_uploads_folder():
    uploads = [("../../evil.png", _png(1)), ("/etc/b.png", _png(2)), ("b.png", _png(3)), ("broken.png", b"nope")]
    kept = keep_uploads(uploads)
    assert kept == keep_uploads(uploads)  # the same uploads: the same folder (a double click is one job)
    folder = uploads_dir() / kept
    assert sorted(p.name for p in folder.iterdir()) == ["b (2).png", "b.png", "broken.png", "evil.png"]
    queue = JobQueue()
    job = queue.submit("library-import", import_params("spring", "Spring", kept, None), owner="ann")
    assert run_job_here(queue, job.id) == DONE, queue.get(job.id).error
    result = queue.get(job.id).result
    assert result["added"] == 3 and [s[0] for s in result["skipped"]] == ["broken.png"]
    assert LibraryManager().get("spring").count == 3
    assert not folder.exists()  # the kept uploads are removed once imported


def test_a_failed_import_under_a_new_name_leaves_no_library():
    kept = keep_uploads([("a.png", b"not a picture")])
    queue = JobQueue()
    job = queue.submit("library-import", import_params("empty", "", kept, None), owner="ann")
    assert run_job_here(queue, job.id) == FAILED
    assert queue.get(job.id).error
    assert "empty" not in {i.name for i in LibraryManager().list()}


def test_a_folder_outside_the_allowed_folders_fails_the_job(tmp_path):
    (tmp_path / "x").mkdir()
    queue = JobQueue()
    job = queue.submit("library-import", import_params("outside", "", None, str(tmp_path / "x")), owner="ann")
    assert run_job_here(queue, job.id) == FAILED
    assert "MOSAIC_ALLOWED_FOLDERS" in queue.get(job.id).error
