"""Safe image handling shared by the whole studio.

Every image that enters the studio (uploads, zips, folders, built-in data) goes through
:func:`load_image`, which

* accepts only a short list of raster formats (no EPS/PDF/etc. that could run external tools),
* refuses empty files, non-images, corrupt or truncated files and decompression bombs with a
  :class:`UnreadableImageError` (a :class:`~core.errors.BadInputError`) that names the file,
* fully decodes the pixels (so a truncated file fails here, not later in a generation),
* applies the EXIF orientation, keeps the first frame of an animation, and converts every mode
  to 8-bit ``"L"`` or ``"RGB"`` (transparency composited on white),
* downscales very large images, with a notice the person can read.

It also holds the PNG text-chunk helpers used for generation metadata and the PIL <-> tensor
helpers used by the engines.
"""

from __future__ import annotations

import io
import logging
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from core.errors import BadInputError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

#: Formats Pillow may use to decode untrusted bytes (JPEG also opens the MPO files phones write).
ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "AVIF")
#: Refuse images with more pixels than this (8000 x 8000) before decoding them.
MAX_PIXELS = 64_000_000
#: Refuse files larger than this many bytes.
MAX_FILE_BYTES = 100 * 1024 * 1024
#: Longest side of an image kept by default; larger images are downscaled.
DEFAULT_MAX_SIDE = 1024
#: Why a device, pipe or socket is refused (it is never opened: /dev/zero never ends, a FIFO blocks).
NOT_REGULAR_REASON = "not a regular file (a device, pipe or socket); only picture files can be used"
_CHUNK = 1024 * 1024

_UNSUPPORTED_HINTS = {
    ".heic": "HEIC photos (iPhone) are not supported; export them as JPEG or PNG first",
    ".heif": "HEIF photos are not supported; export them as JPEG or PNG first",
    ".svg": "SVG drawings are not supported; export them as PNG first",
    ".pdf": "PDF files are not supported; export the pages as PNG first",
    ".psd": "Photoshop files are not supported; export them as PNG or JPEG first",
    ".eps": "EPS files are not supported; export them as PNG first",
}


class UnreadableImageError(BadInputError):
    """An image that cannot be used. ``reason`` is the message without the file name."""

    def __init__(self, filename: str, reason: str) -> None:
        self.filename = filename
        self.reason = reason
        super().__init__(f"{_display(filename)}: {reason}")


@dataclass
class LoadedImage:
    """A decoded image ready for use: 8-bit ``"L"`` or ``"RGB"``, upright, at most ``max_side``."""

    image: Image.Image
    notices: list[str] = field(default_factory=list)
    original_size: tuple[int, int] = (0, 0)


def _display(filename: str) -> str:
    return filename or "The image"


def _name(filename: str) -> str:
    return filename or "image"


def load_image(data: bytes, filename: str = "", max_side: int = DEFAULT_MAX_SIDE) -> LoadedImage:
    """Decode untrusted image bytes into an 8-bit ``"L"`` or ``"RGB"`` image.

    Raises :class:`UnreadableImageError` (a ``BadInputError``) naming ``filename`` when the bytes
    are empty, not a supported image, corrupt or truncated, or far too large.
    """
    if max_side < 1:
        raise ValueError("max_side must be positive")
    if not data:
        raise UnreadableImageError(filename, "the file is empty (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise UnreadableImageError(
            filename,
            f"the file is too large ({len(data) / 1e6:.0f} MB; the limit is {MAX_FILE_BYTES // 10**6} MB)",
        )
    image = _open(data, filename)
    notices: list[str] = []
    try:
        width, height = image.size
        if width < 1 or height < 1:
            raise UnreadableImageError(filename, "the image has no pixels")
        if width * height > MAX_PIXELS:
            raise UnreadableImageError(
                filename,
                f"the image is too large ({width}×{height} px); images up to "
                f"{MAX_PIXELS // 1_000_000} megapixels are accepted",
            )
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            image.seek(0)
            if image.format != "MPO":  # MPO extra frames are depth maps/previews, not an animation
                notices.append(
                    f"{_name(filename)} is animated ({frames} frames); only the first frame was used."
                )
        original_size = _oriented_size(image)
        if image.format in ("JPEG", "MPO") and max(width, height) > max_side:
            # Let libjpeg decode at a reduced scale: much faster and lighter for big photos.
            image.draft(image.mode, (max_side, max_side))
        image.load()  # force a full decode: truncated or corrupt files fail here
        image = ImageOps.exif_transpose(image)
        image = _to_8bit(image, filename, notices)
    except UnreadableImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise UnreadableImageError(filename, "the image is too large to open safely") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, MemoryError) as exc:
        logger.info("could not decode %s: %s", filename, exc)
        raise UnreadableImageError(
            filename, "the image is damaged or incomplete (it may have been cut off while copying)"
        ) from exc

    if max(image.size) > max_side:
        target = _fit(image.size, max_side)
        image = image.resize(target, Image.Resampling.LANCZOS)
        notices.append(
            f"{_name(filename)} was {original_size[0]}×{original_size[1]} px; "
            f"downscaled to {target[0]}×{target[1]} to keep the library fast."
        )
    return LoadedImage(image=image, notices=notices, original_size=original_size)


