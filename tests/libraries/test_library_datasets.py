"""Libraries from datasets (``core.libraries.datasource``): a local parquet file or dataset folder read by
streaming through Hugging Face ``datasets``, with its split, picture column and label column; clear messages
for what cannot be read, and nothing made when an import fails."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import ClassLabel, Dataset, Features, Image, Value
from PIL import Image as PILImage

from core.cli import main
from core.errors import BadInputError
from core.libraries import LibraryManager
from core.libraries.datasource import DatasetOptions, DatasetSource, is_dataset_source

CLASSES = ["boots", "sandals", "sneakers"]


def _png(i: int) -> bytes:
    rng = np.random.default_rng(i)
    buffer = io.BytesIO()
    PILImage.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _dataset(count: int, first: int = 0) -> Dataset:
    return Dataset.from_dict(
        {
            "image": [{"bytes": _png(first + i), "path": None} for i in range(count)],
            "label": [i % 3 for i in range(count)],
            "caption": [f"shoe {first + i}" for i in range(count)],
        },
        features=Features({"image": Image(), "label": ClassLabel(names=CLASSES), "caption": Value("string")}),
    )


@pytest.fixture
def parquet_file(tmp_path):
    path = tmp_path / "shoes.parquet"
    _dataset(12).to_parquet(str(path))
    return path


@pytest.fixture
def dataset_folder(tmp_path):
    folder = tmp_path / "shoes-dataset"
    (folder / "data").mkdir(parents=True)
    _dataset(6).to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    _dataset(4, first=100).to_parquet(str(folder / "data" / "test-00000-of-00001.parquet"))
    (folder / "README.md").write_text("# Shoes\n")
    return folder


def _run(capsys, *argv: str) -> tuple[int, dict | list | None, str]:
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out.strip() else None), captured.err


def test_a_parquet_file_imports_with_its_class_names_as_labels(parquet_file, capsys):
    code, data, err = _run(capsys, "libraries", "add", "shoes", str(parquet_file))
    assert code == 0, err
    assert data[0]["added"] == 12 and data[0]["skipped"] == []
    manager = LibraryManager()
    items = manager.items("shoes")
    info = manager.get("shoes")
    assert len(items) == 12 and sorted(info.label_names) == sorted(CLASSES)
    names = [item["label"] for item in items]
    assert names == [CLASSES[i % 3] for i in range(12)]  # the dataset's order and classes
    assert items[0]["source"] == "shoes.parquet #1" and items[11]["source"] == "shoes.parquet #12"
    # the pictures are the dataset's own bytes, decoded
    first = np.asarray(PILImage.open(io.BytesIO(_png(0))).convert("RGB"))
    stored = np.asarray(manager.item_image("shoes", 0).convert("RGB"))
    assert np.array_equal(first, stored)


def test_columns_can_be_named_and_any_words_can_be_labels(parquet_file, capsys):
    code, data, err = _run(
        capsys,
        "libraries",
        "add",
        "captions",
        str(parquet_file),
        "--image-column",
        "image",
        "--label-column",
        "caption",
    )
    assert code == 0, err
    info = LibraryManager().get("captions")
    assert len(info.label_names) == 12 and "shoe 3" in info.label_names


def test_a_dataset_folder_takes_its_train_split_unless_told(dataset_folder, capsys):
    assert is_dataset_source(dataset_folder) and is_dataset_source("hf://datasets/a/b")
    code, data, err = _run(capsys, "libraries", "add", "train-shoes", str(dataset_folder))
    assert code == 0, err
    assert data[0]["added"] == 6
    code, data, err = _run(capsys, "libraries", "add", "test-shoes", str(dataset_folder), "--split", "test")
    assert code == 0, err
    assert data[0]["added"] == 4
    seen: list[tuple[int, int]] = []
    LibraryManager().add_paths(
        "counted", [dataset_folder], dataset=DatasetOptions(split="test"), progress=lambda d, e: seen.append((d, e))
    )
    assert seen == [(i, 4) for i in range(1, 5)]  # the expected count comes from the split's files


def test_what_cannot_be_read_is_said_and_nothing_is_made(dataset_folder, parquet_file, tmp_path, capsys):
    cases = {
        "split": (["--split", "validation"], "has no split called “validation”; its splits are: train, test"),
        "column": (["--image-column", "photo"], "has no column “photo”; its columns are: image (pictures)"),
        "not pictures": (["--image-column", "caption"], "The column “caption”"),
        "bad label": (["--label-column", "image"], "cannot be a label"),
    }
    for case, (options, expected) in cases.items():
        code, data, err = _run(capsys, "libraries", "add", "never", str(dataset_folder), *options)
        assert code == 2 and expected in data["error"], (case, data)
        assert err.startswith("error: ") and "Traceback" not in err
    code, data, err = _run(capsys, "libraries", "add", "never", "hf://datasets/someone/shoes")
    assert code == 2 and "could not be read from the Hugging Face Hub" in data["error"]
    assert "hf download someone/shoes --repo-type dataset" in data["error"]
    code, data, err = _run(capsys, "libraries", "add", "never", "hf://datasets/../../etc")
    assert code == 2 and "hf://datasets/OWNER/NAME" in data["error"]
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    code, data, err = _run(capsys, "libraries", "add", "never", str(broken))
    assert code == 2 and "broken.parquet" in data["error"] and "Traceback" not in err
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "a.png").write_bytes(_png(1))
    code, data, err = _run(capsys, "libraries", "add", "never", str(folder), "--split", "train")
    assert code == 2 and "only apply to datasets" in data["error"]
    assert "never" not in [info.name for info in LibraryManager().list()]


def test_rows_without_a_usable_picture_are_skipped_with_the_reason(tmp_path, capsys):
    # a plain parquet table (no `datasets` metadata): picture bytes in a struct column, words as labels
    table = pa.table(
        {
            "picture": [
                {"bytes": _png(1), "path": "a.png"},
                {"bytes": b"not a picture", "path": "b.png"},
                {"bytes": None, "path": "/etc/passwd"},
                {"bytes": _png(2), "path": None},
            ],
            "kind": ["boots", "boots", "sandals", "sandals"],
        }
    )
    path = tmp_path / "mixed.parquet"
    pq.write_table(table, path)
    code, data, err = _run(capsys, "libraries", "add", "mixed", str(path), "--label-column", "kind")
    assert code == 0, err
    assert data[0]["added"] == 2
    skipped = dict(data[0]["skipped"])
    assert set(skipped) == {"mixed.parquet #2 (b.png)", "mixed.parquet #3 (passwd)"}
    assert "not an image" in skipped["mixed.parquet #2 (b.png)"]
    assert (
        skipped["mixed.parquet #3 (passwd)"] == "the picture is not stored in the dataset (it names a file elsewhere)"
    )
    assert sorted(LibraryManager().get("mixed").label_names) == ["boots", "sandals"]


def test_a_source_is_checked_before_anything_is_read(parquet_file):
    source = DatasetSource(parquet_file)
    assert (source.split, source.image_column, source.label_column) == ("train", "image", "label")
    assert source.count() == 12
    with pytest.raises(BadInputError, match="no column “nope”"):
        DatasetSource(parquet_file, DatasetOptions(label_column="nope"))
