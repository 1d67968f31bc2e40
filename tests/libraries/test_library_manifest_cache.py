"""Issue 18: a library's ``library.json`` is parsed once while it does not change (a query asks for the
library several times), and every reader still gets a manifest of its own."""

from __future__ import annotations

import json

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
