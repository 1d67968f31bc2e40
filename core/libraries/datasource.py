"""Import candidates from a dataset, read by streaming through Hugging Face ``datasets``.

A dataset source is one of:

* a local ``.parquet`` file (e.g. written by ``Dataset.to_parquet``),
* a local dataset folder holding ``.parquet`` files (a downloaded Hub dataset: ``data/train-*.parquet``;
  its splits come from the file names),
* ``hf://datasets/OWNER/NAME``: a dataset on the Hugging Face Hub (needs the internet, or its copy in the
  local ``datasets`` cache when offline).

Rows are streamed (``streaming=True``): nothing is downloaded or converted as a whole, so a dataset of
any size imports with the memory of one row. The picture column defaults to the dataset's only
``Image`` column; the label column to its only ``ClassLabel`` column (labels are its class names; a
string or whole-number column named with ``--label-column`` gives its values). Pictures are taken
from the bytes stored in the dataset only: a row that points to a file elsewhere is skipped (a
dataset never makes the studio read a path it names). No dataset code is ever run
(``trust_remote_code`` is never set).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import BadInputError
from core.libraries.names import clean_label
from core.libraries.sources import Entry, ImportCandidate, _precheck

logger = logging.getLogger(__name__)

HUB_PREFIX = "hf://datasets/"
_HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
#: How deep a folder is searched for ``.parquet`` files to count as a dataset folder.
_PARQUET_DEPTH = 3


@dataclass(frozen=True)
class DatasetOptions:
    """The choices a dataset import takes (all optional): which split, picture column and label column."""

    split: str | None = None
    image_column: str | None = None
    label_column: str | None = None

    @property
    def given(self) -> bool:
        return any((self.split, self.image_column, self.label_column))


def _parquet_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    base = len(folder.parts)
    for path in sorted(folder.rglob("*.parquet")):
        if len(path.parts) - base <= _PARQUET_DEPTH and not any(p.startswith(".") for p in path.parts[base:]):
            found.append(path)
    return found


def is_dataset_source(raw: str | Path) -> bool:
    """True for ``hf://datasets/…``, a ``.parquet`` file and a folder holding ``.parquet`` files."""
    text = str(raw)
    if text.startswith(HUB_PREFIX):
        return True
    path = Path(text).expanduser()
    if path.suffix.lower() == ".parquet":
        return True
    return path.is_dir() and bool(_parquet_files(path))


def _hub_error(name: str) -> BadInputError:
    return BadInputError(
        f"The dataset {name} could not be read from the Hugging Face Hub: this computer may be offline, or the "
        "name may be wrong or the dataset private. Download it on a computer with internet access (for example "
        f"`hf download {name} --repo-type dataset --local-dir {name.split('/')[-1]}`) and give that folder "
        "instead."
    )


