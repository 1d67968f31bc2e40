import json
import os
import time

import numpy as np
import pytest
from PIL import Image

from core.engines.base import GeneratedImage
from core.errors import BadInputError
from core.images import read_png_text
from core.store import Store


def _item(seed: int = 1, arrays: bool = True) -> GeneratedImage:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    extra = {"sources": rng.integers(0, 5, (8, 8, 3)).astype(np.int32)} if arrays else {}
    return GeneratedImage(image=image, seed=seed, engine="test", params={"library": "lib", "steps": 3}, arrays=extra)


def test_save_list_get_and_survive_reopen(isolated_data_dir):
    store = Store()
    records = store.save([_item(1), _item(2, arrays=False)], title="t")
    assert len({r.batch_id for r in records}) == 1
    reopened = Store()
    listed = reopened.list()
    assert {r.id for r in listed} == {r.id for r in records}
    first = reopened.get(records[0].id)
    assert reopened.image(first).size == (8, 8)
    assert reopened.arrays(first)["sources"].shape == (8, 8, 3)
    assert reopened.arrays(reopened.get(records[1].id)) == {}
    text = read_png_text(reopened.image_bytes(first))
    assert "Seed: 1" in text["parameters"]
    assert '"library": "lib"' in text["mosaic"]


def test_delete_removes_record_and_files():
    store = Store()
    (record,) = store.save([_item()])
    path = store.image_path(record)
    store.delete(record.id)
    assert not path.exists()
    with pytest.raises(BadInputError):
        store.get(record.id)


def test_failed_commit_leaves_no_files(monkeypatch):
    store = Store()

    def boom(*_args, **_kwargs):
        raise RuntimeError("database down")

    monkeypatch.setattr(store, "_sessions", type("S", (), {"begin": staticmethod(boom)})())
    with pytest.raises(RuntimeError):
        store.save([_item()])
    assert list(store.staging_dir.iterdir()) == []
    assert [p for p in store.images_dir.iterdir() if p.is_file()] == []


def test_recover_completes_a_write_interrupted_after_commit(monkeypatch):
    store = Store()
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt("crash")))
    with pytest.raises(KeyboardInterrupt):
        store.save([_item()])
    monkeypatch.setattr(os, "replace", real_replace)
    # the record is committed, the files are only staged: reopening finishes the move
    reopened = Store()
    (record,) = reopened.list()
    assert reopened.image_path(record).exists()
    assert reopened.arrays(record)["sources"].shape == (8, 8, 3)


def test_recover_discards_stale_staged_files_without_record_but_keeps_records_whose_file_is_missing():
    store = Store()
    (record,) = store.save([_item()])
    stray = store.staging_dir / "deadbeef.png"
    stray.write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(stray, (old, old))
    fresh = store.staging_dir / "inflight.png"
    fresh.write_bytes(b"being written")
    store.image_path(record).unlink()  # image gone from this folder: reported, never erased
    counts = Store(recover=False).recover()
    assert counts == {"completed": 0, "discarded": 1, "missing": 1}
    assert not stray.exists() and fresh.exists()  # a young file may be another process's write
    reopened = Store()
    assert [r.id for r in reopened.list()] == [record.id]
    assert [r.id for r in reopened.missing()] == [record.id]
    with pytest.raises(BadInputError, match="missing") as caught:
        reopened.image(record)
    assert isinstance(caught.value, OSError)  # callers that catch OSError keep working
    with pytest.raises(BadInputError, match="missing"):
        reopened.image_bytes(record)


def test_another_data_folder_with_the_same_database_deletes_nothing(monkeypatch, tmp_path, capsys):
    """Issue 13 item 4: a plain 'gallery' from another MOSAIC_DATA_DIR once erased every record (2 -> 0)."""
    from core.cli import main

    first = Store()
    records = first.save([_item(1), _item(2)])
    monkeypatch.setenv("MOSAIC_DATA_DIR", str(tmp_path / "elsewhere"))  # same MOSAIC_DATABASE_URL
    assert Store().count() == 2
    assert main(["gallery", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {d["id"] for d in listed} == {r.id for r in records}
    assert all(d["file_missing"] for d in listed)
    assert main(["gallery"]) == 0
    assert "(image file missing)" in capsys.readouterr().out
    monkeypatch.setenv("MOSAIC_DATA_DIR", str(first.images_dir.parent))  # back home: all there, with files
    home = Store()
    assert home.count() == 2 and home.missing() == []
    assert all(home.image(r).size == (8, 8) for r in records)


def test_the_largest_seed_is_stored_and_read_back():
    """Issue 13 item 6: seeds are 64-bit (PostgreSQL had a 32-bit column)."""
    store = Store()
    (record,) = store.save([_item(seed=2**63 - 1)])
    assert Store().get(record.id).seed == 2**63 - 1
    assert read_png_text(store.image_bytes(record))["mosaic"].count(str(2**63 - 1)) >= 1


def test_a_32_bit_seed_column_of_an_older_database_is_widened(database_url):
    from sqlalchemy import BigInteger, Integer, MetaData, Table, create_engine, inspect

    from core.store.models import GenerationRecord
    from core.store.store import dispose_engine

    old = MetaData()  # the table as studios made it before migrations: no workspace, 32-bit seeds
    columns = [c._copy() for c in GenerationRecord.__table__.columns if c.name != "workspace"]
    table = Table("generations", old, *columns)
    table.c.seed.type = Integer()
    engine = create_engine(database_url)
    old.create_all(engine)
    engine.dispose()
    dispose_engine(database_url)
    store = Store()
    (record,) = store.save([_item(seed=2**40)])
    assert Store().get(record.id).seed == 2**40
    engine = create_engine(database_url)
    try:
        seed_type = {c["name"]: c["type"] for c in inspect(engine).get_columns("generations")}["seed"]
        if engine.dialect.name == "postgresql":
            assert isinstance(seed_type, BigInteger)
    finally:
        engine.dispose()


def test_list_refuses_a_limit_that_is_not_a_positive_whole_number():
    store = Store()
    store.save([_item()])
    for bad in (-1, 0, True, 2.5):
        with pytest.raises(BadInputError, match="whole number"):
            store.list(limit=bad)
    assert len(store.list(limit=1)) == 1


def test_save_one_keeps_one_batch_id_across_calls():
    store = Store()
    a = store.save_one(_item(1), batch_id="b1")
    b = store.save_one(_item(2), batch_id="b1")
    assert a.batch_id == b.batch_id == "b1"
    assert store.count() == 2


def test_database_url_from_environment(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'other.db'}"
    monkeypatch.setenv("MOSAIC_DATABASE_URL", url)
    Store().save([_item()])
    assert (tmp_path / "other.db").exists()
