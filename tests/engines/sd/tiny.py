"""Tiny randomly initialised Stable Diffusion pipelines for tests (no download, a few MB).

``build_tiny_sd15(path)`` and ``build_tiny_sdxl(path)`` write a diffusers-format pipeline folder
(safetensors weights) that the studio's model loader accepts, e.g. into
``config.data_dir() / "models" / "tiny-sd15"``. ``write_single_file(folder, file)`` writes the
same weights as one original-layout ``.safetensors`` checkpoint (the layout of
``v1-5-pruned-emaonly.safetensors`` / ``sd_xl_base_1.0.safetensors``); diffusers then needs the
folder as ``config=`` to load it, because a tiny model cannot be recognised from its keys.

The components follow the tiny shapes of diffusers' own fast tests (even smaller channels).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

__all__ = ["build_tiny_sd15", "build_tiny_sdxl", "write_single_file", "write_tiny_tokenizer"]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte-to-printable-character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def write_tiny_tokenizer(folder: Path) -> Path:
    """A CLIP BPE tokenizer (vocab.json + merges.txt) small enough for a 1000-token text encoder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    merges = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("an", "d</w>")]
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    merges_text = "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n"
    (folder / "merges.txt").write_text(merges_text, encoding="utf-8")
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"), model_max_length=77)
    tokenizer.save_pretrained(str(folder))
    return folder


def _tokenizer(tmp: Path):
    from transformers import CLIPTokenizer

    write_tiny_tokenizer(tmp)
    return CLIPTokenizer.from_pretrained(str(tmp))


def _vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(
        block_out_channels=[8, 16],
        norm_num_groups=4,
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        sample_size=64,
    )


def _scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def build_tiny_sd15(path: Path | str) -> Path:
    """Write a tiny SD 1.x pipeline (diffusers format, safetensors) to ``path``; returns it."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    path = Path(path)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
    )
    vae = _vae()
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-05,
            num_attention_heads=4, num_hidden_layers=2, pad_token_id=1, vocab_size=1000,
        )
    )
    tokenizer = _tokenizer(path.parent / f".{path.name}-tokenizer")
    pipe = StableDiffusionPipeline(
        unet=unet, scheduler=_scheduler(), vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(str(path), safe_serialization=True)
    return path


def build_tiny_sdxl(path: Path | str) -> Path:
    """Write a tiny SDXL pipeline (two text encoders) to ``path``; returns it."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    path = Path(path)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,  # 6 * 8 + 32
        cross_attention_dim=80,  # 32 + 48
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, steps_offset=1, beta_schedule="scaled_linear", timestep_spacing="leading"
    )
    vae = _vae()
    config = CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-05,
        num_attention_heads=4, num_hidden_layers=2, pad_token_id=1, vocab_size=1000, hidden_act="gelu",
        projection_dim=32,
    )
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(config)
    torch.manual_seed(1)
    # a different width than the first encoder, as in real SDXL (768 / 1280): diffusers tells the
    # two apart in single-file checkpoints by their width
    config_2 = CLIPTextConfig(**{**config.to_dict(), "hidden_size": 48})
    text_encoder_2 = CLIPTextModelWithProjection(config_2)
    tokenizer = _tokenizer(path.parent / f".{path.name}-tokenizer")
    pipe = StableDiffusionXLPipeline(
        unet=unet, scheduler=scheduler, vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
        tokenizer=tokenizer, tokenizer_2=tokenizer, image_encoder=None, feature_extractor=None,
    )
    pipe.save_pretrained(str(path), safe_serialization=True)
    return path


# ---------------------------------------------------------------------------------------------
# diffusers -> original (LDM) key layout, for single-file checkpoints
# ---------------------------------------------------------------------------------------------

_RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
           ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]


def _resnet(rest: str) -> str:
    for new, old in _RESNET:
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    return rest


