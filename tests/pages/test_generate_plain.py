"""The Generate page as a newcomer meets it: plain choices up front, Stable Diffusion's "Reuse settings" restores
every setting (size and task included) without Streamlit's Session State warning, an empty prompt gives a hint
instead of a job, and a model that is not on this computer is explained in plain words (the commands folded away).
"""

from __future__ import annotations

import io
import logging
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin
from streamlit.elements.lib import policies
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Widget

from core.metadata import png_text
from pages.parts.messages import DETAIL_LABEL
from tests.browser.plain import INTERNAL_TERMS
from tests.engines.sd.tiny import build_tiny_sd15
from tests.signin import signed_in

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_sd15(tmp_path_factory) -> Path:
    return build_tiny_sd15(tmp_path_factory.mktemp("sd") / "tiny-sd15")


@pytest.fixture
def state_warnings(monkeypatch) -> list[str]:
    """Streamlit's "created with a default value but also had its value set via the Session State API" warnings.

    Streamlit checks this only under a running server and shows it once per process: the check is switched on
    for AppTest (its module sees a runtime) and its once-only flag reset.
    """

    class _Runtime:
        @staticmethod
        def exists() -> bool:
            return True

    monkeypatch.setattr(policies, "runtime", _Runtime)
    monkeypatch.setattr(policies, "_shown_default_value_warning", False)
    found: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found.append(record.getMessage())

    handler = _Collect(level=logging.WARNING)
    logger = logging.getLogger(policies.__name__)
    logger.addHandler(handler)
    yield found
    logger.removeHandler(handler)


def _page(data_dir: Path, tiny: Path | None = None) -> AppTest:
    if tiny is not None:
        shutil.copytree(tiny, data_dir / "models" / "tiny-sd15")
    at = signed_in(AppTest.from_file(str(ROOT / "app.py"), default_timeout=240))
    at.run()
    at.switch_page("pages/generate.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _sd_page(data_dir: Path, tiny: Path | None = None) -> AppTest:
    at = _page(data_dir, tiny)
    at.selectbox(key="gen_engine").set_value("sd").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _outside_expanders(at: AppTest) -> str:
    """The visible text of the page that is not folded away under an expander."""
    texts: list[str] = []

    def walk(node, folded: bool) -> None:
        folded = folded or getattr(node, "type", "") == "expander"
        for child in getattr(node, "children", {}).values():
            walk(child, folded)
        if folded or getattr(node, "children", None):
            return
        if isinstance(node, Widget):  # what a widget shows: its label and its choices (its value may be an id)
            texts.append(str(node.label or ""))
            texts.extend(str(o) for o in getattr(node, "options", []) or [])
        elif isinstance(getattr(node, "value", None), str):
            texts.append(node.value)

    walk(at.main, False)
    return "\n".join(texts)


def _keys_under(node) -> set[str]:
    keys = {getattr(node, "key", None)} - {None}
    for child in getattr(node, "children", {}).values():
        keys |= _keys_under(child)
    return keys


def _studio_png(params: dict) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in png_text(params).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 40, 40)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def _settings(**changes) -> dict:
    params = {
        "engine": "sd", "task": "txt2img", "prompt": "a teal kettle, studio light", "negative_prompt": "text",
        "seed": 1234, "steps": 7, "guidance": 5.5, "sampler": "Euler a", "width": 64, "height": 96,
        "model": "tiny-sd15", "model_source": "", "speed_preset": "quality",
    }
    params.update(changes)
    return params


