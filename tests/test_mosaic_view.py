"""The Mosaic view opens at the step that explains the image best, says why, and the final step is one click away.

Issue 19: at the last step of a faces image the source map is confetti (its largest sources supply about
2 % each), while an early step is easy to read. :func:`core.mosaic.clearest_step` must pick such a step.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.libraries import LibraryManager
from core.mosaic import FEW, build_mosaic, clearest_step, clearest_step_reason, source_map_figure, step_readings
from tests.signin import signed_in

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 240
INTERNAL = ("lfw_subset", "skimage", "patch centre", "bbels", "fashion-unet")


def _faces_image(seed: int = 3):
    """A real studio image: faces library, 16 px, the default machine and steps, saved in the gallery."""
    from core.engines.local_score import LocalScoreEngine, LocalScoreRequest
    from core.store import Store

    (generated,) = LocalScoreEngine().generate(LocalScoreRequest(library="faces", size=16, count=1, seed=seed))
    (record,) = Store().save([generated])
    return record, build_mosaic(generated.arrays, "faces", LibraryManager())


def test_the_clearest_step_of_a_real_image_comes_before_the_fragmented_last_step():
    _, mosaic = _faces_image()
    readings = step_readings(mosaic)
    last = readings[-1]
    assert last.likeness == pytest.approx(1.0)
    assert last.few_share < 0.25, "the last step of a 16 px faces image is confetti"
    best = clearest_step(mosaic)
    chosen = readings[best]
    assert best < mosaic.steps - 1
    assert chosen.few_share >= 2 * last.few_share  # far easier to read than the last step
    assert chosen.likeness >= 0.4  # and already like the finished image
    assert chosen.score == max(r.score for r in readings)
    reason = clearest_step_reason(mosaic, best)
    assert f"Step {best + 1} of {mosaic.steps} is the clearest" in reason
    assert f"{FEW} library pictures" in reason and f"{last.few_share * 100:.0f} %" in reason


def test_a_mosaic_that_stays_readable_opens_at_the_final_step(tmp_path):
    """When the last step is no more fragmented than the others (one picture copied), the final step is shown."""
    from PIL import Image

    folder = tmp_path / "pics"
    folder.mkdir()
    for i in range(3):
        Image.new("L", (8, 8), color=60 * (i + 1)).save(folder / f"p{i}.png")
    manager = LibraryManager()
    manager.create("tiny")
    manager.add_folder("tiny", folder)
    items = manager.items("tiny")
    sources = np.zeros((4, 4, 3), np.int32)
    sources[:, 2:, 0] = 1
    rng = np.random.default_rng(0)
    final = rng.normal(size=(1, 4, 4)).astype(np.float32)
    step_x0 = np.stack([final * 0.2 + rng.normal(size=final.shape) * 0.8, final * 0.7, final])
    arrays = {
        "sources": sources,
        "step_sources": np.stack([sources] * 3),
        "entropy": np.zeros((4, 4), np.float32),
        "step_x0": step_x0.astype(np.float16),
        "patch_sizes": np.array([5, 3, 1]),
        "used_indices": np.array([0, 1], np.int32),
        "used_item_ids": np.array([items[0]["id"], items[1]["id"]]),
    }
    mosaic = build_mosaic(arrays, "tiny", manager)
    assert clearest_step(mosaic) == 2
    assert clearest_step_reason(mosaic, 2).startswith("The final step is the easiest to read")


def _texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [s.value for s in at.subheader]
    return "\n".join(str(p) for p in parts).replace("\\", "")  # Markdown escapes: "Faces \\#52"


def _outside_expanders(at: AppTest) -> str:
    inside = {id(m) for e in at.expander for m in e.markdown}
    parts = [m.value for m in at.markdown if id(m) not in inside] + [c.value for c in at.caption]
    parts += [str(o) for s in at.selectbox for o in s.options] + [b.label for b in at.button]
    return "\n".join(str(p) for p in parts)


def test_the_mosaic_view_opens_at_the_clearest_step_and_the_final_step_is_one_click_away():
    record, mosaic = _faces_image()
    best = clearest_step(mosaic)
    at = signed_in(AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT))
    at.run()
    at.switch_page("pages/mosaic.py")
    at.query_params["id"] = record.id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]

    step = at.slider(key="mosaic_step")
    assert step.value == best + 1 < mosaic.steps
    body = _texts(at)
    assert f"Step {best + 1} of {mosaic.steps} is the clearest" in body
    assert f"Prediction at step {best + 1}" in body
    # sources are named as people see them, never by their data set entry
    assert "Faces #" in body or "Backgrounds #" in body
    shown = _outside_expanders(at)
    assert not [term for term in INTERNAL if term in shown], shown
    hover = json.dumps(at.get("plotly_chart")[0].proto.spec)
    assert "This spot comes from" in hover and "patch centre" not in hover and "lfw_subset" not in hover

    # one click shows the final step; another brings the clearest back
    at.button(key="mosaic_final").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.slider(key="mosaic_step").value == mosaic.steps
    assert at.button(key="mosaic_final").disabled
    assert "**Image**" in _texts(at) and f"Prediction at step {mosaic.steps}" not in _texts(at)
    at.button(key="mosaic_clearest").click().run()
    assert at.slider(key="mosaic_step").value == best + 1


def test_the_source_map_hover_names_the_picture_and_the_part_in_plain_words():
    _, mosaic = _faces_image()
    text = source_map_figure(mosaic, clearest_step(mosaic)).data[0].text
    flat = [str(t) for row in text for t in row]
    assert all(t.startswith("This spot comes from<br><b>") for t in flat)
    assert any("Faces #" in t for t in flat) or any("Backgrounds #" in t for t in flat)
    parts = {t.rsplit("<br>", 1)[-1] for t in flat}
    assert parts <= {f"its {w} part" for w in ("top left", "top", "top right", "left", "middle", "right",
                                                 "bottom left", "bottom", "bottom right")}
    assert not any("(" in t for t in flat)  # no coordinates
