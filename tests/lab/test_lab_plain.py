"""The Creativity Lab's figures and plain readings: likeness to the closest library picture, the plain table."""

from __future__ import annotations

import numpy as np
import pytest

from core.lab.compare import ComparisonTable, pearson_r
from core.lab.jobs import closest_likeness


def test_closest_likeness_is_the_highest_pearson_r_over_the_library():
    rng = np.random.default_rng(0)
    library = rng.normal(size=(30, 1, 8, 8))
    picture = library[4, 0] * 0.7 + rng.normal(size=(8, 8)) * 0.4
    likeness, index = closest_likeness(picture, library)
    by_loop = [pearson_r(picture, item) for item in library]
    assert index == int(np.argmax(by_loop)) == 4
    assert likeness == pytest.approx(max(by_loop))


def test_a_copy_is_likeness_1_and_a_blank_picture_is_0():
    rng = np.random.default_rng(1)
    library = rng.normal(size=(10, 1, 4, 4))
    likeness, index = closest_likeness(library[7] * 3 + 1, library)  # brighter and more contrasted: still a copy
    assert likeness == pytest.approx(1.0) and index == 7
    assert closest_likeness(np.zeros((4, 4)), library)[0] == 0.0
    library[2] = 0.5  # a blank library picture is unrelated to anything
    assert closest_likeness(np.ones((4, 4)), library)[0] == 0.0


def test_closest_likeness_refuses_pictures_of_another_size():
    from core.errors import BadInputError

    with pytest.raises(BadInputError):
        closest_likeness(np.zeros((4, 4)), np.zeros((3, 1, 8, 8)))


def test_locality_reading_follows_the_figures():
    from pages.parts.lab_locality import caption, reading

    rows = [
        {"preset": "fine", "closest": 0.52},
        {"preset": "balanced", "closest": 0.87},
        {"preset": "coarse", "closest": 0.93},
        {"preset": "whole-image", "closest": 1.0},
    ]
    text = reading(rows)
    assert "small patches the closest library picture is 0.52 alike: a new digit" in text
    assert "whole-picture patches it is 1.00: the machine copied one library picture" in text
    assert "The bigger the patches, the closer the picture stays to one library picture." in text
    assert caption(rows[0]) == "Small patches: 0.52" and caption(rows[3]) == "Whole picture: 1.00"
    rows[1]["closest"] = 0.95  # out of order: the reading must not claim the order
    assert "do not follow the order" in reading(rows) and "The bigger the patches" not in reading(rows)
    assert caption({"preset": "fine"}) == "Small patches"  # an older result without the figure


def test_plain_table_and_reading():
    from pages.parts.lab_comparison import BEATS, MACHINE, TYPICAL, plain_reading, plain_rows

    table = ComparisonTable(
        kinds=["is", "ls", "els", "bbels"],
        seeds=[0, 1, 2, 3],
        class_labels=[0, 1, 2, 3],
        r={
            "is": [0.5, 0.6, 0.1, 0.7],
            "ls": [0.8, 0.7, 0.6, 0.9],
            "els": [0.1, 0.0, 0.2, 0.3],
            "bbels": [0.9, 0.8, 0.7, 0.95],
        },
        steps=20,
        patch_sizes=[3] * 20,
    )
    rows = plain_rows(table)
    assert [r[MACHINE] for r in rows] == [
        "Copies whole pictures",
        "Patches at their own place",
        "Patches from anywhere",
        "Patches from anywhere, aware of the border",
    ]
    assert [r[TYPICAL] for r in rows] == ["0.55", "0.75", "0.15", "0.85"]
    assert [r[BEATS] for r in rows] == ["—", "4 of 4", "1 of 4", "4 of 4"]
    text = plain_reading(table)
    assert "the closer to 1, the better the machine predicts the network" in text
    assert "“patches from anywhere, aware of the border” predicts the network best" in text
    assert "**0.85**, closer than copying on **4 of 4** pictures" in text
    assert "“Patches from anywhere” alone does poorly (0.15)" in text


def test_the_patch_size_job_reports_moving_progress_in_plain_words(monkeypatch):
    import re
    import threading
    import time

    from core.jobs import DONE, JobQueue
    from core.jobs import worker as worker_module
    from core.jobs.worker import run_job_here
    from core.lab.jobs import locality_params

    # the job's words reach the queue at each heartbeat (0.5 s): look more often than the steps change, so the
    # test does not depend on how fast this machine runs a step (it failed once under a loaded CI run)
    monkeypatch.setattr(worker_module, "HEARTBEAT_S", 0.02)

    queue = JobQueue()
    job = queue.submit("lab", locality_params(3), owner="ann")
    states: list[str] = []
    worker = threading.Thread(target=lambda: states.append(run_job_here(queue, job.id)))
    worker.start()
    seen: list[tuple[float, str]] = []
    while worker.is_alive():
        record = queue.get(job.id)
        if record.message and (not seen or seen[-1] != (record.progress, record.message)):
            seen.append((float(record.progress or 0.0), record.message))
        time.sleep(0.05)
    worker.join()
    assert states == [DONE]
    running = [(p, m) for p, m in seen if not m.startswith("Done")]
    assert len({m for _, m in running}) >= 3, seen  # it moves: several messages while it works
    assert any(re.search(r"Picture \d of 4: .*, step \d+ of 20…", m) for _, m in running), seen
    assert any(0.0 < p < 1.0 for p, _ in running), seen
    fractions = [p for p, _ in running]
    assert fractions == sorted(fractions), seen
    assert not any(re.search(r"\b(fine|balanced|coarse|whole-image|bbels)\b", m, re.I) for _, m in seen), seen
