"""A studio (local score) image saved in the gallery, made from a tiny 4-picture library (used by verdict tests).

With 4 pictures the studio cannot make an original image: most of it comes from one picture, which is
what the exact-source verdict must say plainly.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

PICTURES = ("astronaut", "coffee", "chelsea", "rocket")


def tiny_library(folder: Path, name: str = "refs") -> str:
    """A library ``name`` of 4 sample photos (96 px), in the data folder of the current test."""
    from skimage import data as skdata

    from core.libraries import LibraryManager

    folder.mkdir(parents=True, exist_ok=True)
    for picture in PICTURES:
        Image.fromarray(getattr(skdata, picture)()).convert("RGB").resize((96, 96)).save(folder / f"{picture}.png")
    manager = LibraryManager()
    manager.create(name)
    assert manager.add_folder(name, folder).added == len(PICTURES)
    return name


def studio_record(library: str, seed: int = 0, size: int = 32):
    """A local score image of ``library`` saved in the gallery (with its exact per-pixel sources)."""
    from core.engines.local_score import LocalScoreEngine, LocalScoreRequest
    from core.store import Store

    (generated,) = LocalScoreEngine().generate(LocalScoreRequest(library=library, size=size, count=1, seed=seed))
    assert "sources" in generated.arrays
    (record,) = Store().save([generated])
    return record
