"""AppTest of the Creativity Lab page."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.jobs.jobs_helpers import run_queued_jobs
from tests.signin import signed_in

ROOT = Path(__file__).resolve().parents[2]


def _lab() -> AppTest:
    at = signed_in(AppTest.from_file(str(ROOT / "app.py"), default_timeout=300))
    at.run()
    at.switch_page("pages/lab.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_lab_compares_the_trained_model_with_the_machine():
    at = _lab()
    assert "Creativity Lab" in at.title[0].value
    at.slider(key="lab_count").set_value(2)
    at.button(key="lab_compare").click().run()
    assert run_queued_jobs() == ["done"]  # the page only submitted the job; a worker runs it
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert len(at.metric) == 2
    assert all(-1.0 <= float(m.value) <= 1.0 for m in at.metric)


def test_lab_locality_row():
    at = _lab()
    at.button(key="lab_locality").click().run()
    assert not at.caption or "library pictures" not in " ".join(c.value for c in at.caption)
    assert run_queued_jobs() == ["done"]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    from core.score import PRESETS

    assert not at.error, [e.value for e in at.error]
    captions = " ".join(c.value for c in at.caption)
    assert PRESETS["fine"] in captions and PRESETS["whole-image"] in captions


def test_lab_shows_the_saved_comparison_of_the_demo_model():
    from core.lab.compare import load_comparison
    from core.lab.demo import DEMO_MODEL_DIR

    at = _lab()
    saved = load_comparison(DEMO_MODEL_DIR)
    assert saved is not None, "the demo model should come with comparison.json"
    shown = at.table[0].value
    assert list(shown["machine"]) == ["IS", "LS", "ELS", "bbELS"]
    assert list(shown["median r"]) == [f"{saved.median_r(k):.3f}" for k in saved.kinds]
    assert list(shown["beats IS"])[1:] == [f"{saved.fraction_beats(k, 'is'):.0%}" for k in saved.kinds[1:]]
    captions = " ".join(c.value for c in at.caption)
    assert "50 seeds (0–49)" in captions and "all machines exact" in captions
    assert "python -m core.lab.demo --compare-only" in captions


def _comparison_section(folder: str) -> None:
    from pathlib import Path

    from pages._lab_comparison import show_comparison

    show_comparison(Path(folder))


def test_comparison_section_without_comparison_file(tmp_path):
    at = AppTest.from_function(_comparison_section, args=(str(tmp_path),), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.table
    assert "No saved comparison" in at.info[0].value


def test_comparison_section_with_unreadable_file(tmp_path):
    (tmp_path / "comparison.json").write_text("{broken")
    at = AppTest.from_function(_comparison_section, args=(str(tmp_path),), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "could not be read" in at.warning[0].value and not at.table


def test_comparison_section_renders_a_saved_table(tmp_path):
    from core.lab.compare import ComparisonTable, save_comparison

    table = ComparisonTable(
        kinds=["is", "els"],
        seeds=[3, 4, 5],
        class_labels=[3, 4, 5],
        r={"is": [0.5, 0.6, 0.1], "els": [0.9, 0.4, 0.8]},
        steps=20,
        patch_sizes=[3] * 20,
        info={"approximate": True, "top_k": 8, "own_schedule": [], "shared_schedule": "bbels"},
    )
    save_comparison(tmp_path, table, command="my command", wall_seconds=12.0)
    at = AppTest.from_function(_comparison_section, args=(str(tmp_path),), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = at.table[0].value
    assert list(shown["machine"]) == ["IS", "ELS"]
    assert list(shown["median r"]) == ["0.500", "0.800"] and list(shown["beats IS"]) == ["—", "67%"]
    caption = at.caption[0].value
    assert "3 seeds (3–5)" in caption and "approximate" in caption and "`my command` (comparison 12 s)" in caption
    assert "ELS: the bbELS schedule" in caption
    assert "median r of **0.80**" in at.markdown[0].value