class DatasetSource:
    """One dataset, opened and checked (split and columns) before any row is read; see the module docstring."""

    def __init__(self, raw: str | Path, options: DatasetOptions | None = None) -> None:
        self.raw = str(raw)
        self.options = options or DatasetOptions()
        self.hub_name: str | None = None
        self.files: list[Path] = []
        self._open()

    # -- opening ------------------------------------------------------------------------------
    def _open(self) -> None:
        import datasets
        from datasets.data_files import EmptyDatasetError

        datasets.disable_progress_bars()
        # a downloaded dataset's card without metadata is no news to the person importing it
        logging.getLogger("huggingface_hub.repocard").setLevel(logging.ERROR)

        shown = self.raw
        try:
            if self.raw.startswith(HUB_PREFIX):
                name = self.raw[len(HUB_PREFIX) :].strip("/")
                if not _HUB_NAME.match(name):
                    raise BadInputError(
                        f"{self.raw}: a Hub dataset is written hf://datasets/OWNER/NAME, for example "
                        "hf://datasets/ylecun/mnist."
                    )
                self.hub_name = shown = name
                splits = datasets.load_dataset(name, streaming=True)
            else:
                path = Path(self.raw).expanduser()
                if path.is_dir():
                    self.files = _parquet_files(path)
                    if not self.files:
                        raise BadInputError(f"The folder {path} holds no .parquet files, so it is not a dataset.")
                    splits = datasets.load_dataset(str(path), streaming=True, **_parquet_options())
                elif path.is_file():
                    self.files = [path]
                    splits = datasets.load_dataset(
                        "parquet", data_files={"train": [str(path)]}, streaming=True, **_parquet_options()
                    )
                else:
                    raise BadInputError(f"{path}: no such file or folder.")
        except BadInputError:
            raise
        except ConnectionError:
            raise _hub_error(shown) from None
        except datasets.exceptions.DatasetNotFoundError:
            raise _hub_error(shown) from None
        except (FileNotFoundError, datasets.exceptions.DataFilesNotFoundError, EmptyDatasetError):
            raise BadInputError(f"{shown}: no dataset files were found there.") from None
        except Exception as exc:  # pyarrow and datasets raise many kinds for a damaged file
            logger.warning("dataset %s could not be opened: %r", shown, exc)
            raise BadInputError(
                f"{shown} could not be read as a dataset ({type(exc).__name__}: {str(exc)[:200]}). Give a .parquet "
                "file, a folder of .parquet files or hf://datasets/OWNER/NAME."
            ) from None
        self.shown = shown
        self.split = self._choose_split(list(splits.keys()))
        self.dataset = splits[self.split]
        features = self.dataset.features
        if features is None:
            raise BadInputError(f"{shown}: the dataset does not say what its columns are, so it cannot be imported.")
        self.columns: dict[str, Any] = dict(features)
        self.image_column = self._choose_image_column()
        self.label_column = self._choose_label_column()

    def _choose_split(self, names: list[str]) -> str:
        wanted = self.options.split
        if wanted is not None:
            if wanted not in names:
                raise BadInputError(f"{self.shown} has no split called “{wanted}”; its splits are: {', '.join(names)}.")
            return wanted
        if len(names) == 1:
            return names[0]
        if "train" in names:
            return "train"
        raise BadInputError(f"{self.shown} has several splits ({', '.join(names)}); choose one with --split.")

    def _listing(self) -> str:
        return ", ".join(f"{name} ({_kind(feature)})" for name, feature in self.columns.items())

    def _choose_image_column(self) -> str:
        from datasets import Image

        wanted = self.options.image_column
        if wanted is not None:
            if wanted not in self.columns:
                raise BadInputError(f"{self.shown} has no column “{wanted}”; its columns are: {self._listing()}.")
            if not _holds_pictures(self.columns[wanted]):
                raise BadInputError(
                    f"The column “{wanted}” of {self.shown} does not hold pictures; its columns are: {self._listing()}."
                )
            return wanted
        images = [name for name, feature in self.columns.items() if isinstance(feature, Image)]
        if len(images) != 1:
            images = [name for name, feature in self.columns.items() if _holds_pictures(feature)]
        if len(images) == 1:
            return images[0]
        what = "no picture column" if not images else "several picture columns"
        raise BadInputError(
            f"{self.shown} has {what}; choose one with --image-column. Its columns are: {self._listing()}."
        )

    def _choose_label_column(self) -> str | None:
        from datasets import ClassLabel, Value

        wanted = self.options.label_column
        if wanted is None:
            classes = [name for name, feature in self.columns.items() if isinstance(feature, ClassLabel)]
            return classes[0] if len(classes) == 1 else None
        if wanted not in self.columns:
            raise BadInputError(f"{self.shown} has no column “{wanted}”; its columns are: {self._listing()}.")
        feature = self.columns[wanted]
        if wanted == self.image_column or not (
            isinstance(feature, ClassLabel)
            or isinstance(feature, Value)
            and (feature.dtype == "string" or feature.dtype.startswith(("int", "uint", "large_string")))
        ):
            raise BadInputError(
                f"The column “{wanted}” of {self.shown} cannot be a label (labels are class names, words or whole "
                f"numbers); its columns are: {self._listing()}."
            )
        return wanted

    # -- reading ------------------------------------------------------------------------------
    def count(self) -> int:
        """How many rows the import will try (0 when the dataset does not say)."""
        if self.hub_name is None:
            import pyarrow.parquet as pq

            files = self.files if len(self.files) == 1 else self._split_files()
            try:
                return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
            except Exception:  # a damaged file is reported when it is read
                return 0
        splits = getattr(self.dataset.info, "splits", None) or {}
        info = splits.get(self.split) if hasattr(splits, "get") else None
        return int(getattr(info, "num_examples", 0) or 0)

    def _split_files(self) -> list[Path]:
        """The parquet files of the chosen split of a local dataset folder."""
        import datasets

        try:
            builder = datasets.load_dataset_builder(str(Path(self.raw).expanduser()))
            return [Path(f) for f in builder.config.data_files.get(self.split, [])]
        except Exception:
            return []

    def entries(self) -> Iterator[Entry]:
        """Every row of the split as an entry of an import from paths (see ``sources.Entry``)."""
        for candidate in self.candidates():
            yield Entry(candidate.name, lambda candidate=candidate: candidate)

    def candidates(self) -> Iterator[ImportCandidate]:
        """Every row of the split as a candidate, in the dataset's order."""
        from datasets import ClassLabel, Image

        rows = self.dataset
        if isinstance(self.columns[self.image_column], Image):
            rows = rows.cast_column(self.image_column, Image(decode=False))
        keep = [self.image_column] + ([self.label_column] if self.label_column else [])
        rows = rows.select_columns(keep)
        label_feature = self.columns.get(self.label_column) if self.label_column else None
        base = self.hub_name or Path(self.raw).name
        number = 0
        try:
            for number, row in enumerate(rows, start=1):
                yield self._candidate(row, number, base, label_feature, ClassLabel)
        except BadInputError:
            raise
        except Exception as exc:
            logger.warning("dataset %s failed at row %d: %r", self.shown, number + 1, exc)
            raise BadInputError(
                f"{self.shown} could not be read past row {number:,} ({type(exc).__name__}: {str(exc)[:200]})."
            ) from None

    def _candidate(
        self, row: dict[str, Any], number: int, base: str, label_feature: Any, class_label: type
    ) -> ImportCandidate:
        value = row.get(self.image_column)
        data, path = None, None
        if isinstance(value, dict):
            data, path = value.get("bytes"), value.get("path")
        elif isinstance(value, (bytes, bytearray)):
            data = bytes(value)
        name = f"{base} #{number:,}"
        if path:
            name += f" ({Path(str(path)).name})"
        label = None
        if self.label_column is not None:
            raw_label = row.get(self.label_column)
            if raw_label is not None and not (isinstance(raw_label, int) and raw_label < 0):
                if isinstance(label_feature, class_label):
                    raw_label = label_feature.int2str(int(raw_label))
                label = clean_label(str(raw_label)) or None
        if data is None:
            reason = (
                "the row has no picture"
                if not path
                else "the picture is not stored in the dataset (it names a file elsewhere)"
            )
            return ImportCandidate(name, label=label, skip_reason=reason)
        reason = _precheck(name, len(data))
        if reason:
            return ImportCandidate(name, label=label, skip_reason=reason)
        return ImportCandidate(name, label=label, data=bytes(data))


