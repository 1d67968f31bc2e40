"""AppTest of the Creativity Lab page."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


def _lab() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    at.switch_page("pages/lab.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_lab_compares_the_trained_model_with_the_machine():
    at = _lab()
    assert "Creativity Lab" in at.title[0].value
    at.slider(key="lab_count").set_value(2)
    at.button(key="lab_compare").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert len(at.metric) == 2
    assert all(-1.0 <= float(m.value) <= 1.0 for m in at.metric)


def test_lab_locality_row():
    at = _lab()
    at.button(key="lab_locality").click().run()
    assert not at.exception, [e.value for e in at.exception]
    from core.score import PRESETS

    assert not at.error, [e.value for e in at.error]
    captions = " ".join(c.value for c in at.caption)
    assert PRESETS["fine"] in captions and PRESETS["whole-image"] in captions
