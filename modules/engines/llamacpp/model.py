"""A loaded GGUF file: its weights, vocabulary and metadata.

Everything here only reads the model and its vocabulary, which llama.cpp never changes
after loading, so these calls are safe from any thread. Anything that touches a context
(evaluation, sampling, the KV cache) belongs to the scheduler's thread.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ...errors import EngineFailure, InvalidRequest, TooManyTokens
from .library import llama_library

CHUNK_CHARS = 8192  # longer texts are measured in pieces before a limit lets them through
BOUNDARY_MARGIN = 128  # tokens a cut between two pieces can add at most


def chunks(text: str) -> Iterator[str]:
    """`text` in pieces of about CHUNK_CHARS characters, cut after a newline or space when
    there is one near the end (so that cuts rarely split a token)."""
    start = 0
    while start < len(text):
        end = min(start + CHUNK_CHARS, len(text))
        if end < len(text):
            cut = max(text.rfind("\n", end - 512, end), text.rfind(" ", end - 512, end))
            end = cut + 1 if cut > start else end
        yield text[start:end]
        start = end


class LlamaModel:
    def __init__(
        self,
        path: Path,
        *,
        gpu_layers: int = 0,
        load_mode: int = -1,
        progress: Callable[[float], None] | None = None,
    ) -> None:
        """`load_mode`: llama.cpp's llama_load_mode (-1 auto: mmap where possible; 0 read the
        file into memory; 2 read and lock it in RAM; 3 map and lock)."""
        lib = llama_library()
        self._lib = lib
        params = lib.llama_model_default_params()
        params.n_gpu_layers = gpu_layers
        params.load_mode = load_mode
        self._progress_callback = None
        if progress is not None:

            def report(fraction: float, _user_data: object) -> bool:
                try:
                    progress(float(fraction))
                except Exception:  # a progress display must never break a load
                    pass
                return True

            # Kept on self: C holds only the pointer, and a collected callback segfaults.
            self._progress_callback = lib.llama_progress_callback(report)
            params.progress_callback = self._progress_callback
        self.path = path
        self.ptr = lib.llama_model_load_from_file(str(path).encode(), params)
        if not self.ptr:
            raise EngineFailure(f"llama.cpp could not load the model file {path.name}")
        self.vocab = lib.llama_model_get_vocab(self.ptr)
        self.n_vocab = lib.llama_vocab_n_tokens(self.vocab)
        self.n_embd = lib.llama_model_n_embd(self.ptr)
        self.n_ctx_train = lib.llama_model_n_ctx_train(self.ptr)
        self.n_head = lib.llama_model_n_head(self.ptr)
        self.bos = lib.llama_vocab_bos(self.vocab)
        self.eos = lib.llama_vocab_eos(self.vocab)
        self.add_bos = bool(lib.llama_vocab_get_add_bos(self.vocab))
        self.metadata = self._read_metadata()
        self._pieces: dict[int, bytes] = {}
        # SentencePiece vocabularies put a space before the text they tokenize; detokenizing
        # must take it away again for text to round-trip.
        probe = self.tokenize("a", add_bos=False)
        self._space_prefix = bool(probe) and self.piece(probe[0]).startswith(b" ")

    def _read_metadata(self) -> dict[str, str]:
        lib, out = self._lib, {}
        buf = ctypes.create_string_buffer(1 << 20)  # chat templates can be long
        for i in range(lib.llama_model_meta_count(self.ptr)):
            n = lib.llama_model_meta_key_by_index(self.ptr, i, buf, len(buf))
            if n < 0:
                continue
            key = buf.value.decode("utf-8", "replace")
            n = lib.llama_model_meta_val_str_by_index(self.ptr, i, buf, len(buf))
            if n < 0:
                continue
            out[key] = buf.raw[: min(n, len(buf) - 1)].decode("utf-8", "replace")
        return out

    @property
    def chat_template(self) -> str | None:
        return self.metadata.get("tokenizer.chat_template")

    def tokenize(
        self, text: str, *, add_bos: bool = True, special: bool = True, limit: int | None = None
    ) -> list[int]:
        """The tokens of `text`. With `limit`, TooManyTokens instead when it has more, found out
        without tokenizing much more than `limit` tokens' worth of text: llama.cpp's
        SentencePiece tokenizer takes time quadratic in the length of the runs it has to spell
        byte by byte (1 MB of NUL characters: a minute, 1 MB of U+202E: five)."""
        if limit is not None and len(text) > CHUNK_CHARS:
            self._check_within(text, limit, special)
        tokens = self._tokenize(text, add_bos, special)
        if limit is not None and len(tokens) > limit:
            raise TooManyTokens(len(tokens), limit)
        return tokens

    def _check_within(self, text: str, limit: int, special: bool) -> None:
        counted = 0
        for boundaries, chunk in enumerate(chunks(text)):
            counted += len(self._tokenize(chunk, False, special))
            # A cut can split a token, or add the space prefix: never more than the margin.
            at_least = counted - boundaries * BOUNDARY_MARGIN
            if at_least > limit:
                raise TooManyTokens(at_least, limit)

    def _tokenize(self, text: str, add_bos: bool, special: bool) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        tokens = (ctypes.c_int32 * capacity)()
        n = self._lib.llama_tokenize(
            self.vocab, data, len(data), tokens, capacity, add_bos and self.add_bos, special
        )
        if n < 0:  # cannot happen with one slot per byte plus specials, but be exact
            capacity = -n
            tokens = (ctypes.c_int32 * capacity)()
            n = self._lib.llama_tokenize(
                self.vocab, data, len(data), tokens, capacity, add_bos and self.add_bos, special
            )
        return list(tokens[:n])

    def piece(self, token: int) -> bytes:
        """The bytes one token contributes to generated text (special tokens render empty)."""
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        buf = ctypes.create_string_buffer(64)
        n = self._lib.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._lib.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        piece = buf.raw[:n]
        self._pieces[token] = piece
        return piece

    def token_text(self, token: int) -> bytes:
        """The token as text, special tokens included (for logprob listings)."""
        buf = ctypes.create_string_buffer(128)
        n = self._lib.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._lib.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
        return buf.raw[:n]

    def detokenize(self, tokens: Sequence[int], *, special: bool = False) -> str:
        self.check_tokens(tokens)
        if not tokens:
            return ""
        array = (ctypes.c_int32 * len(tokens))(*tokens)
        capacity = 16 * len(tokens) + 16
        buf = ctypes.create_string_buffer(capacity)
        n = self._lib.llama_detokenize(self.vocab, array, len(tokens), buf, capacity, True, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._lib.llama_detokenize(self.vocab, array, len(tokens), buf, -n, True, special)
        text = buf.raw[:n].decode("utf-8", "replace")
        return text[1:] if self._space_prefix and text.startswith(" ") else text

    def check_tokens(self, tokens: Sequence[int]) -> None:
        for token in tokens:
            if not isinstance(token, int) or isinstance(token, bool) or not 0 <= token < self.n_vocab:
                raise InvalidRequest(
                    f"Invalid token id {token!r}: this model's vocabulary has {self.n_vocab} tokens.",
                    param="prompt",
                )

    def is_end_of_generation(self, token: int) -> bool:
        return bool(self._lib.llama_vocab_is_eog(self.vocab, token))

    def close(self) -> None:
        if self.ptr:
            self._lib.llama_model_free(self.ptr)
            self.ptr = None
