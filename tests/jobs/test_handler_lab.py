"""Creativity Lab experiments as jobs: results saved in the job's folder, kept across a retry."""

from __future__ import annotations

from core.jobs import DONE, FAILED, JobQueue
from core.jobs.worker import run_job_here
from core.lab.jobs import compare_params, lab_folder, load_lab_result, locality_params


def test_locality_makes_one_image_per_patch_size_and_a_retry_keeps_the_finished_ones():
    queue = JobQueue()
    job = queue.submit("lab", locality_params(7), owner="ann")
    assert run_job_here(queue, job.id) == DONE
    rows = load_lab_result(queue.get(job.id))["rows"]
    assert [r["preset"] for r in rows] == ["fine", "balanced", "coarse", "whole-image"]
    assert all(r["image"] and r["sources"] >= 1 for r in rows)
    assert rows[-1]["sources"] <= rows[0]["sources"]  # whole-image patches copy from fewer pictures
    # a retry of the same job (after a crash) makes only what is missing
    first = lab_folder(job.id) / "locality-fine.png"
    stamp = first.stat().st_mtime_ns
    again = queue.submit("lab", locality_params(7), owner="ann")
    folder = lab_folder(again.id)
    (folder / "lab.json").write_text((lab_folder(job.id) / "lab.json").read_text())
    for row in rows:
        (folder / f"locality-{row['preset']}.png").write_bytes(
            (lab_folder(job.id) / f"locality-{row['preset']}.png").read_bytes()
        )
    assert run_job_here(queue, again.id) == DONE
    assert first.stat().st_mtime_ns == stamp
    assert [r["preset"] for r in load_lab_result(queue.get(again.id))["rows"]] == [r["preset"] for r in rows]


def test_compare_puts_the_network_next_to_the_machine():
    queue = JobQueue()
    job = queue.submit("lab", compare_params(3, 2), owner="ann")
    assert run_job_here(queue, job.id) == DONE, queue.get(job.id).error
    rows = load_lab_result(queue.get(job.id))["rows"]
    assert len(rows) == 2 and all(r["network"] and r["machine"] for r in rows)
    assert all(-1.0 <= r["r"] <= 1.0 for r in rows)


def test_an_unknown_experiment_fails_with_a_plain_message():
    queue = JobQueue()
    job = queue.submit("lab", {"experiment": "teleport"}, owner="ann")
    assert run_job_here(queue, job.id) == FAILED
    assert "Unknown Lab experiment" in queue.get(job.id).error
