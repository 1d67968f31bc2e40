"""The Generate page with the Stable Diffusion engine, on a tiny pipeline placed in the models folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.engines.sd.tiny import build_tiny_sd15
from tests.jobs.jobs_helpers import last_batch, run_queued_jobs
from tests.signin import signed_in

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_sd15(tmp_path_factory) -> Path:
    return build_tiny_sd15(tmp_path_factory.mktemp("sd") / "tiny-sd15")


def _sd_page(tiny_sd15: Path, data_dir: Path) -> AppTest:
    shutil.copytree(tiny_sd15, data_dir / "models" / "tiny-sd15")
    at = signed_in(AppTest.from_file(str(ROOT / "app.py"), default_timeout=240))
    at.run()
    at.switch_page("pages/generate.py").run()
    at.selectbox(key="gen_engine").set_value("sd").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_generate_page_with_a_tiny_sd_pipeline(tiny_sd15, isolated_data_dir):
    at = _sd_page(tiny_sd15, isolated_data_dir)
    assert "tiny-sd15" in at.selectbox(key="sd_model").options
    at.selectbox(key="sd_model").set_value("tiny-sd15")
    at.text_area(key="sd_prompt").set_value("a red sneaker on a pastel background")
    at.radio(key="sd_preset").set_value("fast")
    at.slider(key="sd_count").set_value(2)
    at.selectbox(key="sd_size").set_value("custom").run()
    at.number_input(key="sd_width").set_value(64)
    at.number_input(key="sd_height").set_value(64)
    at.number_input(key="sd_steps").set_value(2)  # under Advanced
    at.run()
    at.button(key="gen_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run_queued_jobs()  # the page submitted a generation job; a worker runs it
    at.run()
    assert not at.error, [e.value for e in at.error]
    assert len(last_batch(at)) == 2
    from core.store import Store

    records = Store().list()
    assert {r.engine for r in records} == {"sd"} and {r.width for r in records} == {64}
    assert {r.seed for r in records} == {0, 1}


def test_generate_page_sd_bad_input_is_a_clear_message(tiny_sd15, isolated_data_dir):
    at = _sd_page(tiny_sd15, isolated_data_dir)
    at.selectbox(key="sd_model").set_value("__custom__").run()
    at.text_input(key="sd_model_custom").set_value(str(isolated_data_dir / "nope.ckpt")).run()
    at.text_area(key="sd_prompt").set_value("x").run()
    at.button(key="gen_go").click().run()
    assert not at.exception
    assert run_queued_jobs() == ["failed"]  # the job says why, and the page shows it
    at.run()
    assert any("safetensors" in e.value or "pickle" in e.value.lower() for e in at.error), [e.value for e in at.error]
