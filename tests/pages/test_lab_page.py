"""AppTest of the Creativity Lab page: plain words outside the expanders, the technical side inside."""

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.browser.plain import INTERNAL_TERMS
from tests.jobs.jobs_helpers import run_queued_jobs
from tests.signin import signed_in

ROOT = Path(__file__).resolve().parents[2]
# besides the browser checks' list: the machines' short names and the table's old column titles
LAB_TERMS = (*INTERNAL_TERMS, r"median r", r"\br²", r"beats IS", r"\bUNET\b", r"whole-image")
CASED_TERMS = (r"\bIS\b", r"\bLS\b")  # "Is a new image really new?" is fine


def _lab() -> AppTest:
    at = signed_in(AppTest.from_file(str(ROOT / "app.py"), default_timeout=300))
    at.run()
    at.switch_page("pages/lab.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(node) -> list[str]:
    """Every text the element shows: value, label, help, captions of pictures, a table's titles and cells."""
    texts = []
    for attr in ("value", "label", "help", "placeholder"):
        try:
            value = getattr(node, attr, None)
        except Exception:  # some elements compute .value from widget state they do not have here
            continue
        if isinstance(value, str):
            texts.append(value)
    if node.type in ("table", "arrow_data_frame"):
        frame = node.value
        texts += [str(c) for c in frame.columns] + [str(i) for i in frame.index]
        texts += [str(v) for v in frame.to_numpy().ravel()]
    if node.type == "image":
        texts += [img.caption for img in node.proto.imgs]
    if node.type == "progress":
        texts.append(node.proto.text)
    return texts


def visible_texts(node) -> list[str]:
    """The texts of every element outside expanders (what a newcomer reads without opening anything)."""
    if node.type == "expander":
        return []
    texts = _texts(node) if not getattr(node, "children", None) else []
    for child in getattr(node, "children", {}).values():
        texts += visible_texts(child)
    return texts


def inside_expanders(node) -> list[str]:
    if node.type == "expander":
        return [t for child in node.children.values() for t in visible_texts(child)]
    return [t for child in getattr(node, "children", {}).values() for t in inside_expanders(child)]


def terms_shown(at: AppTest) -> list[str]:
    text = "\n".join(visible_texts(at._tree))
    assert "Creativity Lab" in text  # the walk reads the page
    found = [m.group(0) for term in LAB_TERMS if (m := re.search(term, text, flags=re.IGNORECASE))]
    return found + [m.group(0) for term in CASED_TERMS if (m := re.search(term, text))]


def test_lab_compares_the_trained_model_with_the_machine():
    at = _lab()
    assert "Creativity Lab" in at.title[0].value
    at.slider(key="lab_count").set_value(2)
    at.button(key="lab_compare").click().run()
    assert run_queued_jobs() == ["done"]  # the page only submitted the job; a worker runs it
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert len(at.metric) == 2 and all(m.label == "Likeness" for m in at.metric)
    assert all(-1.0 <= float(m.value) <= 1.0 for m in at.metric)
    reading = next(m.value for m in at.markdown if "How to read this:** in each row" in m.value)
    assert "the closer to 1, the better the machine predicts the network" in reading
    low, high = sorted(m.value for m in at.metric)
    assert (f"from {low} to {high}" if low != high else f"Here: {low}") in reading
    assert terms_shown(at) == []
    assert any("Pearson correlation" in t for t in inside_expanders(at._tree))  # the technical side stays


def test_lab_locality_row():
    from core.jobs import JobQueue
    from core.lab.jobs import load_lab_result as load
    from pages.parts.lab_locality import CAPTION_WORDS, TILE, tile

    at = _lab()
    at.button(key="lab_locality").click().run()
    assert not at.get("image")
    assert run_queued_jobs() == ["done"]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    captions = [img.caption for node in at.get("image") for img in node.proto.imgs]
    assert [c.split(":")[0] for c in captions] == list(CAPTION_WORDS.values())
    rows = load(JobQueue().get(at.session_state["lab_locality_job"]))["rows"]
    assert captions == [f"{CAPTION_WORDS[r['preset']]}: {r['closest']:.2f}" for r in rows]
    assert rows[-1]["closest"] > 0.99 > rows[0]["closest"]  # whole-picture patches copy; small ones make new
    # heading, caption and figures agree
    assert "small patches make new pictures, whole-picture patches copy" in at.subheader[0].value
    assert "likeness to the closest library picture (1 = a copy)" in at.caption[0].value
    reading = next(m.value for m in at.markdown if m.value.startswith("**How to read this:** each picture"))
    assert f"is {rows[0]['closest']:.2f} alike: a new digit" in reading
    assert "the machine copied one library picture" in reading
    # the four pictures are shown at the same size
    sizes = {tile(r["image"]).size for r in rows}
    assert sizes == {(TILE, TILE)}
    assert terms_shown(at) == []
    measured = "\n".join(inside_expanders(at._tree))
    assert "bbELS" in measured and "`whole-image` 1" in measured


def test_lab_shows_the_saved_comparison_of_the_demo_model():
    from core.lab.compare import load_comparison
    from core.lab.demo import DEMO_MODEL_DIR

    at = _lab()
    saved = load_comparison(DEMO_MODEL_DIR)
    assert saved is not None, "the demo model should come with comparison.json"
    shown = at.table[0].value
    assert list(shown["Machine"]) == [
        "Copies whole pictures",
        "Patches at their own place",
        "Patches from anywhere",
        "Patches from anywhere, aware of the border",
    ]
    assert list(shown["Typical likeness"]) == [f"{saved.median_r(k):.2f}" for k in saved.kinds]
    wins = [round(saved.fraction_beats(k, "is") * 50) for k in saved.kinds[1:]]
    assert list(shown["Closer than copying"])[1:] == [f"{n} of 50" for n in wins]
    reading = " ".join(m.value for m in at.markdown)
    assert "the closer to 1, the better the machine predicts the network" in reading
    # the technical table and how it was made, under the expander
    technical = at.table[1].value
    assert list(technical["machine"]) == ["IS", "LS", "ELS", "bbELS"]
    assert list(technical["median r"]) == [f"{saved.median_r(k):.3f}" for k in saved.kinds]
    measured = " ".join(inside_expanders(at._tree))
    assert "50 seeds (0–49)" in measured and "all machines exact" in measured
    assert "python -m core.lab.demo --compare-only" in measured
    assert terms_shown(at) == []


def test_the_term_walk_finds_a_term_outside_expanders():
    def app():
        import streamlit as st

        st.title("Creativity Lab")
        with st.expander("How this is measured"):
            st.markdown("bbELS with DDIM")
        st.table({"median r": ["0.5"]})

    at = AppTest.from_function(app).run()
    assert terms_shown(at) == ["median r"]


def _comparison_section(folder: str) -> None:
    from pathlib import Path

    import streamlit as st

    from pages.parts.lab_comparison import show_comparison

    st.title("Creativity Lab")
    show_comparison(Path(folder))


def test_comparison_section_without_comparison_file(tmp_path):
    at = AppTest.from_function(_comparison_section, args=(str(tmp_path),), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.table
    assert "no saved comparison" in at.info[0].value
    assert terms_shown(at) == []


def test_comparison_section_with_unreadable_file(tmp_path):
    (tmp_path / "comparison.json").write_text("{broken")
    at = AppTest.from_function(_comparison_section, args=(str(tmp_path),), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "could not be read" in at.warning[0].value and not at.table
    assert terms_shown(at) == []


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
    assert list(shown["Machine"]) == ["Copies whole pictures", "Patches from anywhere"]
    assert list(shown["Typical likeness"]) == ["0.50", "0.80"] and list(shown["Closer than copying"]) == ["—", "2 of 3"]
    assert "Over 3 pictures" in at.caption[0].value
    assert "“patches from anywhere” predicts the network best (typical likeness **0.80**" in at.markdown[0].value
    measured = " ".join(inside_expanders(at._tree))
    assert "3 seeds (3–5)" in measured and "approximate" in measured and "`my command` (comparison 12 s)" in measured
    assert "ELS: the bbELS schedule" in measured
    assert terms_shown(at) == []


def _curve_section(folder: str) -> None:
    from pathlib import Path

    import streamlit as st

    from pages.parts.training_curve import show_training_curve

    st.title("Creativity Lab")
    show_training_curve(Path(folder))


def _write_curve(folder: Path, points: list[dict]) -> None:
    import json

    folder.mkdir(parents=True, exist_ok=True)
    probe = {"seeds": [20000, 20001], "kinds": ["is", "bbels"], "patch_sizes": [5, 3, 1], "steps": 3}
    (folder / "training_curve.json").write_text(json.dumps({"probe": probe, "points": points}))


def test_training_curve_chart_and_reading(tmp_path):
    from pages.parts.training_curve import LINE_WORDS, ROUNDS, curve_frame

    points = [
        {"step": 500, "loss": 0.21, "r_is": 0.75, "r_bbels": 0.93},
        {"step": 1000, "loss": 0.14, "r_is": 0.74, "r_bbels": 0.95},
        {"step": 1500, "loss": 0.12, "r_is": 0.76, "r_bbels": 0.94},
    ]
    _write_curve(tmp_path, points)
    at = AppTest.from_function(_curve_section, args=(str(tmp_path),), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    charts = at.get("vega_lite_chart")
    assert len(charts) == 2  # likeness, and the training error under "How this is measured"
    frame = curve_frame({"points": points})
    assert frame.index.name == ROUNDS and list(frame.index) == [500, 1000, 1500]
    assert list(frame[LINE_WORDS["bbels"]]) == [0.93, 0.95, 0.94]
    reading = at.markdown[0].value
    assert "the same 2 test pictures" in reading
    assert "After 500 rounds the network was already **0.93** alike" in reading
    assert "after 1,500 rounds, **0.94** (highest: 0.95 after 1,000 rounds)" in reading
    assert "stays further away (**0.76**)" in reading
    assert terms_shown(at) == []
    assert any("Pearson r" in t for t in inside_expanders(at._tree))


def test_training_curve_says_when_the_network_copies(tmp_path):
    from pages.parts.training_curve import curve_reading

    text = curve_reading({"probe": {}, "points": [{"step": 100, "r_is": 0.95, "r_bbels": 0.8}]})
    assert "has started to copy" in text and "the same test pictures" in text
    assert "highest" not in text


def test_training_curve_absent_or_broken(tmp_path):
    at = AppTest.from_function(_curve_section, args=(str(tmp_path),), default_timeout=60).run()
    assert not at.exception and not at.get("vega_lite_chart") and not at.markdown
    (tmp_path / "training_curve.json").write_text("{broken")
    at = AppTest.from_function(_curve_section, args=(str(tmp_path),), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "could not be read" in at.warning[0].value


def test_lab_shows_the_clothing_model_its_table_and_training_curve():
    """The committed Fashion-MNIST model: its exact comparison over 100 pictures and its training curve."""
    from core.lab.compare import load_comparison
    from core.lab.curve import load_curve
    from core.lab.demo import FASHION_MODEL_DIR

    table = load_comparison(FASHION_MODEL_DIR)
    assert table is not None and table.exact() and len(table.seeds) == 100
    assert set(table.kinds) == {"is", "ls", "els", "bbels"}
    at = _lab()
    assert any(s.value.startswith("4 · Clothing pictures") for s in at.subheader)
    tables = [t.value for t in at.table if "Machine" in t.value.columns]
    shown = tables[-1]
    assert list(shown["Machine"]) == [
        {"is": "Copies whole pictures", "ls": "Patches at their own place", "els": "Patches from anywhere"}.get(
            k, "Patches from anywhere, aware of the border"
        )
        for k in table.kinds
    ]
    assert list(shown["Typical likeness"]) == [f"{table.median_r(k):.2f}" for k in table.kinds]
    assert any("Over 100 pictures, one kind of clothing each" in c.value for c in at.caption)
    assert any(
        "3,615 pictures of clothing" in c.value and "4,000 rounds, about 25 minutes" in c.value for c in at.caption
    )
    points = load_curve(FASHION_MODEL_DIR)["points"]
    assert len(points) >= 5 and len(at.get("vega_lite_chart")) >= 2
    reading = next(m.value for m in at.markdown if m.value.startswith("**How to read this chart:**"))
    assert f"after {points[-1]['step']:,} rounds, **{points[-1]['r_bbels']:.2f}**" in reading
    assert terms_shown(at) == []
