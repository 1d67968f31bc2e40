"""AppTest of the Campaigns page: plan, generate (local score, tiny), compare, star, export, reopen, editors."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from core.campaigns import MANIFEST, CampaignRunner, CampaignStore, plan_campaign, read_manifest
from core.templates import load_brand_kit
from tests.jobs.jobs_helpers import run_queued_jobs
from tests.signin import signed_in

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 240
TEMPLATE = "ab-ad-pair"  # one channel x two styles: 2 images with one seed each


def page() -> AppTest:
    at = signed_in(AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT))
    at.run()
    at.switch_page("pages/campaigns.py").run()
    ok(at)
    return at


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [t.value for t in at.title]
    parts += [i.value for i in at.info] + [e.value for e in at.error] + [s.value for s in at.subheader]
    parts += [s.value for s in at.success]
    return shown("\n".join(str(p) for p in parts))


def shown(markdown: str) -> str:
    """Markdown escaped with core.html.md (names, messages), as the person reads it."""
    return re.sub(r"\\(.)", r"\1", markdown)


def view(at: AppTest, name: str) -> AppTest:
    at.radio(key="camp_view").set_value(name).run()
    return ok(at)


def fill_small_campaign(at: AppTest) -> AppTest:
    at.selectbox(key="camp_template").set_value(TEMPLATE).run()
    at.text_input(key=f"camp_f_{TEMPLATE}_product").set_value("water bottle")
    at.text_input(key=f"camp_f_{TEMPLATE}_benefit").set_value("keeps drinks cold")
    at.radio(key="camp_engine").set_value("local-score").run()
    at.selectbox(key="camp_library").set_value("faces")
    at.select_slider(key="camp_size").set_value(16)
    at.slider(key="camp_steps").set_value(2)
    at.number_input(key=f"camp_seeds_{TEMPLATE}").set_value(1)
    at.text_input(key="camp_name").set_value("Bottle launch")
    if "camp_analyse_new" in [c.key for c in at.checkbox]:
        at.checkbox(key="camp_analyse_new").uncheck()
    at.run()
    ok(at)
    assert not at.error, [e.value for e in at.error]
    return at


def images_shown(at: AppTest) -> int:
    return sum(len(image.value) for image in at.image)


@pytest.fixture
def downloads(monkeypatch) -> list[tuple[bytes, str, str | None]]:
    """Every file handed to a download button (data, mime type, file name)."""
    seen: list[tuple[bytes, str, str | None]] = []
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        if isinstance(path_or_data, bytes) and mimetype == "application/zip":
            seen.append((path_or_data, mimetype, filename))
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return seen


def run_jobs(at) -> None:
    """The page submitted a campaign job: run it as a worker would, then look at the page again."""
    if run_queued_jobs():
        at.run()


def test_campaigns_page_renders_every_section():
    at = page()
    assert "Campaigns" in texts(at)
    assert "Fill in" in texts(at)  # required fields are asked for, not shouted about
    assert not at.error
    for name in ("results", "templates", "brand", "new"):
        view(at, name)
    assert "No campaigns yet" in texts(view(at, "results"))


def test_preview_lists_the_concrete_images_before_generating():
    at = fill_small_campaign(page())
    table = at.dataframe[0].value
    assert len(table) == 2 and set(table["Size (px)"]) == {"16×16"}
    assert any("no text model" in c.value for c in at.caption) or "no text model" in texts(at)
    assert "2 images" in texts(at)
    at.text_input(key=f"camp_f_{TEMPLATE}_colours").set_value("navy, #12").run()
    ok(at)
    assert any("Brand colours" in e.value and "#12" in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="camp_go").disabled


def test_make_a_campaign_star_export_and_reopen(downloads, monkeypatch):
    at = fill_small_campaign(page())
    at.button(key="camp_go").click().run()
    run_jobs(at)
    ok(at)
    assert not at.error, [e.value for e in at.error]
    assert at.radio(key="camp_view").value == "results"
    campaigns = CampaignStore()
    (campaign,) = campaigns.list()
    assert campaign.name == "Bottle launch" and campaign.status == "done"
    items = campaigns.items(campaign.id)
    assert len(items) == 2 and all(i.status == "done" for i in items)
    assert images_shown(at) == 2
    assert "Originality: not checked yet" in texts(at)

    # star one, note another
    at.toggle(key=f"camp_star_{items[0].id}").set_value(True).run()
    ok(at)
    at.text_input(key=f"camp_notes_{items[1].id}").set_value("use for the newsletter").run()
    ok(at)
    items = campaigns.items(campaign.id)
    assert items[0].starred and not items[1].starred
    assert items[1].notes == "use for the newsletter"

    # the download button holds the ZIP, and its manifest matches the campaign
    assert at.get("download_button"), "no export button"
    data, _mime, filename = downloads[-1]
    assert filename and filename.endswith(".zip")
    archive = zipfile.ZipFile(io.BytesIO(data))
    rows = read_manifest(archive.read(MANIFEST).decode())
    assert sorted(r["item_id"] for r in rows) == sorted(i.id for i in items)
    assert sorted(r["file"] for r in rows) == sorted(n for n in archive.namelist() if n.endswith(".png"))
    assert {r["size"] for r in rows} == {"16x16"}
    assert [r["star"] for r in sorted(rows, key=lambda r: r["file"])] == ["yes", ""]

    # originality figures: studio images of the campaign's library get the verdict of their exact sources
    # (the library search is not needed, so a search here would be a mistake)
    import core.analyzer
    from core.analyzer.verdict import studio_verdict
    from core.campaigns.analysis import item_verdict
    from core.libraries import LibraryManager

    def no_search(*_args, **_kwargs):
        raise AssertionError("searched the library for a studio image of that library")

    monkeypatch.setattr(core.analyzer, "analyze_image", no_search, raising=False)
    at.button(key="camp_analyse_now").click().run()
    run_jobs(at)  # the check runs as a campaign job
    ok(at)
    for item in campaigns.items(campaign.id):
        verdict = item_verdict(item)
        record = campaigns.generation(item)
        assert verdict is not None and verdict == studio_verdict(record, campaigns.store, LibraryManager(), "faces")
        words = verdict.words  # the verdict in the words shown everywhere, coloured by its risk
        colour = {"low": "green", "medium": "orange", "high": "red"}[verdict.risk]
        assert f":{colour}[**{words.risk}**]" in texts(at) and words.originality in texts(at), texts(at)
        assert words.originality == f"Originality {verdict.originality} / 100 — " + words.originality.split(" — ")[1]
        if words.reason:
            assert words.reason[1:] in texts(at)

    # one variation made again with a new seed; the old image stays in the gallery
    old = campaigns.item(items[1].id)
    at.button(key=f"camp_regen_{old.id}").click().run()
    run_jobs(at)
    ok(at)
    assert not at.error, [e.value for e in at.error]
    new = campaigns.item(old.id)
    assert new.status == "done" and new.generation_id != old.generation_id and new.spec["seed"] != old.spec["seed"]
    assert new.history == [old.generation_id] and campaigns.store.get(old.generation_id)

    # survives a restart: a fresh session lists and reopens it with its verdicts
    fresh = page()
    view(fresh, "results")
    assert fresh.selectbox(key="camp_open").value == campaign.id
    assert "Bottle launch" in texts(fresh)
    assert fresh.toggle(key=f"camp_star_{items[0].id}").value is True
    assert fresh.text_input(key=f"camp_notes_{items[1].id}").value == "use for the newsletter"
    assert images_shown(fresh) == 2


def test_interrupted_campaign_reopens_with_finished_images_and_resumes():
    plan = plan_campaign(
        "marketing-variations",
        {"product": "bottle"},
        engine="local-score",
        styles=["Photographic", "Minimal", "Illustrated"],
        seed=3,
        seeds=1,
        library="faces",
        size=16,
        steps=2,
    )
    campaigns = CampaignStore()
    campaign = campaigns.create(plan)
    first, second, third = campaigns.items(campaign.id)
    CampaignRunner(campaigns).run(campaign.id, item_ids=[first.id, second.id])
    # as if the process died after saving the second image but before marking its item done
    campaigns._update(second.id, status="pending", generation_id=None)
    campaigns.set_status(campaign.id, "running")

    at = view(page(), "results")  # opening reconciles: the saved image is linked back
    assert "2 of 3 images made" in texts(at) and "1 waiting" in texts(at)
    assert images_shown(at) == 2
    assert campaigns.get(campaign.id).status == "paused"
    if "camp_analyse_resume" in [c.key for c in at.checkbox]:
        at.checkbox(key="camp_analyse_resume").uncheck().run()
    at.button(key="camp_resume").click().run()
    run_jobs(at)
    ok(at)
    counts = campaigns.counts(campaign.id)
    assert counts["done"] == 3 and counts["pending"] == 0
    assert "camp_resume" not in [b.key for b in at.button]
    assert images_shown(at) == 3


def test_template_editor_names_the_bad_field_and_keeps_the_text():
    at = view(page(), "templates")
    at.selectbox(key="camp_tpl_source").set_value(TEMPLATE).run()
    at.button(key="camp_tpl_load").click().run()
    ok(at)
    text = at.text_area(key="camp_tpl_yaml").value
    assert "name: A/B ad pair (copy)" in text
    broken = text.replace("type: text", "type: sentence", 1)
    at.text_area(key="camp_tpl_yaml").set_value(broken)
    at.text_input(key="camp_tpl_id").set_value("my-ads")
    at.button(key="camp_tpl_save").click().run()
    ok(at)
    assert any("fields[0].type" in shown(e.value) for e in at.error), [e.value for e in at.error]
    assert at.text_area(key="camp_tpl_yaml").value == broken  # nothing lost

    at.text_area(key="camp_tpl_yaml").set_value("name: [unclosed\n")
    at.button(key="camp_tpl_save").click().run()
    ok(at)
    assert any("YAML" in e.value for e in at.error)

    at.text_area(key="camp_tpl_yaml").set_value(text.replace("(copy)", "for spring"))
    at.button(key="camp_tpl_save").click().run()
    ok(at)
    assert not at.error and "Saved" in texts(at)
    view(at, "new")
    assert any(o.startswith("A/B ad pair for spring (yours)") for o in at.selectbox(key="camp_template").options)


def test_brand_kit_saves_and_bad_colour_is_a_clear_error():
    at = view(page(), "brand")
    at.text_input(key="camp_kit_name").set_value("Acme")
    at.text_input(key="camp_kit_palette").set_value("#1B2A4A, #12")
    at.button(key="camp_kit_save").click().run()
    ok(at)
    assert any("palette[1]" in shown(e.value) for e in at.error), [e.value for e in at.error]
    assert load_brand_kit().is_empty

    at.text_input(key="camp_kit_palette").set_value("#1b2a4a, coral")
    at.text_area(key="camp_kit_must").set_value("handmade\nsustainable")
    at.text_area(key="camp_kit_avoid").set_value("plastic")
    at.selectbox(key="camp_kit_library").set_value("faces")
    at.button(key="camp_kit_save").click().run()
    ok(at)
    assert not at.error and "Brand kit saved" in texts(at)
    kit = load_brand_kit()
    assert kit.name == "Acme" and kit.palette == ["#1B2A4A", "coral"]
    assert kit.must_use == ["handmade", "sustainable"] and kit.avoid == ["plastic"] and kit.library == "faces"

    fresh = view(page(), "brand")  # reloads from disk
    assert fresh.text_input(key="camp_kit_palette").value == "#1B2A4A, coral"


def test_stable_diffusion_choice_lists_models_and_previews_real_prompts():
    at = page()
    at.selectbox(key="camp_template").set_value(TEMPLATE).run()
    at.text_input(key=f"camp_f_{TEMPLATE}_product").set_value("water bottle")
    at.text_input(key=f"camp_f_{TEMPLATE}_benefit").set_value("keeps drinks cold")
    at.radio(key="camp_engine").set_value("sd").run()
    ok(at)
    models = at.selectbox(key="camp_model").options
    assert models, "no model choices"
    if at.selectbox(key="camp_model").value == "__custom__":
        pytest.skip("no Stable Diffusion model listed here")
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    assert "Prompt" in table.columns and table["Prompt"].str.contains("water bottle").all()
    assert all("×" in size for size in table["Size (px)"])


@pytest.fixture(scope="module")
def tiny_sd15(tmp_path_factory) -> Path:
    from tests.engines.sd.tiny import build_tiny_sd15

    return build_tiny_sd15(tmp_path_factory.mktemp("sd") / "tiny-sd15")


def test_stable_diffusion_campaign_with_a_tiny_pipeline(tiny_sd15, isolated_data_dir):
    import shutil

    shutil.copytree(tiny_sd15, isolated_data_dir / "models" / "tiny-sd15")
    at = page()
    at.selectbox(key="camp_template").set_value(TEMPLATE).run()
    at.text_input(key=f"camp_f_{TEMPLATE}_product").set_value("water bottle")
    at.text_input(key=f"camp_f_{TEMPLATE}_benefit").set_value("keeps drinks cold")
    at.radio(key="camp_engine").set_value("sd").run()
    at.selectbox(key="camp_model").set_value("tiny-sd15")
    at.number_input(key="camp_sd_steps").set_value(2)
    at.slider(key="camp_scale").set_value(0.1)
    at.number_input(key=f"camp_seeds_{TEMPLATE}").set_value(1)
    if "camp_analyse_new" in [c.key for c in at.checkbox]:
        at.checkbox(key="camp_analyse_new").uncheck()
    at.run()
    ok(at)
    assert not at.error, [e.value for e in at.error]
    at.button(key="camp_go").click().run()
    run_jobs(at)
    ok(at)
    assert not at.error, [e.value for e in at.error]
    (campaign,) = CampaignStore().list()
    assert campaign.engine == "sd" and campaign.status == "done"
    assert images_shown(at) == 2
