"""The files of one library folder: ``library.json``, ``images/``, ``thumbs/`` and ``cache/``."""

from __future__ import annotations

import logging
from pathlib import Path

from PIL import Image

from core.errors import MosaicError
from core.images import save_png
from core.libraries.decoding import encode_png, make_thumbnail
from core.libraries.manifest import Manifest, ManifestItem

logger = logging.getLogger(__name__)


class LibraryStorage:
    """Reads and writes the image files of the library stored in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.images_dir = folder / "images"
        self.thumbs_dir = folder / "thumbs"
        self.cache_dir = folder / "cache"

    @staticmethod
    def image_file(item_id: str) -> str:
        return f"images/{item_id}.png"

    def thumb_path(self, item: ManifestItem) -> Path:
        return self.thumbs_dir / f"{item.id}.png"

    def write_item(self, item_id: str, image: Image.Image) -> str:
        """Encode ``image`` and its thumbnail and store them in a folder nobody else can see yet (see
        :meth:`write_encoded`); returns the relative file name."""
        return self.write_encoded(item_id, encode_png(image), encode_png(make_thumbnail(image)))

    def write_encoded(self, item_id: str, png: bytes, thumb: bytes) -> str:
        """Store a picture already encoded (:func:`core.libraries.decoding.prepare_picture`) in a folder
        nobody else can see yet; returns the relative file name."""
        file = self.image_file(item_id)
        self.images_dir.mkdir(parents=True, exist_ok=True)
        self.thumbs_dir.mkdir(parents=True, exist_ok=True)
        (self.folder / file).write_bytes(png)
        (self.thumbs_dir / f"{item_id}.png").write_bytes(thumb)
        return file

    def delete_item_files(self, item: ManifestItem) -> None:
        for path in (self.folder / item.file, self.thumb_path(item)):
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:  # a leftover file is harmless; the manifest no longer lists it
                logger.warning("could not delete %s: %s", path, exc)

    def read_image(self, item: ManifestItem) -> Image.Image:
        """The stored image of ``item`` (``"L"`` or ``"RGB"``), fully loaded."""
        path = self.folder / item.file
        try:
            with Image.open(path, formats=["PNG"]) as image:
                image.load()
                return image.convert("L") if image.mode == "L" else image.convert("RGB")
        except (OSError, SyntaxError, ValueError) as exc:
            logger.warning("unreadable library image %s: %s", path, exc)
            raise MosaicError(
                f"The picture “{self._picture_name(item)}” of the library “{self._title()}” is missing or "
                "damaged. Remove it from the library or add it again.",
                detail=f"{path}: {exc}",
            ) from exc

    def _picture_name(self, item: ManifestItem) -> str:
        """The picture's name as people see it (its file name, or "Faces #52" for a built-in one)."""
        from core.libraries.names import source_name

        return source_name({"id": item.id, "source": item.source, "label": None}, self.folder.name)

    def _title(self) -> str:
        """The library's title, for messages (its folder name when the manifest can't be read)."""
        try:
            return Manifest.read(self.folder).title or self.folder.name
        except Exception:  # the message about the damaged picture matters more than the title
            return self.folder.name

    def read_thumbnail(self, item: ManifestItem) -> Image.Image:
        """The stored thumbnail of ``item``, re-created from the image when missing or damaged."""
        path = self.thumb_path(item)
        try:
            with Image.open(path, formats=["PNG"]) as thumb:
                thumb.load()
                return thumb.copy()
        except (OSError, SyntaxError, ValueError):
            thumb = make_thumbnail(self.read_image(item))
            try:
                save_png(thumb, path)
            except OSError as exc:
                logger.warning("could not store thumbnail %s: %s", path, exc)
            return thumb
