"""Campaigns end to end with real (tiny) generation: run, persist, interrupt, resume, export."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from core.campaigns import (
    CONTACT_SHEET,
    MANIFEST,
    CampaignRunner,
    CampaignStore,
    export_campaign_zip,
    parse_field_args,
    plan_campaign,
    read_manifest,
    run_campaign_cli,
)
from core.engines.base import CancelToken
from core.store import Store

ROOT = Path(__file__).resolve().parents[2]


class Killed(BaseException):
    """Stands in for the process dying: not an Exception, so nothing catches it."""


def _twelve(fast, seed=10):
    # 3 channels x 2 styles x 2 seeds
    return plan_campaign(
        "seasonal-campaign", {"product": "wool scarf"}, engine="local-score", seeds=2, seed=seed, **fast
    )


def test_local_campaign_exports_zip_matching_its_manifest(fast):
    plan = plan_campaign(
        "ab-ad-pair", {"product": "bottle", "benefit": "cold water"}, engine="local-score", seed=1, **fast
    )
    campaigns = CampaignStore()
    campaign = campaigns.create(plan)
    seen = []
    runner = CampaignRunner(campaigns, analyze=lambda record: {"originality": 0.5, "copy_risk": "low"})
    report = runner.run(campaign.id, on_progress=seen.append)
    assert len(report.made) == 4 and report.status == "done"
    assert {p.count for p in seen} == {4} and [p.image_index for p in seen][-1] == 3 and seen[-1].fraction == 1.0
    items = campaigns.items(campaign.id)
    campaigns.star(items[0].id)
    campaigns.reject(items[1].id)
    campaigns.set_notes(items[2].id, "=use for launch")

    data = export_campaign_zip(campaign.id)
    archive = zipfile.ZipFile(io.BytesIO(data))
    rows = read_manifest(archive.read(MANIFEST).decode())
    pngs = sorted(n for n in archive.namelist() if n.endswith(".png"))
    assert sorted(r["file"] for r in rows) == pngs and len(pngs) == 4
    store = campaigns.store
    for row, item in zip(rows, campaigns.items(campaign.id), strict=True):
        record = store.get(row["generation_id"])
        assert archive.read(row["file"]) == store.image_bytes(record)  # stored bytes, metadata included
        image = Image.open(io.BytesIO(archive.read(row["file"])))
        assert "wool" not in image.text["parameters"] and '"campaign_item"' in image.text["mosaic"]
        assert row["seed"] == str(item.spec["seed"]) == str(record.seed)
        assert row["size"] == "16x16" and row["engine_id"] == "local-score" and row["originality_score"] == "50"
        assert row["originality_words"] == "Originality 50 / 100 — partly borrowed"
        assert row["copy_risk_level"] == "low" and row["copy_risk_words"] == "Low copy risk"
        assert row["made_with"] == "Made offline from the Faces and backgrounds library"
        assert row["prompt_used"] == "no" and "bottle" in row["prompt"]
    assert [r["star"] for r in rows] == ["yes", "", "", ""] and rows[1]["rejected"] == "yes"
    assert rows[2]["notes"] == "'=use for launch"  # not run as a spreadsheet formula
    sheet = archive.read(CONTACT_SHEET).decode()
    assert all(f'src="{name}"' in sheet for name in pngs)
    assert "http://" not in sheet and "https://" not in sheet and "<script" not in sheet
    assert "no text model" in sheet and "Low copy risk" in sheet and "Originality 50 / 100" in sheet
    assert "Made offline from the Faces and backgrounds library" in sheet
    assert "local-score" not in sheet and "bbels" not in sheet.lower() and "copy risk 0" not in sheet

    only_starred = zipfile.ZipFile(io.BytesIO(export_campaign_zip(campaign.id, only_starred=True)))
    assert len([n for n in only_starred.namelist() if n.endswith(".png")]) == 1


def test_campaign_survives_a_restart(fast):
    plan = plan_campaign(
        "mood-board", {"theme": "forest"}, engine="local-score", styles=["Texture", "Light"], seed=3, **fast
    )
    first = CampaignStore(Store())
    campaign = first.create(plan)
    CampaignRunner(first).run(campaign.id)
    first.star(first.items(campaign.id)[1].id)

    again = CampaignStore(Store())  # new objects, as after restarting the studio
    (listed,) = again.list()
    assert listed.id == campaign.id and listed.status == "done" and listed.fields["theme"] == "forest"
    assert listed.template == "mood-board" and listed.engine == "local-score" and listed.notices
    items = again.items(campaign.id)
    assert [i.status for i in items] == ["done", "done"] and [i.starred for i in items] == [False, True]
    assert all(again.generation(i) is not None for i in items)
    assert [again.variation(i).seed for i in items] == [3, 4]


def test_interrupted_campaign_keeps_finished_images_and_resumes(fast):
    campaigns = CampaignStore()
    campaign = campaigns.create(_twelve(fast))
    made = []

    def die_on_fifth_image(progress):
        if progress.image_index == 5:
            raise Killed()

    with pytest.raises(Killed):
        CampaignRunner(campaigns).run(campaign.id, on_progress=die_on_fifth_image)
    items = campaigns.items(campaign.id)
    assert [i.status for i in items] == ["done"] * 5 + ["pending"] * 7
    done_ids = [i.generation_id for i in items[:5]]
    assert all(campaigns.store.image_path(campaigns.store.get(g)).exists() for g in done_ids)

    report = CampaignRunner(CampaignStore()).run(campaign.id, on_progress=made.append)
    assert len(report.made) == 7 and report.status == "done"
    assert {p.count for p in made} == {7}
    items = campaigns.items(campaign.id)
    assert [i.generation_id for i in items[:5]] == done_ids
    assert len([r for r in campaigns.store.list() if r.batch_id == campaign.id]) == 12


def test_image_saved_just_before_a_crash_is_relinked_not_made_twice(fast, monkeypatch):
    campaigns = CampaignStore()
    campaign = campaigns.create(
        plan_campaign("ab-ad-pair", {"product": "a", "benefit": "b"}, engine="local-score", seed=1, **fast)
    )
    calls = {"n": 0}
    real = CampaignStore.mark_done

    def crash_on_second(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise Killed()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(CampaignStore, "mark_done", crash_on_second)
    with pytest.raises(Killed):
        CampaignRunner(campaigns).run(campaign.id)
    monkeypatch.setattr(CampaignStore, "mark_done", real)
    assert [i.status for i in campaigns.items(campaign.id)] == ["done", "pending", "pending", "pending"]
    report = CampaignRunner(campaigns).run(campaign.id)
    assert len(report.made) == 2  # the second image was re-linked, not generated again
    assert len([r for r in campaigns.store.list() if r.batch_id == campaign.id]) == 4


def test_killed_process_keeps_its_images_and_the_campaign_resumes(fast, tmp_path):
    campaigns = CampaignStore()
    campaign = campaigns.create(_twelve(fast, seed=50))
    script = textwrap.dedent(f"""
        import os, signal
        from core.campaigns import CampaignRunner
        def progress(p):
            if p.image_index == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        CampaignRunner().run({campaign.id!r}, on_progress=progress)
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]

    reopened = CampaignStore(Store())
    assert reopened.get(campaign.id).status == "running"  # it died while running
    assert [i.status for i in reopened.items(campaign.id)] == ["done"] * 3 + ["pending"] * 9
    report = CampaignRunner(reopened).run(campaign.id)
    assert len(report.made) == 9 and reopened.get(campaign.id).status == "done"


