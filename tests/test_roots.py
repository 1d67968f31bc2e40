"""core.roots: what the pages may read on the server (the data folder, the models folder, the listed folders)."""

from __future__ import annotations

import os

import pytest

from core import config
from core.errors import BadInputError
from core.roots import ALLOWED_FOLDERS_ENV, allowed_folders, check_folder, check_model_location, is_allowed


@pytest.fixture
def outside(tmp_path):
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("not for visitors")
    return folder


def test_allowed_folders_are_the_data_folder_the_models_folder_and_the_listed_ones(tmp_path, monkeypatch):
    extra = tmp_path / "brand"
    monkeypatch.setenv(ALLOWED_FOLDERS_ENV, os.pathsep.join([str(extra), "", "relative/ignored"]))
    folders = allowed_folders()
    assert folders[0] == config.data_dir()
    assert config.data_dir() / "models" in folders
    assert extra.resolve() in folders
    assert all(folder.is_absolute() for folder in folders)


def test_models_folder_is_the_one_the_sd_engine_uses():
    from core.engines.sd.sources import models_dir
    from core.roots import models_folder

    assert models_folder() == models_dir()


def test_a_folder_inside_the_data_folder_is_accepted():
    pictures = config.data_dir() / "pictures"
    pictures.mkdir()
    assert check_folder(str(pictures)) == pictures.resolve()
    assert check_folder("pictures") == pictures.resolve()  # relative: inside the data folder
    assert check_folder(config.data_dir()) == config.data_dir()


def test_a_folder_outside_is_refused_with_the_allowed_folders_named(outside):
    with pytest.raises(BadInputError) as err:
        check_folder(str(outside))
    message = str(err.value)
    assert "only reads" in message and str(config.data_dir()) in message and ALLOWED_FOLDERS_ENV in message
    assert str(outside) not in message
    for path in ("/", "/etc", "~", str(outside / "secret.txt"), "/proc/self/environ"):
        with pytest.raises(BadInputError):
            check_folder(path)


def test_dot_dot_cannot_climb_out(outside):
    escape = config.data_dir() / ".." / "outside"
    assert escape.resolve() == outside.resolve()
    with pytest.raises(BadInputError):
        check_folder(str(escape))
    with pytest.raises(BadInputError):
        check_folder("../outside")  # relative: from the data folder
    with pytest.raises(BadInputError):
        check_folder(str(config.data_dir() / "pictures" / ".." / ".." / "outside" / "secret.txt"))


def test_a_symlink_inside_that_points_outside_is_refused(outside):
    link = config.data_dir() / "link"
    link.symlink_to(outside, target_is_directory=True)
    assert not is_allowed(link)
    with pytest.raises(BadInputError):
        check_folder(str(link))
    with pytest.raises(BadInputError):
        check_folder(str(link / "secret.txt"))


def test_a_prefix_is_not_a_parent(tmp_path):
    """``/data-evil`` is not inside ``/data``."""
    sibling = config.data_dir().parent / (config.data_dir().name + "-evil")
    sibling.mkdir()
    with pytest.raises(BadInputError):
        check_folder(str(sibling))


def test_listed_folders_are_accepted(outside, monkeypatch):
    monkeypatch.setenv(ALLOWED_FOLDERS_ENV, str(outside))
    assert check_folder(str(outside)) == outside.resolve()
    assert check_folder(str(outside / "secret.txt")) == (outside / "secret.txt").resolve()


def test_empty_or_nul_paths_are_refused():
    for raw in ("", "   ", "/tmp/a\x00b"):
        with pytest.raises(BadInputError):
            check_folder(raw)


def test_model_location_hub_ids_stay_allowed():
    assert check_model_location("stabilityai/sdxl-turbo") == "stabilityai/sdxl-turbo"
    assert check_model_location("  runwayml/stable-diffusion-v1-5 ") == "runwayml/stable-diffusion-v1-5"
    assert check_model_location("") == ""


def test_model_location_in_the_models_folder_is_accepted_by_name_and_path():
    model = config.data_dir() / "models" / "tiny"
    model.mkdir(parents=True)
    assert check_model_location("tiny") == str(model.resolve())
    assert check_model_location(str(model)) == str(model.resolve())
    weights = config.data_dir() / "models" / "w.safetensors"
    weights.write_bytes(b"x")
    assert check_model_location("w.safetensors") == str(weights.resolve())


def test_model_location_outside_is_refused(outside, monkeypatch):
    (outside / "model.safetensors").write_bytes(b"x")
    (outside / "pipeline").mkdir()
    for raw in (
        str(outside / "model.safetensors"),
        str(outside / "pipeline"),
        "/etc/passwd",
        "~/.ssh/id_rsa",
        "../outside/model.safetensors",
        "a/../../../../etc",
        "../../../../../../etc/passwd",
    ):
        with pytest.raises(BadInputError, match="only reads models from"):
            check_model_location(raw)
    link = config.data_dir() / "models" / "link"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside / "pipeline", target_is_directory=True)
    with pytest.raises(BadInputError):
        check_model_location("link")
    monkeypatch.setenv(ALLOWED_FOLDERS_ENV, str(outside))
    assert check_model_location(str(outside / "model.safetensors")) == str((outside / "model.safetensors").resolve())


def test_a_hub_like_name_that_is_a_server_path_is_not_passed_through(monkeypatch, tmp_path, outside):
    """``owner/name`` that exists relative to the server's working folder is not read from there: it becomes a
    full path inside the data folder (where it does not exist, so the engine reports it as not found)."""
    monkeypatch.chdir(outside.parent)
    assert (tmp_path / "outside" / "secret.txt").exists()
    location = check_model_location("outside/secret.txt")
    assert location == str(config.data_dir() / "outside" / "secret.txt")
    from core.engines.sd.sources import resolve_source

    with pytest.raises(BadInputError, match="not found"):
        resolve_source(location)
