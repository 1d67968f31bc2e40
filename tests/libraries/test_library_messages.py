"""Library messages in the user's words: the library's title (never its internal name), real plurals ("1 picture",
"3 pictures", never "picture(s)"), why nothing was added, no raw ``..`` paths; and the progress an import reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import BadInputError
from core.jobs import DONE, FAILED, JobQueue
from core.jobs.worker import run_job_here
from core.libraries import LibraryManager, sources
from core.libraries.jobs import added_message, import_params, keep_uploads
from core.words import plural

TITLE = "Spring catalogue 2026"


def _refusal(action) -> str:
    with pytest.raises(BadInputError) as caught:
        action()
    return str(caught.value)


def test_plural_counts_in_words():
    words = [plural(n, "picture") for n in (0, 1, 3, 1797)]
    assert words == ["0 pictures", "1 picture", "3 pictures", "1,797 pictures"]
    assert plural(2, "more file", "more files") == "2 more files"
    assert added_message(1, TITLE) == f"Added 1 picture to “{TITLE}”."
    assert added_message(3, TITLE, skipped=1) == (
        f"Added 3 pictures to “{TITLE}”. 1 file could not be used: see the list below."
    )
    assert added_message(2, TITLE, skipped=2).endswith("2 files could not be used: see the list below.")


def test_nothing_added_names_the_title_says_why_and_what_to_do(manager: LibraryManager) -> None:
    one = _refusal(lambda: manager.create_from_files("spring-catalogue", [("notes.png", b"nope")], title=TITLE))
    assert one.startswith(f"No pictures were added to “{TITLE}”: notes.png could not be used (")
    assert "spring-catalogue" not in one and "(s)" not in one
    assert "supported format" in one  # why, with what to use instead
    four = [(f"bad{i}.png", b"nope") for i in range(4)]
    many = _refusal(lambda: manager.create_from_files("spring-catalogue", four, title=TITLE))
    assert f"“{TITLE}”: none of the 4 files could be used" in many
    assert "bad0.png" in many and "bad2.png" in many and "bad3.png" not in many and "and 1 more file)" in many
    assert "Replace them with pictures and try again." in many and "(s)" not in many
    none = _refusal(lambda: manager.create_from_files("spring-catalogue", [(".DS_Store", b"x")], title=TITLE))
    assert none.startswith(f"No pictures were added to “{TITLE}”: no picture files were found. Choose PNG, JPEG")
    assert "spring-catalogue" not in {i.name for i in manager.list()}  # nothing left behind


def test_an_existing_library_is_named_by_its_title(manager: LibraryManager, png) -> None:
    manager.create_from_files("spring-catalogue", [("a.png", png())], title=TITLE)
    added_nothing = _refusal(lambda: manager.add_files("spring-catalogue", [("b.png", b"")]))
    assert added_nothing.startswith(f"No pictures were added to “{TITLE}”: b.png could not be used (the file is empty")
    taken = _refusal(lambda: manager.create("spring-catalogue", title=TITLE))
    assert taken.startswith(f"A library called “{TITLE}” already exists")
    gone = _refusal(lambda: manager.remove_items("spring-catalogue", ["nope"]))
    assert gone.startswith(f"“{TITLE}” has no picture with the id nope") and "item(s)" not in gone
    assert "“Handwritten digits” is a built-in library" in _refusal(lambda: manager.delete("digits"))
    assert "“Handwritten digits” is a built-in library" in _refusal(lambda: manager.add_files("digits", [("a", b"")]))
    manager.create("empty", title="Empty one")
    assert "“Empty one” has no pictures yet" in _refusal(lambda: manager.load("empty", 8))


def test_zip_members_pointing_outside_are_named_cleanly(manager: LibraryManager, png, make_zip, tmp_path) -> None:
    data = make_zip({"../../escape.png": png(), "shots/../../../x/evil.png": png(), "C:\\evil2.png": png(),
                     "good.png": png()})
    report = manager.create_from_zip("zipped", data, title="Zipped")
    assert report.added == 1
    skipped = dict(report.skipped)
    assert set(skipped) == {"escape.png", "shots/x/evil.png", "evil2.png"}
    assert set(skipped.values()) == {sources.OUTSIDE_ZIP}
    assert sources.OUTSIDE_ZIP == "this file inside the zip points outside it and was skipped for safety"
    # the same through a zip on disk (the page's and the command line's way), and uploaded names
    (tmp_path / "in.zip").write_bytes(data)
    report = manager.add_paths("zipped", [tmp_path / "in.zip"])
    assert not any(".." in name for name, _ in report.skipped)
    report = manager.add_files("zipped", [("../up.png", png()), ("fine.png", png())])
    assert report.skipped == [("up.png", sources.OUTSIDE_UPLOAD)]
    assert sources.shown_name("..\\..\\a/../b.png") == "a/b.png" and sources.shown_name("../..") == "(unnamed file)"


def test_imports_and_preparations_report_moving_progress(manager: LibraryManager, png, make_zip, tmp_path) -> None:
    folder = tmp_path / "pictures"
    (folder / "shoes").mkdir(parents=True)
    for i in range(3):
        (folder / "shoes" / f"s{i}.png").write_bytes(png((i * 40, 10, 10)))
    (folder / ".DS_Store").write_bytes(b"x")  # hidden: neither counted nor tried
    (tmp_path / "more.zip").write_bytes(make_zip({"a.png": png(), "b/c.png": png(), "__MACOSX/._a.png": b"x"}))
    assert sources.count_files(folder) == 3 and sources.count_files(tmp_path / "more.zip") == 2
    seen: list[tuple[int, int]] = []
    report = manager.add_paths("moving", [folder, tmp_path / "more.zip"], progress=lambda d, e: seen.append((d, e)))
    assert report.added == 5
    assert seen == [(i, 5) for i in range(1, 6)]
    built: list[tuple[int, int]] = []
    manager.ensure("faces", progress=lambda d, e: built.append((d, e)))
    assert [d for d, _ in built] == list(range(1, 201)) and {e for _, e in built} == {200}


def _png_uploads(png, names: list[str]) -> str:
    return keep_uploads([(name, png((i * 30, 0, 0)) if name.endswith(".png") else b"nope") for i, name in
                        enumerate(names)])


def test_import_jobs_speak_of_the_title_with_real_plurals(png) -> None:
    queue = JobQueue()
    kept = _png_uploads(png, ["a.png", "b.png", "notes.txt"])
    job = queue.submit("library-import", import_params("summer", "Summer shoes", kept, None), owner="ann")
    assert run_job_here(queue, job.id) == DONE, queue.get(job.id).error
    done = queue.get(job.id)
    assert done.message == "Added 2 pictures to “Summer shoes”. 1 file could not be used: see the list below."
    assert done.result["title"] == "Summer shoes" and [s[0] for s in done.result["skipped"]] == ["notes.txt"]
    kept = _png_uploads(png, ["x.txt", "y.txt"])
    job = queue.submit("library-import", import_params("broken", "Broken one", kept, None), owner="ann")
    assert run_job_here(queue, job.id) == FAILED
    failed = queue.get(job.id)
    assert failed.error.startswith("No pictures were added to “Broken one”: none of the 2 files could be used")
    assert "broken'" not in failed.error and "(s)" not in failed.error
    assert sorted(s[0] for s in failed.result["skipped"]) == ["x.txt", "y.txt"]  # the page lists them


def test_preparing_a_builtin_library_is_a_job_with_a_plain_outcome() -> None:
    from core.libraries.jobs import prepare_params

    queue = JobQueue()
    job = queue.submit("library-import", prepare_params("faces"), owner="ann")
    assert run_job_here(queue, job.id) == DONE, queue.get(job.id).error
    done = queue.get(job.id)
    assert done.message == "Faces and backgrounds is ready: 200 pictures."
    assert done.result["prepared"] is True
    assert LibraryManager().get("faces").built


def test_no_message_shows_a_raw_parent_path(manager: LibraryManager, png, make_zip, data_dir: Path) -> None:
    data = make_zip({"../a.png": b"", "../../b.png": png()})
    message = _refusal(lambda: manager.create_from_zip("nothing", data, title="Nothing"))
    assert ".." not in message and "a.png" in message and "b.png" in message
