"""AppTest of the Originality check page: empty state, a near copy, a Mosaic image's exact sources, bad input.

The page submits the check as a job; the tests run it here (``run_job_here``) and rerun the page, which
then shows the job's saved result. No worker process is started.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.engines.base import GeneratedImage
from core.errors import BadInputError
from core.jobs import ACTIVE, DONE, QUEUED, JobQueue
from core.jobs.worker import run_job_here
from core.libraries import LibraryManager
from core.store import Store
from tests.signin import signed_in

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 240
QUICK = "Quick (less detail, about twice as fast)"


@pytest.fixture(autouse=True)
def no_worker_processes(monkeypatch):
    """The page would start the studio's worker processes; here the tests run the jobs themselves."""
    import pages.parts.jobs

    monkeypatch.setattr(pages.parts.jobs, "ensure_workers", lambda: None)


def run_queued_jobs() -> list[str]:
    """Run every queued job in this process, as a worker would; returns their ids."""
    queue = JobQueue()
    ids = [job.id for job in reversed(queue.list(states=[QUEUED]))]
    for job_id in ids:
        run_job_here(queue, job_id)
    return ids


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [t.value for t in at.title]
    parts += [i.value for i in at.info] + [e.value for e in at.error] + [s.value for s in at.subheader]
    parts += [w.value for w in at.warning] + [s.value for s in at.success]
    return re.sub(r"\\(.)", r"\1", "\n".join(str(p) for p in parts))  # names are escaped Markdown (core.html.md)


def open_page(record_id: str | None = None) -> AppTest:
    at = signed_in(AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT))
    at.run()
    at.switch_page("pages/analyze.py")
    if record_id:
        at.query_params["id"] = record_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def failures(at: AppTest) -> list[str]:
    """Error boxes other than a high copy risk (which is shown in red on purpose)."""
    return [e.value for e in at.error if "copy risk" not in e.value]


