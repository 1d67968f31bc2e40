"""User libraries: create, import files/zips/folders, bad input, removal and deletion."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from core.errors import BadInputError
from core.libraries import LibraryManager, sources


def _reasons(report) -> dict[str, str]:
    return dict(report.skipped)


# -- names and creation ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "Shoes", "my shoes", "../x", ".hidden", "-x", "a" * 65, "café"])
def test_invalid_names_rejected(manager: LibraryManager, bad: str) -> None:
    with pytest.raises(BadInputError, match="not a valid library name"):
        manager.create(bad)


def test_create_and_clash(manager: LibraryManager) -> None:
    info = manager.create("summer-shoes", title="Summer shoes", description="Sandals")
    assert (info.name, info.title, info.kind, info.count) == ("summer-shoes", "Summer shoes", "user", 0)
    assert info.created_at
    with pytest.raises(BadInputError, match="already exists"):
        manager.create("summer-shoes")


def test_unknown_library_lists_available(manager: LibraryManager) -> None:
    manager.create("mine")
    with pytest.raises(BadInputError, match="photos, faces, digits, mine"):
        manager.get("nope")


def test_load_empty_library(manager: LibraryManager) -> None:
    manager.create("empty")
    with pytest.raises(BadInputError, match="no pictures yet: add pictures"):
        manager.load("empty", 32)


# -- uploads ---------------------------------------------------------------------------------------


def test_upload_with_labels_from_subfolders(manager: LibraryManager, png, jpeg) -> None:
    report = manager.create_from_files(
        "shop",
        [
            ("shoes/a.png", png((255, 0, 0))),
            ("shoes/b.jpg", jpeg()),
            ("bags/c.png", png((0, 0, 255))),
            ("loose.png", png((0, 255, 0))),
        ],
    )
    assert report.added == 4 and report.skipped == []
    info = manager.get("shop")
    assert info.count == 4 and info.channels == 3
    assert info.label_names == ["shoes", "bags"]
    assert [item["label"] for item in manager.items("shop")] == ["shoes", "shoes", "bags", None]
    assert [item["source"] for item in manager.items("shop")][0] == "shoes/a.png"
    batch = manager.load("shop", 16)
    assert batch.images.shape == (4, 3, 16, 16)
    assert batch.labels.tolist() == [0, 0, 1, -1]
    assert batch.label_names == ["shoes", "bags"]


def test_bad_files_skipped_with_reasons(manager: LibraryManager, png, jpeg) -> None:
    good_png, good_jpeg = png(), jpeg(size=(64, 64))
    manager.create("mixed")
    report = manager.add_files(
        "mixed",
        [
            ("empty.png", b""),
            ("notes.png", b"this is just some text, not a picture"),
            ("cut.png", good_png[: len(good_png) // 2]),
            ("cut.jpg", good_jpeg[: len(good_jpeg) // 2]),
            ("good.png", good_png),
            ("good.jpg", good_jpeg),
            (".DS_Store", b"\x00\x01"),
            ("__MACOSX/._good.png", b"junk"),
        ],
    )
    assert report.added == 2
    reasons = _reasons(report)
    assert set(reasons) == {"empty.png", "notes.png", "cut.png", "cut.jpg"}  # hidden files: silent
    assert "empty" in reasons["empty.png"]
    assert "not an image" in reasons["notes.png"]
    assert "damaged or incomplete" in reasons["cut.png"]
    assert "damaged or incomplete" in reasons["cut.jpg"]
    assert manager.get("mixed").count == 2


def test_huge_image_downscaled_with_notice(manager: LibraryManager) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (3000, 2000), (10, 120, 200)).save(buffer, format="JPEG")
    report = manager.create_from_files("big", [("photo.jpg", buffer.getvalue())])
    assert report.added == 1
    assert report.notices == ["photo.jpg was 3000×2000 px; downscaled to 1024×683 to keep the library fast."]
    assert manager.item_image("big", 0).size == (1024, 683)


def test_grayscale_library(manager: LibraryManager, png) -> None:
    manager.create_from_files("gray", [("a.png", png(128, mode="L")), ("b.png", png((90, 90, 90)))])
    info = manager.get("gray")
    assert info.channels == 1  # an RGB file with identical channels is stored as grayscale
    assert manager.load("gray", 8).images.shape == (2, 1, 8, 8)
    manager.add_files("gray", [("c.png", png((255, 0, 0)))])
    assert manager.get("gray").channels == 3


def test_empty_import_leaves_nothing_behind(manager: LibraryManager, data_dir: Path) -> None:
    with pytest.raises(BadInputError, match="No pictures were added to “nothing”: none of the 2 files.*bad.png"):
        manager.create_from_files("nothing", [("bad.png", b"nope"), ("empty.jpg", b"")])
    with pytest.raises(BadInputError, match="No pictures were added to “nothing”: no picture files were found"):
        manager.create_from_files("nothing", [(".DS_Store", b"x")])
    assert not (data_dir / "libraries" / "nothing").exists()
    assert "nothing" not in [info.name for info in manager.list()]
    manager.create("nothing")  # the name is free again


def test_failed_import_keeps_existing_items(manager: LibraryManager, png, monkeypatch) -> None:
    manager.create_from_files("keep", [("a.png", png()), ("b.png", png((0, 0, 0)))])
    before = manager.items("keep")
    with pytest.raises(BadInputError):
        manager.add_files("keep", [("bad.png", b"nope")])
    with pytest.raises(BadInputError, match="not a readable zip"):
        manager.add_zip("keep", b"PK\x03\x04 not really")

    from core.libraries.storage import LibraryStorage

    real_write = LibraryStorage.write_encoded
    calls = {"n": 0}

    def flaky_write(self, item_id, png, thumb):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real_write(self, item_id, png, thumb)

    monkeypatch.setattr(LibraryStorage, "write_encoded", flaky_write)
    with pytest.raises(OSError, match="disk full"):
        manager.add_files("keep", [("c.png", png()), ("d.png", png())])
    assert manager.items("keep") == before
    images = list((Path(before[0]["path"]).parent).glob("*.png"))
    assert len(images) == 2  # the file written before the failure was cleaned up


# -- zips --------------------------------------------------------------------------------------------


def test_zip_import_with_labels_hidden_and_nested(manager: LibraryManager, png, make_zip) -> None:
    data = make_zip(
        {
            "shoes/a.png": png((255, 0, 0)),
            "shoes/b.png": png((250, 0, 0)),
            "bags/c.png": png((0, 0, 255)),
            "root.png": png((0, 255, 0)),
            "__MACOSX/shoes/._a.png": b"resource fork",
            "shoes/.DS_Store": b"junk",
            "more.zip": make_zip({"x.png": png()}),
            "readme.txt": b"hello",
        }
    )
    report = manager.create_from_zip("zipped", data)
    assert report.added == 4
    reasons = _reasons(report)
    assert set(reasons) == {"more.zip", "readme.txt"}
    assert "not opened" in reasons["more.zip"]
    assert [item["label"] for item in manager.items("zipped")] == ["shoes", "shoes", "bags", None]


def test_zip_wrapper_folder_is_not_a_label(manager: LibraryManager, png, make_zip) -> None:
    data = make_zip({"export/shoes/a.png": png(), "export/bags/b.png": png((1, 2, 3))})
    manager.create_from_zip("wrapped", data)
    assert manager.get("wrapped").label_names == ["shoes", "bags"]


def test_zip_slip_rejected(manager: LibraryManager, png, make_zip, data_dir: Path) -> None:
    data = make_zip(
        {
            "../evil.png": png(),
            "/etc/evil.png": png(),
            "ok/../../evil2.png": png(),
            "C:/windows/evil.png": png(),
            "..\\win.png": png(),
            "good.png": png(),
        }
    )
    report = manager.create_from_zip("slip", data)
    assert report.added == 1
    assert len(report.skipped) == 5
    assert all("points outside it and was skipped" in reason for _, reason in report.skipped)
    # the names are shown without their tricks: no "..", no drive letter, no leading "/"
    assert sorted(name for name, _ in report.skipped) == [
        "etc/evil.png", "evil.png", "ok/evil2.png", "win.png", "windows/evil.png"
    ]
    assert not any(".." in name or ":" in name or name.startswith("/") for name, _ in report.skipped)
    assert not list(data_dir.rglob("evil*.png")) and not list(data_dir.parent.rglob("evil*.png"))


def test_zip_with_too_many_files_rejected_before_extraction(manager: LibraryManager, make_zip) -> None:
    data = make_zip({f"f{i}.png": b"x" for i in range(sources.MAX_IMPORT_FILES + 1)})
    with pytest.raises(BadInputError, match="5,001 files; at most 5,000"):
        manager.create_from_zip("many", data)
    assert "many" not in [info.name for info in manager.list()]


def test_zip_too_large_uncompressed_rejected(manager: LibraryManager, png, make_zip, monkeypatch) -> None:
    monkeypatch.setattr(sources, "MAX_IMPORT_BYTES", 1000)
    data = make_zip({"a.png": png(size=(200, 200)), "b.bin": b"\0" * 5000})
    with pytest.raises(BadInputError, match="unpacks to"):
        manager.create_from_zip("large", data)
    assert "large" not in [info.name for info in manager.list()]


def test_not_a_zip(manager: LibraryManager, png) -> None:
    with pytest.raises(BadInputError, match="not a readable zip"):
        manager.create_from_zip("notzip", png())
    with pytest.raises(BadInputError, match="empty"):
        manager.create_from_zip("notzip", b"")
    assert "notzip" not in [info.name for info in manager.list()]


# -- folders -----------------------------------------------------------------------------------------


def test_folder_import(manager: LibraryManager, png, tmp_path: Path) -> None:
    folder = tmp_path / "source"
    (folder / "shoes").mkdir(parents=True)
    (folder / ".git").mkdir()
    (folder / "shoes" / "a.png").write_bytes(png())
    (folder / "b.png").write_bytes(png((0, 0, 0)))
    (folder / "bad.png").write_bytes(b"")
    (folder / ".git" / "x.png").write_bytes(png())
    (folder / "Thumbs.db").write_bytes(b"x")
    os.symlink(folder / "b.png", folder / "link.png")
    report = manager.create_from_folder("fromdisk", folder)
    assert report.added == 2
    reasons = _reasons(report)
    assert set(reasons) == {"bad.png", "link.png"}
    assert [item["label"] for item in manager.items("fromdisk")] == [None, "shoes"]
    assert (folder / "b.png").exists()  # copied, not moved
    with pytest.raises(BadInputError, match="does not exist"):
        manager.add_folder("fromdisk", tmp_path / "missing")


# -- removal and deletion ------------------------------------------------------------------------


def test_remove_items_prunes_labels(manager: LibraryManager, png) -> None:
    manager.create_from_files(
        "rm", [("a/x.png", png()), ("b/y.png", png((0, 0, 0))), ("b/z.png", png((1, 1, 1)))]
    )
    items = manager.items("rm")
    info = manager.remove_items("rm", [items[0]["id"]])
    assert info.count == 2 and info.label_names == ["b"]
    assert not Path(items[0]["path"]).exists()
    assert manager.load("rm", 8).labels.tolist() == [0, 0]
    with pytest.raises(BadInputError, match="nothing was removed"):
        manager.remove_items("rm", ["nope"])
    assert manager.get("rm").count == 2


def test_delete_user_library(manager: LibraryManager, png, data_dir: Path) -> None:
    manager.create_from_files("gone", [("a.png", png())])
    manager.delete("gone")
    assert not (data_dir / "libraries" / "gone").exists()
    assert not [p for p in (data_dir / "libraries").iterdir() if p.name.startswith(".") and p.name != ".locks"]
    with pytest.raises(BadInputError, match="no library called 'gone'"):
        manager.delete("gone")


def test_manifest_is_plain_json(manager: LibraryManager, png, data_dir: Path) -> None:
    manager.create_from_files("json", [("shoes/a.png", png())], title="JSON", description="d")
    folder = data_dir / "libraries" / "json"
    raw = json.loads((folder / "library.json").read_text())
    assert raw["name"] == "json" and raw["kind"] == "user" and raw["count"] == 1
    assert raw["channels"] == 3 and raw["label_names"] == ["shoes"]
    item = raw["items"][0]
    assert item["label"] == 0 and item["source"] == "shoes/a.png"
    assert (folder / item["file"]).is_file() and (folder / "thumbs" / f"{item['id']}.png").is_file()
    assert not list(folder.glob(".*"))  # no temporary files left


def test_damaged_user_manifest_is_skipped_in_list(manager: LibraryManager, png, data_dir: Path) -> None:
    manager.create_from_files("ok", [("a.png", png())])
    manager.create_from_files("broken", [("a.png", png())])
    (data_dir / "libraries" / "broken" / "library.json").write_text('{"items": [{"id": "../x"}]}')
    assert "broken" not in [info.name for info in manager.list()]
    assert "ok" in [info.name for info in manager.list()]
    manager.delete("broken")  # a damaged library can still be deleted
