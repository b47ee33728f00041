"""A tiny LoRA adapter (GGUF) for the tiny test model (tiny_model.py).

llama.cpp's adapter format: `general.type` "adapter", `general.architecture` the base
model's, `adapter.type` "lora", `adapter.lora.alpha`, and for each adapted weight W (numpy
shape (out, in)) two tensors `<W>.lora_a` of shape (rank, in) and `<W>.lora_b` of shape
(out, rank); the weight becomes W + scale * alpha / rank * B @ A. This one adapts the
output matrix (so the logits move with the scale) and the last layer's queries.
"""

from __future__ import annotations

import os
import pathlib

import gguf
import numpy as np
from tiny_model import N_EMBD, N_LAYER, build_vocab

RANK = 4


def write_tiny_lora(
    path: str | os.PathLike[str], *, seed: int = 7, alpha: float = 8.0, strength: float = 1.0
) -> pathlib.Path:
    """Write an adapter for the tiny model to `path`; the same arguments give the same file."""
    path = pathlib.Path(path)
    rng = np.random.default_rng(seed)
    n_vocab = len(build_vocab().pieces)
    targets = {"output.weight": (n_vocab, N_EMBD), f"blk.{N_LAYER - 1}.attn_q.weight": (N_EMBD, N_EMBD)}
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", alpha)
    for name, (n_out, n_in) in targets.items():
        a = rng.normal(0.0, strength, size=(RANK, n_in)).astype(np.float32)
        b = rng.normal(0.0, strength / RANK, size=(n_out, RANK)).astype(np.float32)
        writer.add_tensor(f"{name}.lora_a", a)
        writer.add_tensor(f"{name}.lora_b", b)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return path