def _reuse(at: AppTest, png: bytes, name: str = "earlier.png") -> AppTest:
    at.file_uploader(key="sd_reuse").set_value((name, png, "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# ------------------------------------------------------------------------------------------- plain default


def test_local_default_is_plain_and_the_technical_choices_are_under_advanced(state_warnings):
    at = _page(Path("unused"))
    engine = at.selectbox(key="gen_engine")
    assert all(len(o) <= 40 for o in engine.options), engine.options  # fits the box (the browser check measures it)
    shown = _outside_expanders(at)
    for term in INTERNAL_TERMS:
        assert not re.search(term, shown, flags=re.IGNORECASE), term
    assert "Boundary-aware" not in shown and "Locality" not in shown
    advanced = next(e for e in at.expander if e.label == "Advanced")
    assert {"gen_machine", "gen_preset", "gen_seed"} <= _keys_under(advanced)
    assert at.selectbox(key="gen_machine").value == "bbels" and at.selectbox(key="gen_preset").value == "balanced"
    assert at.button(key="gen_go").disabled is False
    assert not state_warnings, state_warnings


# ---------------------------------------------------------------------------------------- reuse settings


def test_reuse_restores_every_setting_including_size_and_task(tiny_sd15, isolated_data_dir, state_warnings):
    at = _sd_page(isolated_data_dir, tiny_sd15)
    assert at.selectbox(key="sd_size").value == "512x512"  # the family's first size before
    png = _studio_png(_settings(task="img2img", strength=0.4))
    _reuse(at, png)
    assert at.text_area(key="sd_prompt").value == "a teal kettle, studio light"
    assert at.text_input(key="sd_negative").value == "text"
    assert at.selectbox(key="sd_model").value == "tiny-sd15"
    assert at.selectbox(key="sd_size").value == "custom"  # 64×96 is none of the model's sizes
    assert at.number_input(key="sd_width").value == 64 and at.number_input(key="sd_height").value == 96
    assert at.radio(key="sd_task").value == "img2img"
    assert at.slider(key="sd_strength").value == pytest.approx(0.4)
    assert at.number_input(key="sd_seed").value == 1234
    assert at.number_input(key="sd_steps").value == 7
    assert at.number_input(key="sd_guidance").value == pytest.approx(5.5)
    assert at.selectbox(key="sd_scheduler").value == "Euler a"
    assert at.radio(key="sd_preset").value == "quality"
    assert any("starting image" in c.value for c in at.caption), [c.value for c in at.caption]
    # a size the model offers comes back as that choice, and a text-to-image task as such
    _reuse(at, _studio_png(_settings(width=512, height=768, seed=9)), name="portrait.png")
    assert at.selectbox(key="sd_size").value == "512x768"
    assert at.radio(key="sd_task").value == "txt2img"
    assert at.number_input(key="sd_seed").value == 9
    at.run()  # the restored values stay on the next run
    assert at.selectbox(key="sd_size").value == "512x768" and at.number_input(key="sd_seed").value == 9
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert not state_warnings, state_warnings


def test_reuse_of_an_automatic1111_png_restores_its_size(tiny_sd15, isolated_data_dir, state_warnings):
    at = _sd_page(isolated_data_dir, tiny_sd15)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a lighthouse at dusk\nNegative prompt: fog\nSteps: 12, Sampler: DPM++ 2M, "
                  "Schedule type: Karras, CFG scale: 6, Seed: 77, Size: 768x512, Model: tiny-sd15")
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG", pnginfo=info)
    _reuse(at, buffer.getvalue(), name="a1111.png")
    assert at.selectbox(key="sd_size").value == "768x512"
    assert at.text_area(key="sd_prompt").value == "a lighthouse at dusk"
    assert at.number_input(key="sd_seed").value == 77 and at.number_input(key="sd_steps").value == 12
    assert at.selectbox(key="sd_scheduler").value == "DPM++ 2M Karras"
    assert any("AUTOMATIC1111" in s.value for s in at.success)
    assert not state_warnings, state_warnings


def test_the_warning_check_sees_a_keyed_widget_with_a_default(state_warnings):
    """The fixture above does catch Streamlit's warning (so the tests using it can fail)."""
    script = (
        "import streamlit as st\n"
        "st.session_state['n'] = 3\n"
        "st.number_input('n', 0, 10, 1, key='n')\n"
    )
    at = AppTest.from_string(script).run()
    assert not at.exception
    assert any('"n"' in w for w in state_warnings), state_warnings


# ------------------------------------------------------------------------------------------ empty prompt


@pytest.mark.parametrize("prompt", ["", "   \n "])
def test_an_empty_prompt_gives_a_hint_and_makes_no_job(tiny_sd15, isolated_data_dir, prompt):
    from core.jobs import JobQueue

    at = _sd_page(isolated_data_dir, tiny_sd15)
    at.selectbox(key="sd_model").set_value("tiny-sd15")
    at.text_area(key="sd_prompt").set_value(prompt).run()
    assert any("Describe the image you want first" in i.value for i in at.info), [i.value for i in at.info]
    assert at.button(key="gen_go").disabled  # nothing to click: no job is made
    assert JobQueue().list(limit=10) == []
    at.text_area(key="sd_prompt").set_value("a red sneaker").run()
    assert not any("Describe the image you want first" in i.value for i in at.info)
    assert not at.button(key="gen_go").disabled


# ------------------------------------------------------------------------------------------ offline model


def test_a_model_not_on_this_computer_is_explained_in_plain_words(isolated_data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    at = _sd_page(isolated_data_dir)
    at.selectbox(key="sd_model").set_value("stabilityai/sdxl-turbo")
    at.text_area(key="sd_prompt").set_value("a red sneaker").run()
    errors = [e.value for e in at.error]
    assert any("SDXL Turbo isn't on this computer yet" in e and "Ask whoever sets up the studio" in e
               for e in errors), errors
    assert not any("HF_HUB_OFFLINE" in e or "huggingface-cli" in e for e in errors), errors
    details = next(e for e in at.expander if e.label == DETAIL_LABEL)
    code = "\n".join(c.value for c in details.code)
    assert "HF_HUB_OFFLINE" in code and "huggingface-cli download stabilityai/sdxl-turbo" in code
    assert at.button(key="gen_go").disabled
    assert "HF_HUB_OFFLINE" not in _outside_expanders(at)


def test_failed_job_detail_is_folded_away(isolated_data_dir):
    """A failed generation shows its message; technical detail kept with the job goes under the expander."""
    from core.jobs import JobQueue

    at = _page(isolated_data_dir)
    queue = JobQueue()
    job = queue.submit("generate", {"engine": "sd"}, owner="nobody", title="x")
    queue.fail(job.id, "Stable Diffusion XL isn't on this computer yet.",
               result={"error_detail": "run `huggingface-cli download x`"})
    at.session_state["gen_job"] = job.id
    at.run()
    assert any("isn't on this computer yet" in e.value for e in at.error), [e.value for e in at.error]
    details = next(e for e in at.expander if e.label == DETAIL_LABEL)
    assert "huggingface-cli download x" in "\n".join(c.value for c in details.code)