#: Rows per batch read from a parquet file (pictures are large: a row group may hold hundreds of megabytes).
BATCH_ROWS = 64


def _parquet_options() -> dict[str, Any]:
    """How local parquet files are read: small batches, and without pre-buffering, which keeps every row
    group read so far in memory until the file is closed (measured: memory grew with the rows read;
    flat without it, see BENCHMARKS.md "Library imports at scale")."""
    import pyarrow.dataset

    return {
        "batch_size": BATCH_ROWS,
        "fragment_scan_options": pyarrow.dataset.ParquetFragmentScanOptions(pre_buffer=False),
    }


def _holds_pictures(feature: Any) -> bool:
    """An ``Image`` column, or raw bytes (``binary``), or a ``{bytes, path}`` struct of them."""
    from datasets import Image, Value

    if isinstance(feature, Image):
        return True
    if isinstance(feature, Value):
        return feature.dtype in ("binary", "large_binary")
    if isinstance(feature, dict):
        inner = feature.get("bytes")
        return isinstance(inner, Value) and inner.dtype in ("binary", "large_binary")
    return False


def _kind(feature: Any) -> str:
    from datasets import ClassLabel, Image, Value

    if isinstance(feature, Image):
        return "pictures"
    if isinstance(feature, ClassLabel):
        return "class names"
    if isinstance(feature, Value):
        return {"string": "words", "large_string": "words", "binary": "bytes", "large_binary": "bytes"}.get(
            feature.dtype, "numbers" if feature.dtype.startswith(("int", "uint", "float")) else feature.dtype
        )
    if _holds_pictures(feature):
        return "pictures"
    return "other"
