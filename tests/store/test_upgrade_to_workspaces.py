"""A data folder of the studio before sign-in (schema 0003, files in today's layout) upgrades without loss.

Every image, campaign (with its items), job, library, template and the brand kit is kept, unchanged,
in the "default" workspace, which the first administrator then owns. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from sqlalchemy import create_engine, text

from core.accounts import Accounts
from core.campaigns import CampaignStore
from core.jobs import JobQueue
from core.libraries import LibraryManager
from core.store import Store, schema
from core.store.store import dispose_engine
from core.templates import TemplateLibrary, load_brand_kit, save_brand_kit

TABLES = ("generations", "campaigns", "campaign_items", "jobs")


def _old_studio(url: str, data) -> None:
    """What a studio of the previous release holds: rows of schema 0003 and its files."""
    engine = create_engine(url)
    try:
        schema.upgrade(engine, "0003")
        images = data / "images"
        images.mkdir(parents=True, exist_ok=True)
        with engine.begin() as connection:
            for i in range(3):
                Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(images / f"old{i}.png")
                connection.execute(
                    text(
                        "INSERT INTO generations (id, created_at, batch_id, engine, seed, width, height, library, "
                        "title, params, image_file) VALUES (:id, :at, 'b1', 'local-score', :seed, 8, 8, 'faces', "
                        ":title, :params, :file)"
                    ),
                    {"id": f"old{i}", "at": f"2026-0{i + 1}-01 10:00:00", "seed": 2**40 + i, "title": f"image {i}",
                     "params": json.dumps({"steps": 3}), "file": f"old{i}.png"},
                )
            connection.execute(
                text(
                    "INSERT INTO campaigns (id, name, template, template_snapshot, fields, engine, created, updated, "
                    "status, notices, seed) VALUES ('camp1', 'Spring launch', 'ab-ad-pair', '{}', :fields, "
                    "'local-score', '2026-03-01 10:00:00', '2026-03-01 10:00:00', 'partial', '[]', 5)"
                ),
                {"fields": json.dumps({"product": "bottle"})},
            )
            for position, (status, generation) in enumerate((("done", "old0"), ("pending", None))):
                connection.execute(
                    text(
                        "INSERT INTO campaign_items (id, campaign_id, position, spec, status, attempt, generation_id, "
                        "history, starred, rejected, notes, updated) VALUES (:id, 'camp1', :pos, '{}', :status, 0, "
                        ":gen, '[]', :starred, false, :notes, '2026-03-01 10:00:00')"
                    ),
                    {"id": f"item{position}", "pos": position, "status": status, "gen": generation,
                     "starred": position == 0, "notes": "use for launch" if position == 0 else ""},
                )
            for job_id, state in (("job-done", "done"), ("job-queued", "queued")):
                connection.execute(
                    text(
                        "INSERT INTO jobs (id, kind, owner, title, state, params, result, progress, message, device, "
                        "cancel_requested, attempts, max_attempts, created_at) VALUES (:id, 'generate', 'cli:me', "
                        "'4 images', :state, '{}', '{}', 0, '', 'cpu', false, 0, 3, '2026-03-02 10:00:00')"
                    ),
                    {"id": job_id, "state": state},
                )
    finally:
        engine.dispose()
    # the files of today's layout (the default workspace keeps them where they are)
    LibraryManager().create("brand-shots", title="Brand shots")
    library = TemplateLibrary()
    library.save(library.duplicate("ab-ad-pair", new_id="our-ab"))
    save_brand_kit({"name": "Our brand", "palette": ["#112233"], "must_use": ["handmade"]})


def _rows(url: str) -> dict[str, list[dict]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table: [dict(r._mapping) for r in connection.execute(text(f"SELECT * FROM {table} ORDER BY id"))]
                for table in TABLES
            }
    finally:
        engine.dispose()


def test_an_old_data_folder_keeps_every_record_in_the_default_workspace(database_url, isolated_data_dir):
    _old_studio(database_url, isolated_data_dir)
    before = _rows(database_url)
    dispose_engine(database_url)

    store = Store()  # opening the studio upgrades it
    after = _rows(database_url)
    for table in TABLES:
        assert len(after[table]) == len(before[table]) > 0, table
        for old, new in zip(before[table], after[table], strict=True):
            assert {k: v for k, v in new.items() if k != "workspace"} == old, table  # every value kept
            if "workspace" in new:
                assert new["workspace"] == "default"

    assert [r.id for r in store.list()] == ["old2", "old1", "old0"]
    assert store.image(store.get("old1")).size == (8, 8) and store.get("old1").seed == 2**40 + 1
    campaigns = CampaignStore(store)
    assert [c.name for c in campaigns.list()] == ["Spring launch"]
    items = campaigns.items("camp1")
    assert items[0].starred and items[0].notes == "use for launch" and campaigns.generation(items[0]).id == "old0"
    queue = JobQueue(store)
    assert {j.id for j in queue.list()} == {"job-done", "job-queued"}
    assert queue.claim("worker-1").id == "job-queued"  # the waiting job still runs
    assert LibraryManager().get("brand-shots").title == "Brand shots"
    assert "our-ab" in TemplateLibrary().ids()
    assert load_brand_kit("default").name == "Our brand"

    accounts = Accounts(store)
    assert [w.name for w in accounts.list_workspaces()] == ["default"]
    admin = accounts.create_first_admin("root", "correct horse battery")
    access = accounts.access(admin, "default")
    assert access.role == "admin" and access.can("delete")