def check(at: AppTest, library: str | None = None) -> AppTest:
    if library is not None:
        at.selectbox(key="analyze_library").set_value(library)
    at.radio(key="analyze_detail").set_value(QUICK)
    at.button(key="analyze_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.button(key="analyze_go").disabled  # queued: a second click cannot make a second job
    assert len(run_queued_jobs()) == 1
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def crops(count: int = 20, side: int = 64) -> list[np.ndarray]:
    """Textured ``side`` px crops of sample photos (not flat sky)."""
    import skimage.data

    out = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        photo = np.asarray(getattr(skimage.data, name)())[..., :3]
        for y in range(0, photo.shape[0] - side, 2 * side):
            for x in range(0, photo.shape[1] - side, 2 * side):
                crop = photo[y : y + side, x : x + side]
                if crop.std() > 25 and len(out) < count:
                    out.append(np.ascontiguousarray(crop))
    assert len(out) == count
    return out


@pytest.fixture
def brand_library(tmp_path) -> list[np.ndarray]:
    folder = tmp_path / "brand-pictures"
    folder.mkdir()
    pictures = crops()
    for i, array in enumerate(pictures):
        Image.fromarray(array).save(folder / f"shot_{i:02d}.png")
    manager = LibraryManager()
    manager.create("brand", title="Brand shots")
    assert manager.add_folder("brand", folder).added == len(pictures)
    return pictures


def save_image(array: np.ndarray) -> str:
    image = Image.fromarray(array)
    item = GeneratedImage(image=image, seed=7, engine="sd", params={"prompt": "a test", "model": "none"})
    return Store().save([item])[0].id


def test_page_with_nothing_saved_is_friendly():
    at = open_page()
    body = texts(at)
    assert "Originality check" in body
    assert "no saved images yet" in body
    assert not at.error
    assert "analyze_go" not in [b.key for b in at.button]


def test_saved_near_copy_is_flagged_high_risk_and_cached(brand_library):
    record_id = save_image(brand_library[3])
    at = open_page(record_id)
    assert at.selectbox(key="analyze_record").value == record_id
    assert at.selectbox(key="analyze_library").value == "brand"  # no brand kit, not a Mosaic image: user library
    check(at)
    assert not failures(at), failures(at)
    body = texts(at)
    assert "near copy" in body.lower()
    assert "shot_03" in body
    assert "high copy risk" in body
    assert "Originality score" in [m.label for m in at.metric]
    score = next(m for m in at.metric if m.label == "Originality score")
    assert score.value == "0 / 100"
    assert "High" in body
    key = (f"record:{record_id}", "brand", 20, "pixel", None, QUICK)
    job_id = at.session_state["analyze_jobs"][key]
    assert JobQueue().get(job_id).state == DONE
    at.select_slider(key="analyze_scale_8-16").set_value(16).run()  # one piece size; the saved result is reused
    assert not at.exception
    assert "near copy" in texts(at).lower()
    assert len(JobQueue().list()) == 1  # nothing ran again


def test_leaving_the_page_during_a_check_shows_its_progress_then_its_result_on_return(brand_library):
    record_id = save_image(brand_library[4])
    at = open_page(record_id)
    at.radio(key="analyze_detail").set_value(QUICK)
    at.button(key="analyze_go").click().run()
    assert at.button(key="analyze_go").disabled  # no second click while it runs
    (job,) = JobQueue().list()
    assert job.state in ACTIVE and job.kind == "analyze" and job.params["record_id"] == record_id
    assert [p.value for p in at.get("progress")]  # its progress is shown
    at.radio(key="analyze_detail").set_value("Standard").run()  # another choice: the running check stays in view
    assert any("is running" in i.value and "against Brand shots" in i.value for i in at.info), texts(at)
    at.radio(key="analyze_detail").set_value(QUICK).run()
    assert not any("is running" in i.value for i in at.info)
    at.switch_page("pages/gallery.py").run()
    at.query_params.clear()
    at.switch_page("pages/analyze.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.radio(key="analyze_detail").value == QUICK  # the choices of the running check are back
    assert at.selectbox(key="analyze_record").value == record_id
    assert at.button(key="analyze_go").disabled and at.get("progress")
    run_queued_jobs()
    at.switch_page("pages/gallery.py").run()
    at.switch_page("pages/analyze.py").run()
    assert not at.exception
    assert "shot_04" in texts(at) and "Originality score" in [m.label for m in at.metric]
    assert len(JobQueue().list()) == 1


def test_an_uploaded_picture_is_checked_as_a_job_and_kept_for_the_return(brand_library):
    from pages.parts import analyze_inputs as _analyze_inputs
    from pages.parts.analyze_inputs import Subject

    subject = Subject(key="upload:test", image=Image.fromarray(brand_library[6]), label="my <b>shot</b>.png")
    original = _analyze_inputs._upload_subject
    try:  # AppTest cannot fill a file picker: hand the page the decoded upload
        _analyze_inputs._upload_subject = lambda: subject
        at = open_page()
        at.radio(key="analyze_mode").set_value("upload").run()
        assert not at.exception
        check(at, library="brand")
    finally:
        _analyze_inputs._upload_subject = original
    body = texts(at)
    assert "shot_06" in body and "near copy" in body.lower()
    (job,) = JobQueue().list()
    assert job.params["upload"] and job.params["label"] == "my <b>shot</b>.png"
    at.switch_page("pages/gallery.py").run()
    at.switch_page("pages/analyze.py").run()  # the file picker is empty now: the last picture is used
    assert not at.exception, [e.value for e in at.exception]
    body = texts(at)
    assert "Your last picture, my <b>shot</b>.png" in body
    assert "shot_06" in body


def test_mosaic_image_compares_exact_sources_with_the_estimate():
    from core.engines.local_score import LocalScoreEngine, LocalScoreRequest

    images = LocalScoreEngine(LibraryManager()).generate(
        LocalScoreRequest(library="faces", size=16, steps=3, count=1, seed=1)
    )
    record_id = Store().save(images)[0].id
    at = open_page(record_id)
    assert at.selectbox(key="analyze_library").value == "faces"  # a Mosaic image: its own library
    check(at)
    assert not failures(at), failures(at)
    body = texts(at)
    assert "Exact sources vs. this check" in body
    assert "names the same library picture" in body
    assert "Agreement" in [m.label for m in at.metric]


def test_bad_library_and_bad_brand_kit_are_clear_errors(brand_library):
    from core.templates import save_brand_kit

    save_brand_kit({"library": "gone"})
    LibraryManager().create("empty", title="Empty one")
    record_id = save_image(brand_library[0])
    at = open_page(record_id)
    assert "does not exist any more" in texts(at)
    check(at, library="empty")
    assert any("no images yet" in e.value for e in at.error), [e.value for e in at.error]
    (job,) = JobQueue().list()
    assert job.state == "failed" and "no images yet" in job.error
    assert at.selectbox(key="analyze_record").value == record_id  # nothing lost


def test_unreadable_uploads_are_refused_with_the_file_name():
    from pages.parts.analyze_inputs import decode_upload

    with pytest.raises(BadInputError, match="broken.png"):
        decode_upload(b"not an image", "broken.png")
    with pytest.raises(BadInputError, match="HEIC"):
        decode_upload(b"\x00\x00\x00\x18ftypheic", "photo.heic")
    subject = decode_upload(_png(), "ok.png")
    assert subject.key.startswith("upload:") and subject.image.size == (8, 8)


def _png() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def _tiny_vae():
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
        sample_size=64,
    ).eval()


def test_latent_space_needs_a_model_then_uses_its_vae(brand_library, monkeypatch):
    import core.engines.sd as sd
    from core.engines.sd import ModelEntry

    record_id = save_image(brand_library[5])
    monkeypatch.setattr(sd, "list_models", lambda: [])
    at = open_page(record_id)
    at.radio(key="analyze_space").set_value("latent").run()
    assert any("needs a Stable Diffusion model" in w.value for w in at.warning)
    assert at.button(key="analyze_go").disabled

    class FakeEngine:  # the real one would load a whole pipeline; only its VAE matters here
        def vae_for(self, model):
            assert model == "tiny"
            return type("Codec", (), {"vae": _tiny_vae()})()

    monkeypatch.setattr(sd, "list_models", lambda: [ModelEntry("tiny", "Tiny test model", "folder")])
    monkeypatch.setattr(sd, "StableDiffusionEngine", FakeEngine)
    at.run()
    assert at.selectbox(key="analyze_model").value == "tiny"
    check(at)
    assert not failures(at), failures(at)
    assert "image-model view" in texts(at)
    assert "shot_05" in texts(at)


def test_a_studio_image_gets_the_same_verdict_on_the_mosaic_view_and_the_check(tmp_path):
    """Issue 16: one verdict, from the exact sources, with the same words and figures on both pages."""
    from core.analyzer.verdict import studio_verdict
    from tests.studio_images import studio_record, tiny_library

    library = tiny_library(tmp_path / "refs")
    record = studio_record(library, seed=0)
    verdict = studio_verdict(record, Store(), LibraryManager(), library)
    assert verdict is not None

    mosaic = signed_in(AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT))
    mosaic.run()
    mosaic.switch_page("pages/mosaic.py")
    mosaic.query_params["id"] = record.id
    mosaic.run()
    assert not mosaic.exception, [e.value for e in mosaic.exception]
    at = open_page(record.id)
    check(at, library=library)
    for page in (mosaic, at):
        body = texts(page)
        assert verdict.summary in body and verdict.label in body and verdict.basis_line in body
        score = next(m for m in page.metric if m.label == "Originality score")
        assert score.value == f"{verdict.originality} / 100"
        piece = next(m for m in page.metric if m.label == "Largest copied piece")
        assert piece.value == f"{verdict.largest_region * 100:.0f} %"
        if verdict.small_library:
            assert "only 4 pictures" in body
        # issue 19: the words shown everywhere (campaign cards, contact sheet, CSV): the originality band and
        # the figure that decided the copy risk, under the score and the label
        words = verdict.words
        captions = [re.sub(r"\\(.)", r"\1", c.value) for c in page.caption]
        assert words.band and words.band[:1].upper() + words.band[1:] in captions
        assert words.figure and words.figure[:1].upper() + words.figure[1:] in captions
    # the verdict's "from one picture" is the Mosaic view's own exact-source figure
    assert f"The largest single source supplies **{verdict.top_share * 100:.0f} %** of the pixels" in texts(mosaic)
    shown = next(m for m in mosaic.metric if m.label == "From one picture")
    assert shown.value == f"{verdict.top_share * 100:.0f} %"
    assert "The Mosaic view shows this same verdict" in texts(at)
    assert "The Originality check shows this same verdict" in texts(mosaic)
    assert "What the library search found" in texts(at)


