"""A database address or data folder that cannot be used gives a message saying what to do (issue 13, item 12)."""

import pytest

from core import config
from core.errors import MosaicError
from core.store import Store


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url at all", "not a valid address"),
        ("foo://somewhere/db", "cannot use here"),
        ("mysql://user:secret@localhost/mosaic", "cannot use here"),
        ("postgresql+psycopg://user:secret@127.0.0.1:1/mosaic", "could not be reached"),
        ("sqlite:////no/such/folder/mosaic.db", "could not be opened"),
    ],
)
def test_an_unusable_database_address_is_explained(monkeypatch, url, expected):
    monkeypatch.setenv("MOSAIC_DATABASE_URL", url)
    with pytest.raises(MosaicError, match=expected) as caught:
        Store()
    assert "secret" not in str(caught.value)  # a password is never repeated
    assert "MOSAIC_DATABASE_URL" in str(caught.value)


def test_a_damaged_database_file_is_explained(monkeypatch, tmp_path):
    damaged = tmp_path / "mosaic.db"
    damaged.write_bytes(bytes(range(256)) * 40)
    monkeypatch.setenv("MOSAIC_DATABASE_URL", f"sqlite:///{damaged}")
    with pytest.raises(MosaicError, match="damaged or is not a database file"):
        Store()


def test_a_data_folder_that_is_a_file_is_explained(monkeypatch, tmp_path):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    monkeypatch.setenv("MOSAIC_DATA_DIR", str(a_file))
    with pytest.raises(MosaicError, match="is a file, not a folder"):
        config.data_dir()
    with pytest.raises(MosaicError, match="is a file, not a folder"):
        config.images_dir()
