"""A tiny random-weight vision projector (`mmproj`) GGUF for a given text model.

No vision model installs from PyPI, so the image tests pair a text model (the tiny test
model, or the default SmolLM2) with a projector written here in milliseconds: a 2-layer
vision encoder on 112x112 images in 14-pixel patches, and a projection into the text
model's embedding width (it must match exactly, or llama.cpp's multimodal library refuses
the pair). Answers are meaningless, but deterministic, and the whole image path runs.

Two projector types (../shared/FACTS.md): "gemma3" (16 image tokens, non-causal attention
around the image) and "mlp" (LLaVA-1.5 style, 64 image tokens).
"""

from __future__ import annotations

import pathlib

import gguf
import numpy as np

IMAGE_SIZE = 112
PATCH = 14
N_EMBD = 64
N_FF = 128
N_LAYER = 2
N_HEAD = 2
SCALE_FACTOR = 2  # gemma3: 2x2 patches pooled into one image token


def write_tiny_projector(
    path: str | pathlib.Path, text_embd: int, *, kind: str = "gemma3", seed: int = 0
) -> pathlib.Path:
    """Write a projector for a text model whose embeddings are `text_embd` wide."""
    path = pathlib.Path(path)
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(path, arch="clip")
    writer.add_string("general.name", f"tiny {kind} projector")
    writer.add_string("clip.projector_type", kind)
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_text_encoder", False)
    writer.add_bool("clip.has_llava_projector", kind == "mlp")
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    writer.add_uint32("clip.vision.patch_size", PATCH)
    writer.add_uint32("clip.vision.embedding_length", N_EMBD)
    writer.add_uint32("clip.vision.feed_forward_length", N_FF)
    writer.add_uint32("clip.vision.projection_dim", text_embd)
    writer.add_uint32("clip.vision.block_count", N_LAYER)
    writer.add_uint32("clip.vision.attention.head_count", N_HEAD)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    if kind == "gemma3":
        writer.add_uint32("clip.vision.projector.scale_factor", SCALE_FACTOR)

    def tensor(name: str, *shape: int, std: float = 0.05) -> None:
        # shapes in PyTorch order; the writer stores them reversed, as ggml wants
        writer.add_tensor(name, rng.normal(0, std, size=shape).astype(np.float32))

    def ones(name: str, n: int) -> None:
        writer.add_tensor(name, np.ones(n, dtype=np.float32))

    n_patches = (IMAGE_SIZE // PATCH) ** 2
    tensor("v.patch_embd.weight", N_EMBD, 3, PATCH, PATCH)
    tensor("v.patch_embd.bias", N_EMBD)
    tensor("v.position_embd.weight", n_patches, N_EMBD)
    for i in range(N_LAYER):
        for norm in ("ln1", "ln2"):
            ones(f"v.blk.{i}.{norm}.weight", N_EMBD)
            tensor(f"v.blk.{i}.{norm}.bias", N_EMBD)
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            tensor(f"v.blk.{i}.{name}.weight", N_EMBD, N_EMBD)
            tensor(f"v.blk.{i}.{name}.bias", N_EMBD)
        tensor(f"v.blk.{i}.ffn_up.weight", N_FF, N_EMBD)
        tensor(f"v.blk.{i}.ffn_up.bias", N_FF)
        tensor(f"v.blk.{i}.ffn_down.weight", N_EMBD, N_FF)
        tensor(f"v.blk.{i}.ffn_down.bias", N_EMBD)
    if kind == "gemma3":
        ones("v.post_ln.weight", N_EMBD)
        tensor("v.post_ln.bias", N_EMBD)
        ones("mm.soft_emb_norm.weight", N_EMBD)
        tensor("mm.input_projection.weight", N_EMBD, text_embd)
    else:
        tensor("mm.0.weight", text_embd, N_EMBD)
        tensor("mm.0.bias", text_embd)
        tensor("mm.2.weight", text_embd, text_embd)
        tensor("mm.2.bias", text_embd)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return path
