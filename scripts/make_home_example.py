"""Make assets/home_example.png: a generated face, its source map and its top library sources.

Run: MOSAIC_DATA_DIR=$(mktemp -d) python scripts/make_home_example.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.engines.local_score import LocalScoreEngine, LocalScoreRequest  # noqa: E402
from core.libraries import LibraryManager  # noqa: E402
from core.mosaic import boxed_source, build_mosaic, source_colour_image, top_sources  # noqa: E402

SIDE = 256


def main() -> None:
    libraries = LibraryManager()
    request = LocalScoreRequest(seed=11, library="faces", size=32, machine="bbels", label="face", preset="coarse")
    (image,) = LocalScoreEngine(libraries).generate(request)
    mosaic = build_mosaic(image.arrays, "faces", libraries)
    panels = [
        image.image.convert("RGB").resize((SIDE, SIDE), Image.Resampling.NEAREST),
        source_colour_image(mosaic, scale=SIDE // mosaic.size),
    ]
    shares = top_sources(mosaic, k=4)
    thumbs = []
    for share in shares:
        picture = libraries.item_image("faces", share.index).resize((mosaic.size, mosaic.size))
        thumbs.append(boxed_source(picture, share.locations, mosaic.patch_sizes[-1], share.colour, scale=4))
    grid = Image.new("RGB", (SIDE, SIDE), "white")
    for i, thumb in enumerate(thumbs):
        grid.paste(thumb.resize((SIDE // 2 - 4, SIDE // 2 - 4)), ((i % 2) * SIDE // 2 + 2, (i // 2) * SIDE // 2 + 2))
    panels.append(grid)
    gap = 16
    out = Image.new("RGB", (3 * SIDE + 2 * gap, SIDE + 28), "white")
    draw = ImageDraw.Draw(out)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 15)
    except OSError:
        font = ImageFont.load_default()
    for i, (panel, title) in enumerate(zip(panels, ["New image", "Source map", "Top library sources"], strict=True)):
        out.paste(panel, (i * (SIDE + gap), 28))
        draw.text((i * (SIDE + gap), 4), title, fill=(30, 27, 46), font=font)
    out.save(ROOT / "assets" / "home_example.png")
    print("wrote assets/home_example.png")


if __name__ == "__main__":
    main()