def test_library_choices_say_their_size_as_people_write_it() -> None:
    """"bench — your library, 100,000 pictures", as the Libraries page says it; not "100000 pictures" nor
    "1 pictures"."""
    from core.libraries.records import LibraryInfo
    from pages.parts.analyze_inputs import _library_label

    def info(count: int, kind: str = "user", built: bool = True) -> LibraryInfo:
        return LibraryInfo("bench", "bench", "", kind, count, 3, [], "", built)

    assert _library_label(info(100_000)) == "bench — your library, 100,000 pictures"
    assert _library_label(info(1)) == "bench — your library, 1 picture"
    assert _library_label(info(0)) == "bench — empty"
    assert _library_label(info(1_797, "builtin")) == "bench — built-in, 1,797 pictures"
    assert _library_label(info(0, "builtin", built=False)) == "bench — built-in, prepared on first use"


def test_the_generate_and_campaigns_pickers_name_a_library_with_its_size() -> None:
    from core.libraries.records import LibraryInfo
    from pages.parts.shared import library_label

    def info(count: int, built: bool = True) -> LibraryInfo:
        return LibraryInfo("bench", "Bench shots", "", "user", count, 3, [], "", built)

    assert library_label(info(100_000)) == "Bench shots (100,000 pictures)"
    assert library_label(info(1)) == "Bench shots (1 picture)"
    assert library_label(info(0, built=False)) == "Bench shots"
