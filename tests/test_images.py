"""core.images: safe decoding, conversions, PNG text chunks and tensor helpers."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core import images
from core.errors import BadInputError
from core.images import (
    UnreadableImageError,
    from_tensor,
    load_image,
    load_image_file,
    read_png_text,
    save_png,
    to_tensor,
)


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOSAIC_DATA_DIR", str(tmp_path / "mosaic-data"))


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def test_plain_png_and_jpeg() -> None:
    loaded = load_image(encode(Image.new("RGB", (40, 30), (1, 2, 3))), "a.png")
    assert loaded.image.mode == "RGB" and loaded.image.size == (40, 30)
    assert loaded.notices == [] and loaded.original_size == (40, 30)
    gray = load_image(encode(Image.new("L", (10, 10), 7), "JPEG"), "g.jpg")
    assert gray.image.mode == "L"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, I am text", "not an image"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not an image"),
    ],
)
def test_unusable_bytes(data: bytes, message: str) -> None:
    with pytest.raises(UnreadableImageError, match=message) as info:
        load_image(data, "file.png")
    assert isinstance(info.value, BadInputError)
    assert str(info.value).startswith("file.png: ")
    assert info.value.filename == "file.png" and message in info.value.reason


def test_heic_gets_a_hint() -> None:
    with pytest.raises(BadInputError, match="HEIC"):
        load_image(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 40, "IMG_0001.HEIC")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_truncated_images(fmt: str) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), fmt)
    with pytest.raises(BadInputError, match="damaged or incomplete"):
        load_image(data[: len(data) // 2], f"cut.{fmt.lower()}")


def test_too_many_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_PIXELS", 100 * 100 - 1)
    with pytest.raises(BadInputError, match=r"too large \(100×100 px\)"):
        load_image(encode(Image.new("L", (100, 100))), "bomb.png")


def test_real_decompression_bomb_rejected_without_decoding() -> None:
    data = encode(Image.new("1", (9000, 9000)))  # 81 megapixels in a few kB
    assert len(data) < 100_000
    with pytest.raises(BadInputError, match="too large"):
        load_image(data, "bomb.png")


def test_huge_image_downscaled_with_notice() -> None:
    data = encode(Image.new("RGB", (6000, 4000), (200, 100, 50)), "JPEG", quality=70)
    loaded = load_image(data, "photo.jpg")
    assert loaded.image.size == (1024, 683)
    assert loaded.original_size == (6000, 4000)
    assert loaded.notices == ["photo.jpg was 6000×4000 px; downscaled to 1024×683 to keep the library fast."]


def test_max_side_parameter() -> None:
    loaded = load_image(encode(Image.new("L", (300, 100))), "wide.png", max_side=150)
    assert loaded.image.size == (150, 50) and "downscaled to 150×50" in loaded.notices[0]


def test_animated_gif_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in [(255, 0, 0), (0, 0, 255)]]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    loaded = load_image(buffer.getvalue(), "anim.gif")
    assert loaded.image.mode == "RGB"
    red, _, blue = loaded.image.getpixel((8, 8))
    assert red > 200 and blue < 50
    assert loaded.notices == ["anim.gif is animated (2 frames); only the first frame was used."]


def test_rgba_composited_on_white() -> None:
    image = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    image.putpixel((0, 0), (255, 0, 0, 255))
    loaded = load_image(encode(image), "logo.png")
    assert loaded.image.mode == "RGB"
    assert loaded.image.getpixel((5, 5)) == (255, 255, 255)
    assert loaded.image.getpixel((0, 0)) == (255, 0, 0)
    assert "transparent" in loaded.notices[0]


def test_palette_with_transparency_and_la() -> None:
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.info["transparency"] = 0
    loaded = load_image(encode(palette, transparency=0), "p.png")
    assert loaded.image.mode == "RGB" and loaded.image.getpixel((0, 0)) == (255, 255, 255)
    la = load_image(encode(Image.new("LA", (4, 4), (0, 0))), "la.png")
    assert la.image.mode == "L" and la.image.getpixel((0, 0)) == 255


def test_cmyk_converted() -> None:
    loaded = load_image(encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"), "print.jpg")
    assert loaded.image.mode == "RGB"
    assert any("CMYK" in notice for notice in loaded.notices)


def test_sixteen_bit_converted() -> None:
    array = np.full((6, 6), 65535, dtype=np.uint16)
    array[0, 0] = 0
    loaded = load_image(encode(Image.fromarray(array)), "deep.png")
    assert loaded.image.mode == "L"
    assert loaded.image.getpixel((1, 1)) == 255 and loaded.image.getpixel((0, 0)) == 0
    assert any("8-bit" in notice for notice in loaded.notices)


def test_one_bit_image() -> None:
    assert load_image(encode(Image.new("1", (5, 5), 1)), "bw.png").image.mode == "L"


def test_exif_orientation_applied() -> None:
    image = Image.new("RGB", (40, 20), (0, 128, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    loaded = load_image(encode(image, "JPEG", exif=exif), "phone.jpg")
    assert loaded.image.size == (20, 40)
    assert loaded.original_size == (20, 40)


def test_load_image_file(tmp_path: Path) -> None:
    path = tmp_path / "pic.png"
    path.write_bytes(encode(Image.new("RGB", (3, 3))))
    assert load_image_file(path).image.size == (3, 3)
    with pytest.raises(BadInputError, match="missing.png: the file could not be read"):
        load_image_file(tmp_path / "missing.png")


def test_png_text_round_trip(tmp_path: Path) -> None:
    text = {"prompt": "café ☕ à la plage", "seed": "42", "json": '{"a": [1, 2]}'}
    image = Image.new("RGB", (4, 4), (9, 8, 7))
    path = tmp_path / "out" / "gen.png"
    save_png(image, path, text)
    assert read_png_text(path) == text
    assert read_png_text(path.read_bytes()) == text
    assert not [p for p in path.parent.iterdir() if p.name != "gen.png"]  # no temp files
    buffer = io.BytesIO()
    save_png(image, buffer, {"k": "v"})
    assert read_png_text(buffer.getvalue()) == {"k": "v"}
    assert read_png_text(encode(image)) == {}
    with pytest.raises(BadInputError, match="not a readable PNG"):
        read_png_text(encode(image, "JPEG"))


def test_tensor_round_trip() -> None:
    rgb = Image.fromarray(np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8))
    tensor = to_tensor(rgb)
    assert tensor.shape == (3, 5, 7) and tensor.dtype == torch.float32
    assert tensor.min() >= -1 and tensor.max() <= 1
    assert np.array_equal(np.asarray(from_tensor(tensor)), np.asarray(rgb))
    gray = Image.new("L", (4, 3), 255)
    assert to_tensor(gray).shape == (1, 3, 4) and torch.all(to_tensor(gray) == 1)
    back = from_tensor(to_tensor(gray)[None])
    assert back.mode == "L" and back.size == (4, 3)
    assert from_tensor(torch.full((3, 2, 2), 5.0)).getpixel((0, 0)) == (255, 255, 255)  # clamped
    with pytest.raises(ValueError):
        from_tensor(torch.zeros(2, 4, 4))
