"""Load arguments: text-generation-webui's llama.cpp args, with its names, in one declaration.

The same arguments come from three places, highest first: the `args` of a load request
(`/v1/internal/model/load`, the UI's load form), the model's entry in `models.yaml`
(model_table.py), and the server's flags (modules/settings: `--cache-type`, ...), which
are the defaults of every load. `LoadArgs` validates the first two; `apply_args` turns
them into the `LoadOptions` a loader gets.

Arguments that only mean something with a GPU (`gpu_layers` aside, which is passed on for
builds that offload) are accepted, so that text-generation-webui's settings and scripts
keep working, and a note is logged that they change nothing here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import InvalidRequest
from .registry import LoadOptions

log = logging.getLogger(__name__)

CacheType = Literal["fp16", "f32", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "iq4_nl"]


def _arg(description: str, **constraints) -> Field:
    return Field(None, description=description, **constraints)


class LoadArgs(BaseModel):
    """A load's arguments; every one is optional (null: the model's or the server's value)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    ctx_size: int | None = _arg("Context per request in tokens (0: training context).", ge=0, le=1 << 20)
    threads: int | None = _arg("Generation threads.", ge=1, le=1024)
    threads_batch: int | None = _arg("Prompt-processing threads.", ge=1, le=1024)
    batch_size: int | None = _arg("Prompt tokens per step.", ge=1, le=1 << 16)
    ubatch_size: int | None = _arg(
        "Tokens per physical step, at most batch_size (0: the batch size).", ge=0, le=1 << 16
    )
    parallel: int | None = _arg("Sequences generated at once.", ge=1, le=64)
    flash_attn: bool | None = _arg("Flash attention (faster on CPU; batched text may vary).")
    cache_type: CacheType | None = _arg(
        "KV cache type: fp16, or q8_0 / q4_0 (and f32, q5_1, q5_0, q4_1, iq4_nl) for a cache about "
        "half / a quarter the size. Quantized types turn flash attention on."
    )
    rope_freq_base: float | None = _arg("RoPE base frequency (0: the model's).", ge=0)
    compress_pos_emb: float | None = _arg(
        "Positional embeddings compression factor (RoPE frequency scale 1/x; 1: off).", ge=1
    )
    alpha_value: float | None = _arg(
        "NTK RoPE scaling: rope_freq_base = 10000 * alpha_value ^ (64/63) when rope_freq_base is 0 (1: off).",
        ge=1,
    )
    no_mmap: bool | None = _arg("Read the model file into memory instead of mapping it.")
    mlock: bool | None = _arg("Lock the model in RAM (no swapping).")
    numa: bool | None = _arg(
        "Spread threads and memory over NUMA nodes (for the whole process, from its first load)."
    )
    gpu_layers: int | None = _arg(
        "Layers to offload to a GPU (-1: all); passed to llama.cpp, which runs on the CPU "
        "unless built for a GPU.",
        ge=-1,
    )
    tensor_split: str | None = _arg("GPU only: accepted, with a logged note.", max_length=200)
    split_mode: str | None = _arg("GPU only: accepted, with a logged note.", max_length=20)
    main_gpu: int | None = _arg("GPU only: accepted, with a logged note.", ge=0, le=64)
    no_kv_offload: bool | None = _arg("GPU only: accepted, with a logged note.")
    cpu_moe: bool | None = _arg("GPU only: accepted, with a logged note.")
    mmproj: str | None = _arg(
        "A projector file in the model folder (its name), so that the model reads images.", max_length=1000
    )
    model_draft: str | None = _arg(
        "A draft model in the model folder (its name) for speculative decoding.", max_length=1000
    )
    draft_max: int | None = _arg("Most tokens drafted per step (0: no drafting).", ge=0, le=64)
    ctx_size_draft: int | None = _arg(
        "The draft model's context per request (0: ctx_size).", ge=0, le=1 << 20
    )
    gpu_layers_draft: int | None = _arg("GPU only: accepted, with a logged note.", ge=-1)
    device_draft: str | None = _arg("GPU only: accepted, with a logged note.", max_length=200)

    @model_validator(mode="before")
    @classmethod
    def _known(cls, data: object) -> object:
        """An unknown argument is refused with the list of the known ones (not ignored: an
        argument of another backend would silently do nothing)."""
        if isinstance(data, dict):
            unknown = [key for key in data if key not in cls.model_fields]
            if unknown:
                name = str(unknown[0])[:200]
                raise InvalidRequest(
                    f"Unknown load argument {name!r}; known: {', '.join(cls.model_fields)}.",
                    param=f"args.{name}",
                )
        return data

    def given(self) -> dict:
        return self.model_dump(exclude_none=True)


# Accepted, and noted: they change nothing on the CPU.
GPU_ONLY = (
    "tensor_split",
    "split_mode",
    "main_gpu",
    "no_kv_offload",
    "cpu_moe",
    "gpu_layers_draft",
    "device_draft",
)
FILES = ("mmproj", "model_draft")  # names of files in the model folder


def apply_args(
    options: LoadOptions, args: LoadArgs, resolve_file: Callable[[str, str], Path], model: str
) -> LoadOptions:
    """`options` with the arguments given in `args` (files resolved below the model folder)."""
    values = args.given()
    for name in GPU_ONLY:
        if values.pop(name, None) is not None:
            log.info(
                "%s: %s is for GPUs and changes nothing here (Hearth runs llama.cpp on the CPU)", model, name
            )
    for name in FILES:
        if name in values:
            values[name] = resolve_file(values[name], f"args.{name}")
    if "mmproj" in values:
        values["mmproj_optional"] = False  # named: one that does not fit is an error
    return dataclasses.replace(options, **values)
