"""AppTest for every page: they render, generate, show the mosaic, list the gallery, import libraries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.libraries import LibraryManager
from tests.jobs.jobs_helpers import last_batch, run_queued_jobs
from tests.signin import signed_in

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 240


def app() -> AppTest:
    at = signed_in(AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT))
    at.run()
    assert not at.exception, at.exception
    return at


def goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [t.value for t in at.title]
    parts += [i.value for i in at.info] + [e.value for e in at.error] + [s.value for s in at.subheader]
    return "\n".join(str(p) for p in parts)


def generate_small(at: AppTest, library: str = "faces", count: int = 1) -> AppTest:
    goto(at, "generate")
    at.selectbox(key="gen_library").set_value(library).run()
    at.select_slider(key="gen_size").set_value(16)
    at.slider(key="gen_count").set_value(count)
    at.run()
    assert not at.error, [e.value for e in at.error]
    at.button(key="gen_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run_queued_jobs()  # the page submitted a generation job; a worker runs it
    at.run()
    assert not at.error, [e.value for e in at.error]
    return at


def test_home_explains_and_starts():
    at = app()
    body = texts(at)
    assert "Mosaic Studio" in body
    assert "Start in three steps" in body


def test_generate_page_shows_estimate_and_makes_images():
    at = generate_small(app(), count=2)
    assert len(last_batch(at)) == 2
    assert "Estimated time" in texts(at)
    assert "Results" in texts(at)


def _draft_settings(tmp_path):
    """(library, size, machine) where the planner keeps the patch-index draft, and one where it runs exact:
    a library of 12 pictures, which a candidate-image draft would keep whole."""
    from core.engines.local_score import LocalScoreEngine, LocalScoreRequest

    folder = tmp_path / "tiny-pictures"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8)).save(folder / f"p{i:02d}.png")
    manager = LibraryManager()
    manager.create("tiny", title="Tiny set")
    assert manager.add_folder("tiny", folder).added == 12
    engine = LocalScoreEngine(device="cpu")
    drafts = {}
    for library, size, machine in (("digits", 16, "els"), ("tiny", 16, "els")):
        request = LocalScoreRequest(library=library, size=size, machine=machine, approximate=True, count=2)
        drafts[engine.plan(request)["draft"]] = (library, size, machine)
    return drafts["index"], drafts[None]


def test_generate_page_fast_draft_lowers_the_estimate_and_is_recorded(tmp_path):
    from core.score import ivf

    ivf.INDEXES.clear()  # indexes of earlier tests in this process: this page must prepare its own
    (library, size, machine), (exact_library, exact_size, exact_machine) = _draft_settings(tmp_path)
    at = goto(app(), "generate")
    at.selectbox(key="gen_library").set_value(library).run()
    at.selectbox(key="gen_machine").set_value(machine).run()
    at.select_slider(key="gen_size").set_value(size).run()

    def caption() -> str:
        return next(c.value for c in at.caption if "Estimated time" in c.value)

    def estimate() -> int:
        return int(caption().split("about ")[1].split(" s")[0])

    exact_seconds = estimate()
    assert "first fast draft" not in caption() and "GB of memory" in caption()
    at.toggle(key="gen_approximate").set_value(True).run()
    assert estimate() <= exact_seconds
    assert "The first fast draft with this library and size takes about" in texts(at)
    at.button(key="gen_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run_queued_jobs()  # the page submitted a generation job; a worker runs it
    at.run()
    from core.store import Store

    record = Store().get(last_batch(at)[0])
    assert record.params["approximate"] is True and record.params["approximate_method"] == "patch index"
    # where a fast draft would not win, the page says the exact images are made
    at.selectbox(key="gen_library").set_value(exact_library).run()
    at.selectbox(key="gen_machine").set_value(exact_machine).run()
    at.select_slider(key="gen_size").set_value(exact_size).run()
    assert "would not be quicker or lighter at this setting" in caption()
    assert "first fast draft" not in caption()


def test_generate_page_reports_bad_class_clearly():
    at = goto(app(), "generate")
    at.selectbox(key="gen_library").set_value("digits").run()
    at.selectbox(key="gen_label").set_value("7").run()
    assert not at.error
    at.selectbox(key="gen_machine").set_value("is").run()
    assert not at.exception


def test_mosaic_page_empty_then_with_an_image():
    at = goto(app(), "mosaic")
    assert "No generated images yet" in texts(at)
    generate_small(at)
    record_id = last_batch(at)[0]
    at.switch_page("pages/mosaic.py")
    at.query_params["id"] = record_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    body = texts(at)
    assert "Where it comes from" in body
    assert "library pictures" in body
    at.slider[0].set_value(3).run()
    assert not at.exception
    assert "Prediction at step 3" in texts(at)


def test_a_link_to_a_deleted_image_says_so_on_the_mosaic_and_check_pages():
    """A shared link (?id=…) to an image deleted since: a plain warning, the latest image instead, no error."""
    from core.store import Store

    at = generate_small(app(), count=2)
    gone, kept = last_batch(at)
    Store().delete(gone)
    at.switch_page("pages/mosaic.py")
    at.query_params["id"] = gone
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("no longer exists" in w.value for w in at.warning)
    assert "Where it comes from" in texts(at)
    at.switch_page("pages/analyze.py")
    at.query_params["id"] = gone
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("no longer exists" in w.value for w in at.warning)
    at.query_params["id"] = kept
    at.run()
    assert not any("no longer exists" in w.value for w in at.warning)


def test_gallery_lists_saved_images_after_restart():
    at = goto(app(), "gallery")
    assert "Nothing here yet" in texts(at)
    generate_small(at, count=2)
    fresh = goto(app(), "gallery")  # a new session: images come from the store
    assert "2 images saved" in texts(fresh)


def test_gallery_delete_asks_first_and_keep_keeps():
    at = generate_small(app(), count=2)
    first, second = last_batch(at)
    goto(at, "gallery")
    at.button(key=f"x_{first}").click().run()
    assert "cannot be undone" in " ".join(w.value for w in at.warning)
    assert "2 images saved" in texts(at)  # nothing deleted yet
    at.button(key=f"xn_{first}").click().run()
    assert not at.warning and "2 images saved" in texts(at)
    at.button(key=f"x_{second}").click().run()
    at.button(key=f"xy_{second}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "1 image saved" in texts(at)


def test_libraries_page_lists_builtins_and_imports_a_folder(isolated_data_dir):
    folder = isolated_data_dir / "brand"  # the page reads folders inside the data folder (or MOSAIC_ALLOWED_FOLDERS)
    (folder / "shoes").mkdir(parents=True)
    (folder / "bags").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / "shoes" / f"s{i}.png")
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / "bags" / f"b{i}.jpg")
    (folder / "bags" / "broken.png").write_bytes(b"not an image")
    at = goto(app(), "libraries")
    titles = " ".join(e.label for e in at.expander)
    assert "Faces" in titles or "faces" in titles.lower()
    at.text_input[0].set_value("Spring catalogue")
    at.text_input[1].set_value(str(folder))
    at.button(key="create_library").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert run_queued_jobs() == ["done"]  # the page submitted an import job; a worker runs it
    at.run()
    assert any("Added 6 pictures" in s.value for s in at.success)
    assert any("broken\\.png" in m.value for m in at.markdown)  # file names are escaped Markdown (core.html.md)
    assert any("Spring catalogue" in e.label for e in at.expander)


def test_libraries_page_imports_a_parquet_dataset_with_its_class_names_as_groups(isolated_data_dir):
    import io

    from datasets import ClassLabel, Dataset, Features
    from datasets import Image as ImageFeature

    rng = np.random.default_rng(1)
    pictures = []
    for _ in range(4):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)).save(buffer, format="PNG")
        pictures.append({"bytes": buffer.getvalue(), "path": None})
    isolated_data_dir.mkdir(parents=True, exist_ok=True)
    path = isolated_data_dir / "catalogue.parquet"
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=["boots", "bags"])})
    Dataset.from_dict({"image": pictures, "label": [0, 1, 0, 1]}, features=features).to_parquet(str(path))
    at = goto(app(), "libraries")
    at.text_input[0].set_value("Catalogue dataset")
    at.text_input[1].set_value(str(path))
    at.button(key="create_library").click().run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    assert run_queued_jobs() == ["done"]
    at.run()
    assert any("Added 4 pictures" in s.value for s in at.success)
    info = next(i for i in LibraryManager().list() if i.title == "Catalogue dataset")
    assert sorted(info.label_names) == ["bags", "boots"] and info.count == 4


def test_libraries_page_lists_a_stopped_import_and_goes_on_with_it_or_discards_it(isolated_data_dir):
    class Stop(Exception):
        pass

    def stop_after(count: int):
        def progress(done: int, expected: int) -> None:
            if done >= count:
                raise Stop

        return progress

    def folder(name: str, count: int) -> Path:
        path = isolated_data_dir / name
        path.mkdir(parents=True)
        for i in range(count):
            Image.fromarray(np.full((12, 12, 3), i * 10, dtype=np.uint8)).save(path / f"p{i}.png")
        return path

    manager = LibraryManager()
    shoot = folder("autumn_[shoot]", 12)
    with pytest.raises(Stop):
        manager.add_paths("autumn", [shoot], title="Autumn *look*", progress=stop_after(5))
    at = goto(app(), "libraries")
    assert any("Imports that stopped part way" in s.value for s in at.subheader)
    [line] = [m.value for m in at.markdown if "then it stopped" in m.value]
    assert "Autumn \\*look\\*" in line and "5 pictures read from" in line  # user strings escaped
    assert "autumn\\_\\[shoot\\]" in line and "just now" in line
    [stopped] = manager.stopped_imports()
    at.button(key=f"resume_{stopped.key}").click().run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    assert run_queued_jobs() == ["done"]
    at.run()
    assert any("Added 12 pictures" in s.value for s in at.success)
    assert any("Went on from an import that had stopped" in i.value for i in at.info)
    assert not any("Imports that stopped part way" in s.value for s in at.subheader)
    assert manager.get("autumn").count == 12 and manager.get("autumn").title == "Autumn *look*"

    with pytest.raises(Stop):
        manager.add_paths("autumn", [folder("more", 6)], progress=stop_after(2))
    at.run()
    [stopped] = manager.stopped_imports()
    at.button(key=f"discard_{stopped.key}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert manager.stopped_imports() == [] and manager.get("autumn").count == 12
    assert not any("Imports that stopped part way" in s.value for s in at.subheader)


def test_libraries_page_bad_folder_is_a_clear_error_and_creates_nothing(isolated_data_dir):
    at = goto(app(), "libraries")
    at.text_input[0].set_value("Nothing here")
    at.text_input[1].set_value(str(isolated_data_dir / "missing"))
    at.button(key="create_library").click().run()
    assert any("Folder not found" in e.value for e in at.error)
    assert run_queued_jobs() == []
    assert not any("Nothing here" in e.label for e in at.expander)


@pytest.mark.parametrize("page", ["home", "generate", "campaigns", "mosaic", "analyze", "gallery", "libraries", "lab"])
def test_every_page_renders_without_exception(page):
    goto(app(), page)


def test_pages_keep_and_explain_an_image_whose_file_is_missing():
    """Issue 13 item 4: a record whose file is not in this data folder is shown as missing, never erased."""
    from core.store import Store

    at = generate_small(app(), count=2)
    first, _second = last_batch(at)
    store = Store()
    store.image_path(store.get(first)).unlink()
    at.run()  # the Generate page's results still show the batch
    assert not at.exception, [e.value for e in at.exception]
    assert any("missing" in w.value for w in at.warning)
    goto(at, "gallery")
    assert "2 images saved" in texts(at)
    assert any("Image file missing" in w.value for w in at.warning)
    at.switch_page("pages/mosaic.py")
    at.query_params["id"] = first
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("missing" in w.value for w in at.warning)
    assert Store().count() == 2
