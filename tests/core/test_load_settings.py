"""Load arguments as settings: every argument a load request takes is also a flag (its
default), the flags reach the options every load starts from, and GPU-only ones are noted."""

from __future__ import annotations

import logging

from modules.app import load_options
from modules.engines.load_args import GPU_ONLY, LoadArgs
from modules.settings import Settings, build_parser, load_settings


def test_every_load_argument_is_a_flag():
    flags = {action.dest for action in build_parser()._actions}
    missing = [
        name for name in LoadArgs.model_fields if name not in Settings.model_fields or name not in flags
    ]
    assert missing == []


def test_flags_are_the_options_of_every_load(caplog):
    settings = load_settings(
        [
            "--cache-type", "q8_0", "--ubatch-size", "128", "--rope-freq-base", "500000",
            "--compress-pos-emb", "2", "--no-mmap", "--mlock", "--gpu-layers", "12",
            "--draft-max", "4", "--tensor-split", "1,1",
        ],
        {},
    )  # fmt: skip
    with caplog.at_level(logging.INFO):
        options = load_options(settings)
    assert options.cache_type == "q8_0" and options.ubatch_size == 128 and options.gpu_layers == 12
    assert options.rope == (500000.0, 0.5) and options.load_mode == 2 and options.draft_max == 4
    assert "tensor_split is for GPUs and changes nothing here" in caplog.text
    assert not any(f"{name} is for GPUs" in caplog.text for name in GPU_ONLY if name != "tensor_split")


def test_defaults_change_nothing():
    options = load_options(load_settings([], {}))
    assert options.cache_type == "fp16" and options.rope == (0.0, 0.0) and options.load_mode == -1
    assert options.gpu_layers == 0 and options.model_draft is None
