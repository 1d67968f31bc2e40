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


def test_recover_discards_stale_staged_files_without_record_and_orphan_records():
    store = Store()
    (record,) = store.save([_item()])
    stray = store.staging_dir / "deadbeef.png"
    stray.write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(stray, (old, old))
    fresh = store.staging_dir / "inflight.png"
    fresh.write_bytes(b"being written")
    store.image_path(record).unlink()  # image lost: its record must go
    counts = Store(recover=False).recover()
    assert counts["discarded"] == 1 and counts["orphan_records"] == 1
    assert not stray.exists() and fresh.exists()  # a young file may be another process's write
    assert Store().list() == []


def test_database_url_from_environment(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'other.db'}"
    monkeypatch.setenv("MOSAIC_DATABASE_URL", url)
    Store().save([_item()])
    assert (tmp_path / "other.db").exists()
