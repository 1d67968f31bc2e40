"""A failed job keeps the user's message and, apart, the technical detail for whoever sets the studio up."""

from __future__ import annotations

from core.engines.sd.request import SDRequest
from core.jobs import FAILED, JobQueue
from core.jobs.requests import encode_request
from core.jobs.worker import run_job_here


def test_a_model_missing_offline_fails_in_plain_words_with_the_command_kept_apart(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    queue = JobQueue()
    request = SDRequest(prompt="a red sneaker", model="someone/not-a-real-model", steps=2, width=64, height=64)
    job = queue.submit("generate", encode_request("sd", request), owner="ann")
    assert run_job_here(queue, job.id) == FAILED
    failed = queue.get(job.id)
    assert "huggingface-cli" not in failed.error and "HF_HUB_OFFLINE" not in failed.error
    assert "huggingface-cli download someone/not-a-real-model" in failed.result["error_detail"]