def load_image_file(
    path: Path | str, filename: str | None = None, max_side: int = DEFAULT_MAX_SIDE
) -> LoadedImage:
    """:func:`load_image` from a file on disk (``filename`` defaults to the file's name)."""
    path = Path(path)
    name = filename if filename is not None else path.name
    try:
        data = read_regular(path)
    except NotUsableError as exc:
        raise UnreadableImageError(name, exc.reason) from None
    except OSError as exc:
        raise UnreadableImageError(name, f"the file could not be read ({exc.strerror or exc})") from exc
    return load_image(data, name, max_side=max_side)


class NotUsableError(Exception):
    """A file that is refused before or while reading it; ``reason`` is shown next to its name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def too_large_reason(size: int, limit: int = MAX_FILE_BYTES) -> str:
    return f"the file is too large ({size / 1e6:,.0f} MB; the limit is {limit // 10**6:,} MB)"


def open_regular(path: Path, limit: int = MAX_FILE_BYTES) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file of at most ``limit`` bytes.

    The type and size are checked with ``stat`` before opening (so a device or a FIFO is never
    opened) and again on the open file (in case it was swapped in between). The open never blocks.
    Raises ``NotUsableError`` with the reason, or ``OSError`` for a file that cannot be read.
    """
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise NotUsableError(NOT_REGULAR_REASON)
    if info.st_size > limit:
        raise NotUsableError(too_large_reason(info.st_size, limit))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotUsableError(NOT_REGULAR_REASON)
        if info.st_size > limit:
            raise NotUsableError(too_large_reason(info.st_size, limit))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(handle: BinaryIO, limit: int = MAX_FILE_BYTES) -> bytes:
    """Read ``handle`` to its end in chunks; ``NotUsableError`` as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = handle.read(min(_CHUNK, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise NotUsableError(too_large_reason(total, limit) + "; it grew while being read")


def read_regular(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file ``path``, refused unread when it is not one or is over ``limit``."""
    with open_regular(path, limit) as handle:
        return read_bounded(handle, limit)


def _formats() -> list[str]:
    """The allowed formats this Pillow build can open."""
    Image.init()
    return [fmt for fmt in ALLOWED_FORMATS if fmt in Image.OPEN]


