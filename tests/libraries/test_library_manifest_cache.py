"""Issue 18: a library's ``library.json`` is parsed once while it does not change (a query asks for the
library several times), and every reader still gets a manifest of its own."""

from __future__ import annotations

import json

import pytest

from core.libraries import manifest as manifest_module
from core.libraries.manifest import Manifest, ManifestItem


def _counting_loads(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = json.loads

    def loads(text, *args, **kwargs):
        calls.append(len(text))
        return real(text, *args, **kwargs)

    monkeypatch.setattr(manifest_module.json, "loads", loads)
    return calls


def _counting_manifests(monkeypatch) -> list[int]:
    """A list that grows by one each time a manifest is built from its parsed file."""
    made: list[int] = []
    real = Manifest.from_json

    def counted(raw):
        made.append(1)
        return real(raw)

    monkeypatch.setattr(Manifest, "from_json", staticmethod(counted))
    return made


def test_an_unchanged_manifest_is_parsed_once_and_a_changed_one_again(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "lib"
    Manifest(name="lib", items=[ManifestItem(id="a1", file="images/a1.png")]).write(folder)
    calls = _counting_loads(monkeypatch)
    first = Manifest.read(folder)
    second = Manifest.read(folder)
    assert len(calls) == 1 and [i.id for i in second.items] == ["a1"]
    first.items.append(ManifestItem(id="b2", file="images/b2.png"))  # a reader's changes stay its own
    first.title = "Changed here only"
    assert [i.id for i in Manifest.read(folder).items] == ["a1"] and Manifest.read(folder).title == ""
    first.write(folder)  # written again (replaced): read again
    third = Manifest.read(folder)
    assert len(calls) == 2 and [i.id for i in third.items] == ["a1", "b2"] and third.title == "Changed here only"


def test_a_manifest_changed_by_another_process_is_read_again(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "lib"
    Manifest(name="lib", title="One").write(folder)
    assert Manifest.read(folder).title == "One"
    raw = json.loads((folder / "library.json").read_text())
    raw["title"] = "Two, and longer"
    (folder / "library.json").write_text(json.dumps(raw))  # in place: the size and time change
    assert Manifest.read(folder).title == "Two, and longer"


def test_items_and_names_are_made_once_per_change_and_every_caller_gets_its_own(tmp_path, monkeypatch) -> None:
    """A library of 100,000 pictures took 0.4 s to list and 0.25 s to name per query: both are kept while its
    ``library.json`` is the same file, and made again when it changes (pictures added here or elsewhere)."""
    from PIL import Image

    from core.libraries import LibraryManager

    manager = LibraryManager(root=tmp_path / "libraries")
    folder = tmp_path / "in"
    folder.mkdir()
    for i, colour in enumerate(["red", "blue"]):
        Image.new("RGB", (40, 40), colour).save(folder / f"shoe-{i}.png")
        (folder / "sub").mkdir(exist_ok=True)
        Image.new("RGB", (40, 40), colour).save(folder / "sub" / f"shoe-{i}.png")
    manager.create_from_folder("shoes", folder)
    made = _counting_manifests(monkeypatch)
    items = manager.items("shoes")
    names = manager.source_names("shoes")
    assert len(items) == 4 and sorted(names) == [0, 1, 2, 3] and len(set(names.values())) == 4
    assert len(made) == 2  # listed once, named once
    ids = manager.item_ids("shoes")
    assert ids == tuple(item["id"] for item in items) and manager.item_ids("shoes") is ids  # kept, immutable
    assert len(made) == 3
    items[0]["source"] = "changed by a caller"
    names[0] = "changed by a caller"
    assert manager.items("shoes")[0]["source"] != "changed by a caller"
    assert manager.source_names("shoes")[0] != "changed by a caller"
    assert len(made) == 3
    assert items[1]["path"] == str(manager.root / "shoes" / items[1]["file"])
    extra = tmp_path / "more"
    extra.mkdir()
    Image.new("RGB", (40, 40), "green").save(extra / "boot.png")
    manager.add_folder("shoes", extra)  # the manifest is replaced: listed and named again
    assert [item["index"] for item in manager.items("shoes")] == [0, 1, 2, 3, 4]
    assert manager.source_names("shoes")[4] == "boot.png"
    assert len(manager.item_ids("shoes")) == 5
    assert len(made) > 2


def test_listing_and_getting_a_library_do_not_check_every_item(tmp_path, monkeypatch) -> None:
    """The Libraries page lists every library on each rerun, and every command checks its library exists: both
    read the manifest's header and count its items (checking 100,000 items took 0.4 s); a damaged header is
    still reported, and damaged items are found where the pictures are used."""
    from core.errors import MosaicError
    from core.libraries import LibraryManager

    manager = LibraryManager(root=tmp_path / "libraries")
    items = [ManifestItem(id=f"p{i}", file=f"images/p{i}.png") for i in range(50)]
    Manifest(name="big", title="Big one", items=items).write(manager.root / "big")
    checked: list[int] = []
    real = ManifestItem.from_json

    def counted(raw, label_count):
        checked.append(1)
        return real(raw, label_count)

    monkeypatch.setattr(ManifestItem, "from_json", staticmethod(counted))
    info = manager.get("big")
    assert (info.name, info.title, info.count) == ("big", "Big one", 50)
    listed = {i.name: i for i in manager.list()}
    assert listed["big"].count == 50 and checked == []
    assert len(manager.items("big")) == 50 and len(checked) == 50
    raw = json.loads((manager.root / "big" / "library.json").read_text())
    raw["kind"] = "something else"
    (manager.root / "big" / "library.json").write_text(json.dumps(raw))
    with pytest.raises(MosaicError, match="damaged"):
        manager.get("big")
    assert "big" not in {i.name for i in manager.list()}


def test_a_librarys_previews_read_its_list_of_pictures_once(tmp_path, monkeypatch) -> None:
    """The Libraries page shows 16 previews of every library on each rerun; one at a time, each read the whole
    list of pictures again (16 × 0.2-0.35 s at 100,000 pictures: the page took 6 s to appear)."""
    from PIL import Image

    from core.errors import BadInputError
    from core.libraries import LibraryManager

    manager = LibraryManager(root=tmp_path / "libraries")
    folder = tmp_path / "in"
    folder.mkdir()
    colours = ["red", "blue", "green", "yellow", "white"]
    for i, colour in enumerate(colours):
        Image.new("RGB", (40, 40), colour).save(folder / f"shoe-{i}.png")
    manager.create_from_folder("shoes", folder)
    one_by_one = [manager.thumbnail("shoes", i).convert("RGB") for i in range(5)]
    made = _counting_manifests(monkeypatch)
    previews = manager.thumbnails("shoes", range(0, 5, 2))
    assert len(made) == 1
    assert [p.convert("RGB").tobytes() for p in previews] == [one_by_one[i].tobytes() for i in (0, 2, 4)]
    assert {p.convert("RGB").getpixel((0, 0)) for p in previews} == {(255, 0, 0), (0, 128, 0), (255, 255, 255)}
    with pytest.raises(BadInputError, match="no image number 5"):
        manager.thumbnails("shoes", [1, 5])
