"""Images through llama.cpp's multimodal library (libmtmd) and a model's projector (mmproj).

A request with images is cut into chunks by `mtmd_tokenize_from_parts`: text chunks (token
ids) and image chunks (the projector's tokens for one image: `n_tokens` embeddings that take
`n_pos` positions). The scheduler keeps one token list per prompt, as for text: an image's
positions hold placeholder ids, negative (no real token has them) and derived from a hash
of its pixels, so that the prefix cache matches the same image in the next turn of a chat
and never a different one.

All work with the projector's context runs on the projector's own thread (`Projector`):
cutting prompts into chunks, and encoding images (the vision encoder's forward pass, the
expensive part). The scheduler thread meanwhile keeps generating for other sequences; it
only decodes an encoded image's embeddings into its sequence, in a decode of its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import EngineFailure, HearthError, InvalidRequest, NotInstalled
from ..base import ImageInput
from ..crossthread import Inbox, start_thread

log = logging.getLogger(__name__)

CHUNK_TEXT, CHUNK_IMAGE = 0, 1
ENCODER_NICENESS = 10  # the projector thread's priority below the process's (os.setpriority)


def placeholder(digest: bytes) -> int:
    """The negative id an image's positions hold in a token list."""
    return -1 - int.from_bytes(digest[:4], "little") % (2**31 - 1)


@dataclass(eq=False)
class ImageChunk:
    """One image of a prompt, at `position` in its token list."""

    position: int
    n_pos: int
    n_tokens: int
    chunk: int  # the mtmd_input_chunk (owned by the prompt's chunk list)
    embeddings: np.ndarray | None = None  # float32, n_tokens x n_embd, once encoded
    failed: HearthError | None = None
    requested: bool = False


@dataclass(eq=False)
class MediaTokens:
    """A prompt cut into chunks: its token list and its images by position."""

    tokens: list[int]
    images: dict[int, ImageChunk] = field(default_factory=dict)
    chunks: int = 0  # the mtmd_input_chunks; freed with `free`

    def image_at(self, position: int) -> ImageChunk | None:
        return self.images.get(position)

    def text_before_next_image(self, position: int, end: int) -> int:
        """How many tokens from `position` are text, up to the next image (or `end`)."""
        later = [p for p in self.images if p >= position]
        return (min(later) if later else end) - position

    def start_of_image_at(self, position: int) -> int:
        """`position`, or the start of the image it falls inside of: a cache never holds
        part of an image."""
        for start, image in self.images.items():
            if start < position < start + image.n_pos:
                return start
        return position


