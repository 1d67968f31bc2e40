"""The pages only read server folders inside the allowed folders, and show stored names as text (AppTest)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.roots import ALLOWED_FOLDERS_ENV
from tests.jobs.jobs_helpers import run_queued_jobs
from tests.signin import signed_in

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 240
REFUSED = "only reads"


def shown(markdown: str) -> str:
    """Markdown escaped with core.html.md, as the person reads it."""
    return re.sub(r"\\(.)", r"\1", markdown)


def _goto(page: str) -> AppTest:
    at = signed_in(AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT))
    at.run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _pictures(folder: Path, count: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def _create_library(at: AppTest, title: str, folder: str) -> AppTest:
    at.text_input[0].set_value(title)
    at.text_input[1].set_value(folder)
    at.button(key="create_library").click().run()
    assert not at.exception, [e.value for e in at.exception]
    if run_queued_jobs():  # the page submitted an import job: run it as a worker would, then look again
        at.run()
    return at


# ---------------------------------------------------------------------------------------- Libraries page


@pytest.mark.parametrize("relative", [False, True])
def test_libraries_page_refuses_a_folder_outside_the_allowed_folders(tmp_path, relative):
    outside = _pictures(tmp_path / "private")
    at = _goto("libraries")
    _create_library(at, "Stolen", "../private" if relative else str(outside))
    errors = [shown(e.value) for e in at.error]
    assert any(REFUSED in e and ALLOWED_FOLDERS_ENV in e for e in errors), errors
    assert not at.success
    from core.libraries import LibraryManager

    assert "stolen" not in {info.name for info in LibraryManager().list()}


def test_libraries_page_refuses_a_symlink_out_of_the_data_folder(tmp_path, isolated_data_dir):
    outside = _pictures(tmp_path / "private")
    isolated_data_dir.mkdir(parents=True, exist_ok=True)
    (isolated_data_dir / "link").symlink_to(outside, target_is_directory=True)
    at = _goto("libraries")
    _create_library(at, "Linked", str(isolated_data_dir / "link"))
    assert any(REFUSED in shown(e.value) for e in at.error), [e.value for e in at.error]
    assert not at.success


def test_libraries_page_imports_from_the_data_folder_and_listed_folders(tmp_path, isolated_data_dir, monkeypatch):
    _pictures(isolated_data_dir / "brand")
    at = _create_library(_goto("libraries"), "Inside", str(isolated_data_dir / "brand"))
    assert any("Added 3 pictures" in shown(s.value) for s in at.success), [e.value for e in at.error]
    listed = _pictures(tmp_path / "shared-assets")
    monkeypatch.setenv(ALLOWED_FOLDERS_ENV, str(listed))
    at = _create_library(_goto("libraries"), "Listed", str(listed))
    assert any("Added 3 pictures" in shown(s.value) for s in at.success), [e.value for e in at.error]


def test_libraries_page_shows_titles_and_descriptions_as_text():
    from core.libraries import LibraryManager

    title = "<img src=x onerror=alert(1)> [a](javascript:x)"
    LibraryManager().create("tricky", title=title, description="**<b>hi</b>**")
    at = _goto("libraries")
    (label,) = [e.label for e in at.expander if "onerror" in e.label]
    assert "<img" not in label.replace("\\<img", "") and "\\[a\\]\\(javascript" in label
    assert any(m.value == "\\*\\*\\<b\\>hi\\<\\/b\\>\\*\\*" for m in at.markdown), [m.value for m in at.markdown]


# ---------------------------------------------------------------------------------------- model location


@pytest.fixture
def outside_model(tmp_path) -> Path:
    weights = tmp_path / "private" / "model.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    return weights


def test_generate_page_refuses_a_model_location_outside_the_allowed_folders(outside_model):
    at = _goto("generate")
    at.selectbox(key="gen_engine").set_value("sd").run()
    at.selectbox(key="sd_model").set_value("__custom__").run()
    at.text_input(key="sd_model_custom").set_value(str(outside_model)).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [shown(e.value) for e in at.error]
    assert any(REFUSED in e for e in errors), errors
    assert at.button(key="gen_go").disabled


def test_generate_page_accepts_a_hub_id_as_model_location():
    at = _goto("generate")
    at.selectbox(key="gen_engine").set_value("sd").run()
    at.selectbox(key="sd_model").set_value("__custom__").run()
    at.text_input(key="sd_model_custom").set_value("stabilityai/sdxl-turbo")
    at.text_area(key="sd_prompt").set_value("a red sneaker").run()
    assert not any(REFUSED in shown(e.value) for e in at.error), [e.value for e in at.error]
    assert not at.button(key="gen_go").disabled


def test_campaigns_page_refuses_a_model_location_outside_the_allowed_folders(outside_model):
    template = "ab-ad-pair"
    at = _goto("campaigns")
    at.selectbox(key="camp_template").set_value(template).run()
    at.text_input(key=f"camp_f_{template}_product").set_value("water bottle")
    at.text_input(key=f"camp_f_{template}_benefit").set_value("keeps drinks cold")
    at.radio(key="camp_engine").set_value("sd").run()
    at.selectbox(key="camp_model").set_value("__custom__").run()
    at.text_input(key="camp_model_custom").set_value(str(outside_model)).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [shown(e.value) for e in at.error]
    assert any(REFUSED in e for e in errors), errors
    assert at.button(key="camp_go").disabled