def test_regenerate_cancel_and_failures(fast):
    campaigns = CampaignStore()
    campaign = campaigns.create(
        plan_campaign("ab-ad-pair", {"product": "a", "benefit": "b"}, engine="local-score", seed=1, **fast)
    )
    token = CancelToken()
    token.cancel()
    report = CampaignRunner(campaigns).run(campaign.id, cancel=token)
    assert report.cancelled and report.pending == 4 and report.status == "planned"

    runner = CampaignRunner(campaigns)
    runner.run(campaign.id)
    item = campaigns.items(campaign.id)[0]
    old = item.generation_id
    new = runner.regenerate(item.id, seed=999)
    assert new.status == "done" and new.generation_id != old and new.history == [old]
    assert campaigns.variation(new).seed == 999 and campaigns.store.get(new.generation_id).seed == 999
    campaigns.store.get(old)  # the earlier image stays in the gallery

    # a broken variation fails alone; the rest of the campaign is kept
    bad = campaigns.create(
        plan_campaign("ab-ad-pair", {"product": "a", "benefit": "b"}, engine="local-score", seed=1, **fast)
    )
    first = campaigns.items(bad.id)[1]
    campaigns._update(first.id, spec=dict(first.spec, request=dict(first.spec["request"], steps=1)))
    report = CampaignRunner(campaigns).run(bad.id)
    assert len(report.made) == 3 and report.failed == [first.id] and "Steps" in report.errors[0]
    assert campaigns.get(bad.id).status == "partial" and "Steps" in campaigns.item(first.id).error


def test_run_campaign_cli_writes_folder_and_zip(fast, tmp_path):
    fields = parse_field_args(["product=oat milk", "colours=navy", "colours=#FF7F50"])
    assert fields == {"product": "oat milk", "colours": "navy,#FF7F50"}
    result = run_campaign_cli(
        "social-post-set",
        fields,
        engine="local-score",
        out_dir=tmp_path / "out",
        channels=["square", "story"],
        seed=2,
        **fast,
    )
    out = tmp_path / "out"
    rows = read_manifest((out / MANIFEST).read_text())
    assert [r["channel"] for r in rows] == ["square", "story"]
    assert all((out / r["file"]).is_file() for r in rows) and (out / CONTACT_SHEET).is_file()
    assert result.zip_path and zipfile.ZipFile(result.zip_path).read(MANIFEST) == (out / MANIFEST).read_bytes()
    assert result.as_dict()["status"] == "done" and any("no text model" in n for n in result.as_dict()["notices"])
