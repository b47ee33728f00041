"""Image generation with any local diffusers pipeline folder (`--image-model DIR`).

Each image is a PNG whose text chunks record how it was made (prompt, negative prompt,
steps, CFG scale, seed, size, model), both as separate keys and as one A1111-style
`parameters` string that other tools read.
"""

from __future__ import annotations

import inspect
import io
import logging
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from ...errors import InvalidRequest, NotFound
from .runtime import import_torch, prepare_openmp

log = logging.getLogger(__name__)

SIZE_MULTIPLE = 8  # the VAE downscale factor of Stable Diffusion-like pipelines
MIN_SIDE = 64
MAX_SIDE = 2048
_SIZE = re.compile(r"([0-9]{1,5}) *x *([0-9]{1,5})")  # ASCII digits only: "6²" is not a number
MAX_IMAGES = 10
SEED_RANGE = 2**32


@dataclass(frozen=True)
class ImageRequest:
    prompt: str
    width: int
    height: int
    n: int = 1
    steps: int = 20
    cfg_scale: float = 7.0
    seed: int | None = None  # None: a random seed; image i uses seed + i
    negative_prompt: str = ""


@dataclass(frozen=True)
class GeneratedImage:
    png: bytes
    seed: int


def parse_size(size: str) -> tuple[int, int]:
    """'WIDTHxHEIGHT' -> (width, height), or a 400 saying what is allowed."""
    match = _SIZE.fullmatch(size.strip().lower())
    if match is None:
        raise InvalidRequest(f"Invalid size '{size}': use WIDTHxHEIGHT, e.g. 512x512.", param="size")
    width, height = int(match[1]), int(match[2])
    for side in (width, height):
        if not MIN_SIDE <= side <= MAX_SIDE or side % SIZE_MULTIPLE:
            raise InvalidRequest(
                f"Invalid size '{size}': width and height must be multiples of {SIZE_MULTIPLE} "
                f"between {MIN_SIDE} and {MAX_SIDE}.",
                param="size",
            )
    return width, height


def png_metadata(request: ImageRequest, seed: int, model: str) -> dict[str, str]:
    size = f"{request.width}x{request.height}"
    parameters = request.prompt
    if request.negative_prompt:
        parameters += f"\nNegative prompt: {request.negative_prompt}"
    parameters += (
        f"\nSteps: {request.steps}, CFG scale: {request.cfg_scale}, Seed: {seed}, "
        f"Size: {size}, Model: {model}"
    )
    return {
        "parameters": parameters,
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "steps": str(request.steps),
        "cfg_scale": str(request.cfg_scale),
        "seed": str(seed),
        "size": size,
        "model": model,
        "Software": "Hearth",
    }


class ImageModel:
    """A loaded diffusers pipeline. Use only from its worker thread."""

    def __init__(self, pipeline, name: str) -> None:
        self._pipeline = pipeline
        self.name = name
        self._accepts = set(inspect.signature(pipeline.__call__).parameters)
        self._multiple = max(SIZE_MULTIPLE, int(getattr(pipeline, "vae_scale_factor", 8) or 8))

    def generate(self, request: ImageRequest) -> list[GeneratedImage]:
        import torch
        from PIL.PngImagePlugin import PngInfo

        if request.width % self._multiple or request.height % self._multiple:
            raise InvalidRequest(
                f"This pipeline needs width and height in multiples of {self._multiple}.", param="size"
            )
        if request.negative_prompt and "negative_prompt" not in self._accepts:
            raise InvalidRequest(
                f"The image model {self.name} does not take a negative prompt.", param="negative_prompt"
            )
        base_seed = request.seed if request.seed is not None else secrets.randbelow(SEED_RANGE)
        images = []
        for index in range(request.n):
            seed = (base_seed + index) % SEED_RANGE
            arguments = {
                "prompt": request.prompt,
                "width": request.width,
                "height": request.height,
                "num_inference_steps": request.steps,
                "guidance_scale": request.cfg_scale,
                "generator": torch.Generator("cpu").manual_seed(seed),
                "negative_prompt": request.negative_prompt or None,
                "num_images_per_prompt": 1,
                "output_type": "pil",
            }
            arguments = {k: v for k, v in arguments.items() if k in self._accepts}
            with torch.inference_mode():
                image = self._pipeline(**arguments).images[0]
            info = PngInfo()
            for key, value in png_metadata(request, seed, self.name).items():
                info.add_itxt(key, value)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", pnginfo=info)
            images.append(GeneratedImage(buffer.getvalue(), seed))
        return images


def load_image_model(folder: Path, *, name: str, device: str, threads: int) -> ImageModel:
    """Runs on the model's worker thread: the heavy imports happen here."""
    if not (folder / "model_index.json").is_file():
        raise NotFound(
            f"The image model folder {folder} is not a diffusers pipeline (it has no model_index.json).",
            param="model",
        )
    prepare_openmp()
    import_torch(threads)
    from diffusers import DiffusionPipeline
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()
    pipeline = DiffusionPipeline.from_pretrained(str(folder), local_files_only=True)
    pipeline = pipeline.to(device)
    pipeline.set_progress_bar_config(disable=True)
    return ImageModel(pipeline, name)