def _open(data: bytes, filename: str) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=_formats())
    except Image.DecompressionBombError as exc:
        raise UnreadableImageError(filename, "the image is too large to open safely") from exc
    except UnidentifiedImageError as exc:
        hint = _UNSUPPORTED_HINTS.get(Path(filename).suffix.lower())
        if hint:
            raise UnreadableImageError(filename, hint) from exc
        raise UnreadableImageError(
            filename, "this is not an image in a supported format (use PNG, JPEG, GIF, BMP, TIFF or WebP)"
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnreadableImageError(
            filename, "the image is damaged or incomplete (it may have been cut off while copying)"
        ) from exc


def _oriented_size(image: Image.Image) -> tuple[int, int]:
    """Size as the person sees it (EXIF orientations 5-8 swap width and height)."""
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not stop the import
        orientation = 1
    width, height = image.size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _fit(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    width, height = size
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_8bit(image: Image.Image, filename: str, notices: list[str]) -> Image.Image:
    """Convert any Pillow mode to ``"L"`` or ``"RGB"``."""
    mode = image.mode
    if mode in ("L", "RGB"):
        return image
    if mode == "1":
        return image.convert("L")
    if mode == "P":
        has_alpha = "transparency" in image.info or image.palette is not None and image.palette.mode == "RGBA"
        image = image.convert("RGBA" if has_alpha else "RGB")
        mode = image.mode
        if mode == "RGB":
            return image
    if mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"))
        if alpha.min() < 255:
            notices.append(f"{_name(filename)} has transparent areas; they were filled with white.")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        flat = Image.alpha_composite(background, rgba).convert("RGB")
        return flat.convert("L") if mode in ("LA", "La") else flat
    if mode == "CMYK":
        notices.append(f"{_name(filename)} was converted from CMYK (print colours) to RGB.")
        return image.convert("RGB")
    if mode.startswith("I") or mode == "F":
        array = np.asarray(image).astype(np.float64)
        if mode == "F":
            low, high = float(np.nanmin(array)), float(np.nanmax(array))
            scaled = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
        else:
            scaled = array / 257.0 if array.max() > 255 else array
        notices.append(f"{_name(filename)} was converted from high bit depth to 8-bit.")
        return Image.fromarray(np.clip(np.nan_to_num(scaled), 0, 255).round().astype(np.uint8))
    return image.convert("RGB")


# ---------------------------------------------------------------------------------------------
# PNG with text chunks
# ---------------------------------------------------------------------------------------------


def save_png(
    image: Image.Image, path_or_buffer: Path | str | BinaryIO, text: dict[str, str] | None = None
) -> None:
    """Write ``image`` as PNG with ``text`` stored in iTXt chunks (UTF-8 keys and values).

    A path is written atomically (temporary file in the same folder, then renamed).
    """
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_itxt(str(key), str(value))
    if isinstance(path_or_buffer, (str, Path)):
        path = Path(path_or_buffer)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                image.save(handle, format="PNG", pnginfo=info)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    else:
        image.save(path_or_buffer, format="PNG", pnginfo=info)


def read_png_text(data: bytes | Path | str) -> dict[str, str]:
    """The text chunks (tEXt, zTXt, iTXt) of a PNG, as a dict. Non-PNG input is a ``BadInputError``."""
    if isinstance(data, (str, Path)):
        name = Path(data).name
        try:
            data = Path(data).read_bytes()
        except OSError as exc:
            raise BadInputError(f"{name}: the file could not be read ({exc.strerror or exc})") from exc
    else:
        name = "The image"
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            image.load()
            return {str(key): str(value) for key, value in getattr(image, "text", {}).items()}
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadInputError(f"{name} is not a readable PNG image.") from exc


# ---------------------------------------------------------------------------------------------
# PIL <-> tensor
# ---------------------------------------------------------------------------------------------


def to_tensor(image: Image.Image) -> torch.Tensor:
    """A PIL image as a float32 tensor ``(C, H, W)`` in ``[-1, 1]`` (C = 1 for ``"L"``, else 3)."""
    import torch  # here, not at the top: reading and checking images does not need it (1 s to load)

    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    return tensor / 127.5 - 1.0


def from_tensor(tensor: torch.Tensor) -> Image.Image:
    """A tensor ``(C, H, W)``, ``(1, C, H, W)`` or ``(H, W)`` in ``[-1, 1]`` as an ``"L"``/``"RGB"`` image."""
    import torch

    tensor = tensor.detach().to("cpu", torch.float32)
    if tensor.ndim == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim == 2:
        tensor = tensor[None]
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3):
        raise ValueError(f"expected a (C, H, W) tensor with C = 1 or 3, got shape {tuple(tensor.shape)}")
    array = ((tensor.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8).numpy()
    if array.shape[0] == 1:
        return Image.fromarray(array[0])
    return Image.fromarray(np.ascontiguousarray(array.transpose(1, 2, 0)))
