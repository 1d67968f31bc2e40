"""Latent-space analysis with a tiny randomly initialised SD-style VAE."""

from __future__ import annotations

import torch
from analyzer_synth import collage, make_library
from PIL import Image

from core.analyzer import Analyzer
from core.analyzer.settings import AnalyzerSettings
from core.libraries import LibraryManager


def _tiny_vae(seed: int):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
        sample_size=64,
    ).eval()


def test_latent_analysis_finds_pasted_regions_and_caches_per_vae(isolated_data_dir):
    manager = LibraryManager()
    arrays = make_library(manager, "mini", count=6)
    analyzer = Analyzer(manager, settings=AnalyzerSettings(work_size=64, scales=(8, 16)))
    vae = _tiny_vae(0)
    planted = collage([a[:128, :128] for a in arrays], seed=3, pieces=2)
    result = analyzer.analyze(planted.image.resize((64, 64)), "mini", space="latent", vae=vae)
    assert result.space == "latent" and result.source_map.shape == (64, 64)
    assert set(result.scales) == {8, 16}
    assert result.similarity.shape == (64, 64)
    exact = analyzer.analyze(Image.fromarray(arrays[2]), "mini", space="latent", vae=vae)
    assert exact.near_copy.is_copy and exact.near_copy.index == 2
    assert exact.borrowed_fraction > 0.5 and {s.index for s in exact.sources} == {2}
    folders = sorted(p.name for p in (isolated_data_dir / "indexes" / "mini").iterdir())
    assert len(folders) == 1 and folders[0].startswith("latent-")
    analyzer.index("mini", space="latent", vae=_tiny_vae(1))
    assert len(list((isolated_data_dir / "indexes" / "mini").iterdir())) == 2
