"""AppTest of the Gallery: every button says what it does (a text label, and a tooltip for more), cards name
the library by its title, counts are in real plurals, and deleting still asks first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.engines.base import GeneratedImage
from core.libraries import LibraryManager
from core.store import Store
from tests.signin import signed_in

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120


def gallery(name: str = "tester", role: str = "admin") -> AppTest:
    at = signed_in(AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT), name=name, role=role)
    at.run()
    at.switch_page("pages/gallery.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def save(engine: str, seed: int, side: tuple[int, int] = (16, 16), **params) -> str:
    pixels = np.random.default_rng(seed).integers(0, 255, (side[1], side[0], 3), dtype=np.uint8)
    item = GeneratedImage(image=Image.fromarray(pixels), seed=seed, engine=engine, params=params)
    return Store().save([item])[0].id


def texts(at: AppTest) -> str:
    return "\n".join(str(x.value) for x in [*at.caption, *at.markdown, *at.info, *at.warning])


def test_every_gallery_button_has_a_text_label_and_a_tooltip():
    LibraryManager().create("spring-catalogue", title="Spring catalogue 2026")
    mosaic = save("local-score", 1, library="spring-catalogue")
    sd = save("sd", 2, side=(48, 32), prompt="a red sneaker on a beach")
    at = gallery()
    buttons = list(at.button) + list(at.get("download_button"))
    keys = {b.key for b in buttons}
    assert {f"m_{mosaic}", f"o_{mosaic}", f"d_{mosaic}", f"x_{mosaic}", f"o_{sd}", f"d_{sd}", f"x_{sd}"} <= keys
    assert f"m_{sd}" not in keys  # a Stable Diffusion image has no mosaic to open
    for button in buttons:
        assert button.label.strip(), f"{button.key} has no text label"
        assert button.help, f"{button.key} has no tooltip"
    labels = {b.label for b in buttons}
    assert {"Mosaic", "Originality", "Download", "Delete"} <= labels


def test_cards_say_what_an_image_is_in_plain_words():
    LibraryManager().create("spring-catalogue", title="Spring catalogue 2026")
    save("local-score", 1, library="spring-catalogue")
    at = gallery()
    body = texts(at)
    assert "From Spring catalogue 2026" in body
    assert "spring-catalogue" not in body  # the title, never the internal name
    assert "1 image saved" in body and "image(s)" not in body
    save("sd", 2, prompt="a red sneaker")
    at.run()
    body = texts(at)
    assert "2 images saved" in body
    assert "Stable Diffusion" in body and "“a red sneaker”" in body  # escaped Markdown (core.html.md)
    assert "local-score" not in body


def test_delete_asks_first_and_a_viewer_sees_no_delete():
    first = save("local-score", 1, library="digits")
    second = save("local-score", 2, library="digits")
    at = gallery()
    at.button(key=f"x_{first}").click().run()
    assert "cannot be undone" in " ".join(w.value for w in at.warning)
    assert at.button(key=f"xy_{first}").label == "Delete" and at.button(key=f"xn_{first}").label == "Keep"
    at.button(key=f"xn_{first}").click().run()
    assert "2 images saved" in texts(at)
    at.button(key=f"x_{second}").click().run()
    at.button(key=f"xy_{second}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "1 image saved" in texts(at)
    assert [r.id for r in Store().list()] == [first]
    viewer = gallery(name="vera", role="viewer")
    assert f"x_{first}" not in {b.key for b in viewer.button}
    assert f"o_{first}" in {b.key for b in viewer.button}
