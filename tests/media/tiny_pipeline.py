"""A tiny, randomly initialised Stable Diffusion pipeline, built locally for tests.

No PyPI package ships diffusion weights and nothing may come from a model hub, so the
tests build one (../shared/FACTS.md): a 2-block UNet, a VAE that keeps the usual
downscale factor of 8, and a small CLIP text encoder with a hand-written tokenizer.
About 5 MB; a 64x64 image takes ~0.1 s. The images are noise, but real noise of the
requested size, made by the real diffusers code path.
"""

from __future__ import annotations

import json
import string
from pathlib import Path


def _write_tokenizer(folder: Path) -> None:
    letters = string.ascii_lowercase + string.digits
    tokens = ["<|startoftext|>", "<|endoftext|>", "!", ",", "."]
    tokens += list(letters) + [c + "</w>" for c in letters]
    tokens += ["th", "the</w>", "an", "and</w>", "ca", "cat</w>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    merges = ["#version: 0.2", "t h", "th e</w>", "a n", "an d</w>", "c a", "ca t</w>"]
    (folder / "merges.txt").write_text("\n".join(merges) + "\n")


def build_tiny_pipeline(folder: Path) -> Path:
    """Write a diffusers pipeline folder (model_index.json and its parts) to `folder`."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    tokenizer_dir = folder / "tokenizer-source"
    tokenizer_dir.mkdir(parents=True, exist_ok=True)
    _write_tokenizer(tokenizer_dir)
    # transformers 5 ignores vocab_file/merges_file given to the constructor: load the folder.
    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir), model_max_length=16)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=len(tokenizer),
            max_position_embeddings=16,
            projection_dim=32,
        )
    )
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(4, 4, 4, 4),
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=2,
        sample_size=64,
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    target = folder / "tiny-sd"
    pipeline.save_pretrained(str(target))
    return target


if __name__ == "__main__":
    # Built in a separate process by the tests, so the test process never imports torch.
    import sys

    print(build_tiny_pipeline(Path(sys.argv[1])))
