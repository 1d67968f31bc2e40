"""The originality check as a job: the same result as checking directly, saved with the job; clear failures."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
from PIL import Image

from core.analyzer import AnalysisResult, Analyzer, AnalyzerSettings
from core.analyzer.jobs import analysis_params, load_job_analysis, run_analysis_job
from core.analyzer.verdict import verdict_from_analysis
from core.engines.base import GeneratedImage
from core.errors import BadInputError
from core.jobs import CANCELLED, DONE, FAILED, JobQueue
from core.jobs.context import JobContext
from core.jobs.requests import save_upload_image
from core.jobs.worker import execute, run_job_here
from core.libraries import LibraryManager
from core.store import Store
from tests.analyzer.analyzer_synth import collage, make_library

QUICK = AnalyzerSettings(work_size=64, scales=(8, 16))


@pytest.fixture
def library() -> list[np.ndarray]:
    """A small photo library with its index built (both the job and the direct check then find it ready)."""
    arrays = make_library(LibraryManager(), "shots", count=12)
    Analyzer(LibraryManager(), QUICK).index("shots")
    return arrays


def assert_same_check(a: AnalysisResult, b: AnalysisResult) -> None:
    """Equal in everything but the time it took."""
    for field in fields(AnalysisResult):
        left, right = getattr(a, field.name), getattr(b, field.name)
        if field.name == "timings":
            assert set(left) == set(right)
        elif isinstance(left, np.ndarray):
            assert left.dtype == right.dtype and np.array_equal(left, right), field.name
        elif field.name == "analysed_image":
            assert np.array_equal(np.asarray(left), np.asarray(right))
        elif field.name == "scales":
            assert list(left) == list(right)
            for patch in left:
                assert left[patch].to_json() == right[patch].to_json()
                assert np.array_equal(left[patch].source_map, right[patch].source_map)
                assert np.array_equal(left[patch].similarity, right[patch].similarity)
        else:
            assert left == right, field.name


def test_a_saved_image_checked_by_a_job_gives_the_direct_result(library):
    image = collage(library, seed=5).image
    record = Store().save([GeneratedImage(image=image, seed=1, engine="sd", params={"prompt": "x", "model": "m"})])[0]
    queue = JobQueue()
    params = analysis_params("shots", settings=QUICK, record_id=record.id, label="a collage")
    job = queue.submit("analyze", params, owner="ann", title="a collage against shots")
    assert run_job_here(queue, job.id) == DONE
    job = queue.get(job.id)
    saved = load_job_analysis(job)
    direct = Analyzer(LibraryManager(), QUICK).analyze(Store().image(record), "shots")
    assert direct.sources  # the collage borrows from the library: a real result to compare
    assert_same_check(saved, direct)
    assert job.result == {
        "analysis": "analysis",
        "originality": direct.originality,
        "copy_risk": direct.copy_risk,
        "summary": direct.summary,
        "verdict": verdict_from_analysis(direct).to_json(),  # not a studio image: the library search's verdict
    }
    assert job.progress == 1.0 and f"originality {direct.originality} / 100" in job.message


def test_an_uploaded_picture_checked_by_a_job_gives_the_direct_result(library):
    picture = Image.fromarray(library[2])  # a near copy of a library picture
    queue = JobQueue()
    params = analysis_params("shots", settings=QUICK, upload=save_upload_image(picture), label="shot.png")
    job = queue.submit("analyze", params, owner="ann")
    assert run_job_here(queue, job.id) == DONE
    saved = load_job_analysis(queue.get(job.id))
    assert saved.near_copy.is_copy and saved.copy_risk == "high"
    assert_same_check(saved, Analyzer(LibraryManager(), QUICK).analyze(picture, "shots"))


def test_a_bad_library_fails_the_job_with_the_plain_message():
    record = Store().save([GeneratedImage(image=Image.new("RGB", (32, 32), (9, 9, 9)), seed=1, engine="sd",
                                          params={"prompt": "x", "model": "m"})])[0]
    queue = JobQueue()
    job = queue.submit("analyze", analysis_params("nope", settings=QUICK, record_id=record.id), owner="ann")
    assert run_job_here(queue, job.id) == FAILED
    with pytest.raises(BadInputError) as direct:
        Analyzer(LibraryManager(), QUICK).analyze(Store().image(record), "nope")
    job = queue.get(job.id)
    assert job.error == str(direct.value) and "nope" in job.error
    assert "went wrong" not in job.error and "Error" not in job.error
    with pytest.raises(BadInputError, match="missing or damaged"):
        load_job_analysis(job)


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"library": "shots", "space": "pixel", "settings": None, "record_id": "gone"}, "No saved image"),
        ({"library": "shots", "space": "pixel", "settings": None, "upload": "../mosaic.db"}, "uploads folder"),
        ({"library": "shots", "space": "latent", "model": None, "settings": None, "upload": "x.png"}, "needs a"),
        ({"library": "shots", "space": "pixel", "settings": {"work_size": "big"}, "upload": "x.png"}, "work_size"),
        ({"library": "shots", "space": "pixel", "settings": {"pickle": 1}, "upload": "x.png"}, "unknown setting"),
    ],
)
def test_unusable_parameters_fail_with_a_plain_message(params, words):
    queue = JobQueue()
    job = queue.submit("analyze", params, owner="ann")
    assert run_job_here(queue, job.id) == FAILED
    assert words in queue.get(job.id).error


def test_analysis_params_need_exactly_one_image_and_a_model_for_latents():
    with pytest.raises(BadInputError, match="one image"):
        analysis_params("shots")
    with pytest.raises(BadInputError, match="one image"):
        analysis_params("shots", record_id="a", upload="b.png")
    with pytest.raises(BadInputError, match="model"):
        analysis_params("shots", space="latent", record_id="a")
    assert analysis_params("shots", space="latent", model="m", record_id="a")["model"] == "m"


def test_a_cancelled_check_ends_cancelled_without_a_result(library):
    queue = JobQueue()
    params = analysis_params("shots", settings=QUICK, upload=save_upload_image(Image.fromarray(library[0])))
    job = queue.submit("analyze", params, owner="ann")
    claimed = queue.claim_id(job.id, "here:1:cpu:test")
    assert queue.cancel(job.id).cancel_requested
    assert execute(queue, claimed, "here:1:cpu:test") == CANCELLED
    job = queue.get(job.id)
    assert job.state == CANCELLED and "analysis" not in job.result


def test_running_a_finished_check_again_keeps_its_saved_result(library, monkeypatch):
    queue = JobQueue()
    params = analysis_params("shots", settings=QUICK, upload=save_upload_image(Image.fromarray(library[1])))
    job = queue.submit("analyze", params, owner="ann")
    assert run_job_here(queue, job.id) == DONE
    job = queue.get(job.id)
    first = load_job_analysis(job)

    def no_second_check(*_args, **_kwargs):
        raise AssertionError("the check ran again")

    monkeypatch.setattr(Analyzer, "analyze", no_second_check)
    message = run_analysis_job(JobContext(queue, job))
    assert message == job.message
    assert_same_check(first, load_job_analysis(job))