def _unet_to_ldm(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    per = int(config["layers_per_block"]) + 1
    static = dict(DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"])
    if config.get("addition_embed_type") == "text_time":
        static.update(DIFFUSERS_TO_LDM_MAPPING["unet"]["addition_embed_type"])
    up_has_attn = {i: "CrossAttn" in t for i, t in enumerate(config["up_block_types"])}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in static:
            out[static[key]] = value
            continue
        if m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            b, j, rest = int(m[1]), int(m[2]), m[3]
            new = f"input_blocks.{b * per + j + 1}.0.{_resnet(rest)}"
        elif m := re.match(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.*)", key):
            new = f"input_blocks.{int(m[1]) * per + int(m[2]) + 1}.1.{m[3]}"
        elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
            new = f"input_blocks.{(int(m[1]) + 1) * per}.0.op.{m[2]}"
        elif m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key):
            new = f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
        elif m := re.match(r"mid_block\.attentions\.0\.(.*)", key):
            new = f"middle_block.1.{m[1]}"
        elif m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            new = f"output_blocks.{int(m[1]) * per + int(m[2])}.0.{_resnet(m[3])}"
        elif m := re.match(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.*)", key):
            new = f"output_blocks.{int(m[1]) * per + int(m[2])}.1.{m[3]}"
        elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
            b = int(m[1])
            new = f"output_blocks.{b * per + per - 1}.{2 if up_has_attn[b] else 1}.conv.{m[2]}"
        else:
            raise KeyError(f"unmapped UNet key {key}")
        out[new] = value
    return out


_VAE_ATTN = [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out.")]


def _vae_to_ldm(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    static = DIFFUSERS_TO_LDM_MAPPING["vae"]
    n_up = len(config["up_block_types"])
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in static:
            out[static[key]] = value
            continue
        if m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            new = f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
            new = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            new = f"decoder.up.{n_up - 1 - int(m[1])}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
            new = f"decoder.up.{n_up - 1 - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)", key):
            new = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)", key):
            rest = m[2]
            for new_name, old_name in _VAE_ATTN:
                if rest.startswith(new_name):
                    rest = old_name + rest[len(new_name):]
            new = f"{m[1]}.mid.attn_1.{rest}"
            if value.ndim == 2:
                value = value[:, :, None, None]
        else:
            raise KeyError(f"unmapped VAE key {key}")
        out[new] = value
    return out


def _open_clip_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key == "text_model.embeddings.position_embedding.weight":
            out["positional_embedding"] = value
        elif key == "text_model.embeddings.token_embedding.weight":
            out["token_embedding.weight"] = value
        elif key.startswith("text_model.final_layer_norm."):
            out["ln_final." + key.rsplit(".", 1)[1]] = value
        elif key == "text_projection.weight":
            out["text_projection"] = value.T.contiguous()
        elif m := re.match(r"text_model\.encoder\.layers\.(\d+)\.(.*)", key):
            i, rest = m[1], m[2]
            if pm := re.match(r"self_attn\.(q|k|v)_proj\.(weight|bias)", rest):
                qkv.setdefault(f"{i}.{pm[2]}", {})[pm[1]] = value
                continue
            rest = (rest.replace("self_attn.out_proj", "attn.out_proj").replace("layer_norm1", "ln_1")
                    .replace("layer_norm2", "ln_2").replace("mlp.fc1", "mlp.c_fc").replace("mlp.fc2", "mlp.c_proj"))
            out[f"transformer.resblocks.{i}.{rest}"] = value
    for name, parts in qkv.items():
        i, kind = name.split(".")
        out[f"transformer.resblocks.{i}.attn.in_proj_{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


def write_single_file(folder: Path | str, target: Path | str) -> Path:
    """Write the diffusers pipeline in ``folder`` as one original-layout ``.safetensors`` file."""
    from safetensors.torch import load_file, save_file

    folder, target = Path(folder), Path(target)
    index = json.loads((folder / "model_index.json").read_text())

    def component(name: str) -> tuple[dict[str, torch.Tensor], dict]:
        sub = folder / name
        weights = next(iter(sorted(sub.glob("*.safetensors"))))
        return load_file(str(weights)), json.loads((sub / "config.json").read_text())

    checkpoint: dict[str, torch.Tensor] = {}
    unet, unet_config = component("unet")
    checkpoint.update({"model.diffusion_model." + k: v for k, v in _unet_to_ldm(unet, unet_config).items()})
    vae, vae_config = component("vae")
    checkpoint.update({"first_stage_model." + k: v for k, v in _vae_to_ldm(vae, vae_config).items()})
    text, _ = component("text_encoder")
    # transformers >= 5.6 saves CLIPTextModel without the ``text_model.`` level the original layout has
    text = {(k if k.startswith(("text_model.", "text_projection")) else "text_model." + k): v for k, v in text.items()}
    if "XL" in index["_class_name"]:
        checkpoint.update({"conditioner.embedders.0.transformer." + k: v for k, v in text.items()})
        text2, _ = component("text_encoder_2")
        converted = _open_clip_to_ldm(text2)
        checkpoint.update({"conditioner.embedders.1.model." + k: v for k, v in converted.items()})
    else:
        checkpoint.update({"cond_stage_model.transformer." + k: v for k, v in text.items()})
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in checkpoint.items()}, str(target))
    return target
