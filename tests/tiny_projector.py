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
    path: str | pathlib.Path,
    text_embd: int,
    *,
    kind: str = "gemma3",
    seed: int = 0,
    image_size: int = IMAGE_SIZE,
    patch: int = PATCH,
    n_embd: int = N_EMBD,
    n_ff: int = N_FF,
    n_layer: int = N_LAYER,
    n_head: int = N_HEAD,
    scale_factor: int = SCALE_FACTOR,
) -> pathlib.Path:
    """Write a projector for a text model whose embeddings are `text_embd` wide. The
    defaults make it tiny; bench/bench_images.py asks for a vision encoder of a real one's
    size, to time encoding."""
    path = pathlib.Path(path)
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(path, arch="clip")
    writer.add_string("general.name", f"tiny {kind} projector")
    writer.add_string("clip.projector_type", kind)
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_text_encoder", False)
    writer.add_bool("clip.has_llava_projector", kind == "mlp")
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", image_size)
    writer.add_uint32("clip.vision.patch_size", patch)
    writer.add_uint32("clip.vision.embedding_length", n_embd)
    writer.add_uint32("clip.vision.feed_forward_length", n_ff)
    writer.add_uint32("clip.vision.projection_dim", text_embd)
    writer.add_uint32("clip.vision.block_count", n_layer)
    writer.add_uint32("clip.vision.attention.head_count", n_head)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    if kind == "gemma3":
        writer.add_uint32("clip.vision.projector.scale_factor", scale_factor)

    def tensor(name: str, *shape: int, std: float = 0.05) -> None:
        # shapes in PyTorch order; the writer stores them reversed, as ggml wants. The blocks'
        # matrices in f16 (half the file); the rest in f32, where the library needs it.
        values = rng.normal(0, std, size=shape).astype(np.float32)
        half = len(shape) == 2 and not name.startswith(("v.position_embd", "mm."))
        writer.add_tensor(name, values.astype(np.float16) if half else values)

    def ones(name: str, n: int) -> None:
        writer.add_tensor(name, np.ones(n, dtype=np.float32))

    n_patches = (image_size // patch) ** 2
    tensor("v.patch_embd.weight", n_embd, 3, patch, patch)
    tensor("v.patch_embd.bias", n_embd)
    tensor("v.position_embd.weight", n_patches, n_embd)
    for i in range(n_layer):
        for norm in ("ln1", "ln2"):
            ones(f"v.blk.{i}.{norm}.weight", n_embd)
            tensor(f"v.blk.{i}.{norm}.bias", n_embd)
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            tensor(f"v.blk.{i}.{name}.weight", n_embd, n_embd)
            tensor(f"v.blk.{i}.{name}.bias", n_embd)
        tensor(f"v.blk.{i}.ffn_up.weight", n_ff, n_embd)
        tensor(f"v.blk.{i}.ffn_up.bias", n_ff)
        tensor(f"v.blk.{i}.ffn_down.weight", n_embd, n_ff)
        tensor(f"v.blk.{i}.ffn_down.bias", n_embd)
    if kind == "gemma3":
        ones("v.post_ln.weight", n_embd)
        tensor("v.post_ln.bias", n_embd)
        ones("mm.soft_emb_norm.weight", n_embd)
        tensor("mm.input_projection.weight", n_embd, text_embd)
    else:
        tensor("mm.0.weight", text_embd, n_embd)
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