class Projector:
    """A model's projector, and the OS thread that does all work with it."""

    def __init__(self, path: Path, model_ptr: int, n_embd: int, threads: int) -> None:
        try:
            import llama_cpp.mtmd_cpp as mtmd
        except (ImportError, OSError):  # FileNotFoundError: a build without the library
            raise NotInstalled(
                "This llama-cpp-python was built without its multimodal library (libmtmd), so "
                'models cannot read images. Rebuild it: CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install '
                "--no-cache-dir --force-reinstall llama-cpp-python (see the README)."
            ) from None
        from llama_cpp import _logger

        self._mtmd = mtmd
        # the library logs every image it encodes: through llama-cpp-python's logger, which
        # prints only when Hearth runs --verbose (library.set_library_logging)
        mtmd.mtmd_log_set(_logger.llama_log_callback, None)
        mtmd.mtmd_helper_log_set(_logger.llama_log_callback, None)
        self.n_embd = n_embd
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = False
        params.n_threads = threads
        params.print_timings = False
        params.warmup = False
        self._ctx = mtmd.mtmd_init_from_file(str(path).encode(), model_ptr, params)
        if not self._ctx:
            raise EngineFailure(f"The projector {path.name} does not fit this model (or is not a projector).")
        if not mtmd.mtmd_support_vision(self._ctx):
            self._free_ctx()
            raise InvalidRequest(f"The projector {path.name} reads no images.", param="mmproj")
        if mtmd.mtmd_decode_use_mrope(self._ctx):
            self._free_ctx()
            raise InvalidRequest(
                f"The projector {path.name} uses M-RoPE (Qwen-VL), which Hearth does not support yet.",
                param="mmproj",
            )
        self._inbox = Inbox()
        self._closed = False
        self.threads = threads
        self.encoding = False  # an image is being encoded now (the scheduler reads it)
        start_thread(self._run, name=f"mtmd:{path.name}")

    @property
    def ctx(self) -> int:
        return self._ctx

    # --- Any thread: queue work ----------------------------------------------------------

    def tokenize(self, parts: Sequence[str | ImageInput], done: Callable[[MediaTokens | HearthError], None]):
        self._inbox.put(("tokenize", parts, done))

    def encode(self, image: ImageChunk, done: Callable[[], None]) -> None:
        image.requested = True
        self._inbox.put(("encode", image, done))

    def close(self) -> None:
        """Stop the thread and free the context (after the work already queued)."""
        finished = Inbox()
        self._inbox.put(("close", None, finished.put))
        finished.get()

    # --- The projector's thread -------------------------------------------------------------

    def _run(self) -> None:
        # Encoding an image takes seconds on a CPU; generation must not wait for it. A lower
        # priority for this thread lets the scheduler's thread (and the streams it serves)
        # take the cores first; the image is encoded in what is left.
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ENCODER_NICENESS)
        while True:
            kind, item, done = self._inbox.get()
            if kind == "close":
                self._free_ctx()
                done(True)
                return
            if kind == "free":
                self._mtmd.mtmd_input_chunks_free(item.chunks)
                continue
            if kind == "tokenize":
                try:
                    result = self._tokenize(item)
                except HearthError as exc:
                    result = exc
                except Exception as exc:  # a library failure must not leave the request waiting
                    log.exception("cutting a prompt with images failed")
                    result = EngineFailure(f"The images could not be read: {exc}")
                done(result)
            else:
                self.encoding = True
                try:
                    item.embeddings = self._encode(item)
                except HearthError as exc:
                    item.failed = exc
                finally:
                    self.encoding = False
                done()

    def _tokenize(self, parts: Sequence[str | ImageInput]) -> MediaTokens:
        mtmd = self._mtmd
        keep: list = []  # ctypes objects that must live until the call returns
        bitmaps, pointers = [], []
        try:
            for part in parts:
                entry = mtmd.mtmd_input_part()
                if isinstance(part, str):
                    data = part.encode()
                    text = mtmd.mtmd_input_text()
                    text.text, text.text_len = data, len(data)
                    text.add_special, text.parse_special = True, True
                    entry.text, entry.bitmap = ctypes.pointer(text), None
                    keep += [data, text]
                else:
                    pixels = np.frombuffer(part.rgb, dtype=np.uint8)
                    bitmap = mtmd.mtmd_bitmap_init(
                        part.width, part.height, pixels.ctypes.data_as(ctypes.POINTER(ctypes.c_ubyte))
                    )
                    bitmaps.append(bitmap)
                    entry.text, entry.bitmap = None, bitmap
                    keep.append(pixels)
                keep.append(entry)
                pointers.append(ctypes.pointer(entry))
            array = (ctypes.POINTER(mtmd.mtmd_input_part) * len(pointers))(*pointers)
            chunks = mtmd.mtmd_input_chunks_init()
            code = mtmd.mtmd_tokenize_from_parts(self._ctx, chunks, array, len(pointers), True)
        finally:
            for bitmap in bitmaps:  # the chunks hold what they need of them
                mtmd.mtmd_bitmap_free(bitmap)
        if code != 0:
            mtmd.mtmd_input_chunks_free(chunks)
            raise InvalidRequest(f"The projector could not read these images (code {code}).")
        return self._media_tokens(chunks, parts)

    def _media_tokens(self, chunks: int, parts: Sequence[str | ImageInput]) -> MediaTokens:
        mtmd = self._mtmd
        digests = iter(part.digest for part in parts if not isinstance(part, str))
        out = MediaTokens(tokens=[], chunks=chunks)
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            if mtmd.mtmd_input_chunk_get_type(chunk) == CHUNK_TEXT:
                count = ctypes.c_size_t()
                ids = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
                out.tokens.extend(ids[j] for j in range(count.value))
                continue
            n_pos = mtmd.mtmd_input_chunk_get_n_pos(chunk)
            image = ImageChunk(len(out.tokens), n_pos, mtmd.mtmd_input_chunk_get_n_tokens(chunk), chunk)
            out.images[image.position] = image
            out.tokens.extend([placeholder(next(digests))] * n_pos)
        return out

    def _encode(self, image: ImageChunk) -> np.ndarray:
        mtmd = self._mtmd
        if mtmd.mtmd_encode_chunk(self._ctx, image.chunk) != 0:
            raise EngineFailure("The projector failed to encode an image.")
        output = mtmd.mtmd_get_output_embd(self._ctx)
        # the library reuses its buffer for the next image: copy it out now
        return np.ctypeslib.as_array(output, shape=(image.n_tokens * self.n_embd,)).copy()

    def decode(self, lctx: int, image: ImageChunk, seq_id: int, n_batch: int) -> int:
        """Scheduler thread: decode an encoded image into `seq_id` at its position; 0 if done."""
        import llama_cpp

        mtmd = self._mtmd
        new_position = llama_cpp.llama_pos()
        assert image.embeddings is not None
        return mtmd.mtmd_helper_decode_image_chunk(
            self._ctx,
            lctx,
            image.chunk,
            image.embeddings.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            image.position,
            seq_id,
            n_batch,
            ctypes.byref(new_position),
            mtmd.mtmd_helper_post_decode_callback(),
            None,
        )

    def free_tokens(self, tokens: MediaTokens) -> None:
        """Any thread: free a prompt's chunks, after any encode of them still queued."""
        if tokens.chunks:
            chunks, tokens.chunks = tokens.chunks, 0
            self._inbox.put(("free", MediaTokens([], chunks=chunks), None))

    def _free_ctx(self) -> None:
        if self._ctx:
            self._mtmd.mtmd_free(self._ctx)
            self._ctx = None
