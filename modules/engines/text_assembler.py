"""Turning generated token bytes into safe text: whole characters, no stop strings.

Tokens are byte pieces: a character may be split across tokens, and a stop string may be
split across tokens too. The assembler releases text only when it is whole UTF-8 and can
no longer turn out to be the start of a stop string, and keeps each token's logprob
aligned with the text it produced (a token whose text is never released, because it was
part of a stop string, is dropped with it).
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import replace

from .base import TokenLogprob


class TextAssembler:
    def __init__(self, stop: Sequence[str] = ()) -> None:
        self._stops = tuple(s for s in stop if s)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held = ""  # decoded text that might still begin a stop string
        self._released = 0  # characters released so far
        self._pending: list[TokenLogprob] = []  # offsets are absolute character positions
        self.stopped = False
        self.stop_string: str | None = None

    def feed(self, piece: bytes, logprob: TokenLogprob | None = None) -> tuple[str, list[TokenLogprob]]:
        """Add one token's bytes; return the text (and logprobs) that became safe to show."""
        if self.stopped:
            return "", []
        if logprob is not None:
            self._pending.append(replace(logprob, offset=self._released + len(self._held)))
        self._held += self._decoder.decode(piece)
        return self._release()

    def finish(self) -> tuple[str, list[TokenLogprob]]:
        """The generation ended: release what was held (unless a stop string ended it)."""
        if self.stopped:
            return "", []
        self._held += self._decoder.decode(b"", final=True)
        text, self._held = self._held, ""
        return self._emit(text)

    def _release(self) -> tuple[str, list[TokenLogprob]]:
        cut = self._earliest_stop()
        if cut is not None:
            self.stopped = True
            text, self._held = self._held[:cut], ""
            return self._emit(text, drop_rest=True)
        keep = self._partial_stop_length()
        text = self._held[: len(self._held) - keep]
        self._held = self._held[len(self._held) - keep :]
        return self._emit(text)

    def _earliest_stop(self) -> int | None:
        best: int | None = None
        for stop in self._stops:
            index = self._held.find(stop)
            if index != -1 and (best is None or index < best):
                best, self.stop_string = index, stop
        return best

    def _partial_stop_length(self) -> int:
        """Length of the longest tail of the held text that begins some stop string."""
        longest = 0
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(self._held)), longest, -1):
                if self._held.endswith(stop[:k]):
                    longest = k
                    break
        return longest

    def _emit(self, text: str, drop_rest: bool = False) -> tuple[str, list[TokenLogprob]]:
        self._released += len(text)
        ready = [lp for lp in self._pending if lp.offset < self._released]
        self._pending = [] if drop_rest else [lp for lp in self._pending if lp.offset >= self._released]
        return text, ready
