"""Progress of long library work in words: count, recent rate and time left (``core.libraries.progress``),
shown by the CLI's ``libraries add``, the import jobs and the preparation of a library's search data."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from PIL import Image

from core.cli import main
from core.jobs import JobQueue
from core.libraries import LibraryManager
from core.libraries.jobs import import_params, run_import_job
from core.libraries.progress import RateMeter, rate_text, time_left
from tests.libraries.recording import RecordingContext


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_time_left_and_rates_read_as_words():
    assert time_left(0) == "a few seconds left" and time_left(9.9) == "a few seconds left"
    assert time_left(41) == "about 40 seconds left" and time_left(70) == "about a minute left"
    assert time_left(5 * 60 + 10) == "about 5 minutes left" and time_left(3 * 3600) == "about 3 hours left"
    assert time_left(3 * 86400) == "about 3 days left"
    assert rate_text(310.4) == "310 a second" and rate_text(4.52) == "4.5 a second"
    assert rate_text(0.2) == "12 a minute" and rate_text(0.01) == "36 an hour"
    assert rate_text(1e-5) == "less than 1 an hour"
    with pytest.raises(ValueError):
        time_left(float("nan"))


def test_the_meter_settles_then_gives_the_rate_and_the_time_left():
    clock = FakeClock()
    meter = RateMeter("picture", clock=clock)
    assert meter.update(1, 100_000) == "1 of 100,000 pictures"  # no rate from a moment
    clock.now += 10
    assert meter.update(3_100, 100_000) == "3,100 of 100,000 pictures · 310 a second · about 5 minutes left"
    assert meter.update(3_100, 2_000) == "3,100 of 3,100 pictures"  # expected below done: done, nothing left
    assert meter.update(100_000, 100_000) == "100,000 of 100,000 pictures"


def test_the_rate_follows_a_slowdown_within_about_half_a_minute():
    clock = FakeClock()
    meter = RateMeter("file", clock=clock)
    done = 0
    for _ in range(60):  # 100 a second for a minute
        clock.now += 1
        done += 100
        meter.update(done, 1_000_000)
    assert meter.rate == pytest.approx(100, rel=1e-6)
    for _ in range(30):  # then 10 a second for half a minute
        clock.now += 1
        done += 10
        meter.update(done, 1_000_000)
    assert 10 < meter.rate < 50  # most of the way to the new rate, not stuck at the old average
    for _ in range(180):
        clock.now += 1
        done += 10
        text = meter.update(done, 1_000_000)
    assert meter.rate == pytest.approx(10, rel=0.05)
    assert text.endswith("10 a second · about 27 hours left"), text


def _picture(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)


@pytest.fixture
def folder(tmp_path):
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for i in range(40):
        Image.fromarray(_picture(i)).save(pictures / f"p{i:02d}.png")
    return pictures


def test_reading_a_library_into_memory_reports_progress_until_it_is_cached(isolated_data_dir, folder):
    manager = LibraryManager()
    manager.add_paths("forty", [folder])
    seen: list[tuple[int, int]] = []
    manager.load("forty", 16, progress=lambda d, e: seen.append((d, e)))
    assert seen == [(32, 40), (40, 40)]
    seen.clear()
    manager.load("forty", 16, progress=lambda d, e: seen.append((d, e)))  # cached: nothing to read
    assert seen == []


def test_cli_add_shows_a_moving_line_on_stderr_and_keeps_json_clean(isolated_data_dir, folder, capsys):
    assert main(["libraries", "add", "forty", str(folder)]) == 0
    captured = capsys.readouterr()
    assert "added 40 pictures to forty" in captured.out
    lines = [part.strip() for part in captured.err.split("\r") if part.strip()]
    assert lines and lines[-1] == "Reading: 40 of 40 pictures", captured.err
    assert all(re.fullmatch(r"Reading: \d+ of 40 pictures( · .* a (second|minute) · .* left)?", t) for t in lines)
    assert main(["libraries", "add", "again", str(folder), "--json"]) == 0
    captured = capsys.readouterr()
    assert "Reading" not in captured.err and '"added": 40' in captured.out


def test_import_jobs_and_library_preparation_report_counts_in_words(isolated_data_dir, folder):
    from core.analyzer import Analyzer
    from core.analyzer.settings import AnalyzerSettings

    inside = shutil.copytree(folder, isolated_data_dir / "pictures")  # a folder the pages may read
    queue = JobQueue()
    job = queue.submit("library-import", import_params("forty", "Forty", None, str(inside)), owner="ann")
    context = RecordingContext(queue, queue.get(job.id))
    assert run_import_job(context) == "Added 40 pictures to “Forty”."
    messages = [m for _, m in context.reports]
    assert messages[-1] == "Reading: 40 of 40 pictures", messages
    assert all(
        re.fullmatch(r"Reading: \d+ of 40 pictures( · .* a (second|minute) · .* left)?", m) for m in messages[1:]
    ), messages
    seen: list[tuple[float, str]] = []
    analyzer = Analyzer(LibraryManager(), settings=AnalyzerSettings(work_size=32, scales=(8,)))
    analyzer.index("forty", on_progress=lambda f, m: seen.append((f, m)))
    reading = [m for _, m in seen if m.startswith("Reading the library's pictures: ")]
    preparing = [m for _, m in seen if m.startswith("Preparing the library: ")]
    assert reading[-1] == "Reading the library's pictures: 40 of 40 pictures", seen
    assert preparing[-1] == "Preparing the library: 40 of 40 pictures", seen
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
