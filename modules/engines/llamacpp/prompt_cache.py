"""Recent prompt states kept in host memory, so a conversation can come back to its cache.

A slot's KV cache is lost when another request takes the slot. Before that happens the
scheduler saves the slot's state here (a copy of its KV cells, `llama_state_seq_get_data`)
when it is worth it; a later request whose prompt shares a long prefix with a saved state
restores it (`llama_state_seq_set_data`) instead of evaluating that prefix again.
Entries are kept most recently used first, within a byte budget. Each entry carries the
key of the LoRA adapters its cells were computed under, and only serves that key. Use on
the scheduler's thread only.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .library import llama_library

MIN_TOKENS = 64  # shorter prompts are cheaper to evaluate again than to keep


@dataclass
class SavedPrompt:
    tokens: list[int]
    data: np.ndarray  # the state's bytes
    adapters: tuple = ()


def as_bytes(data: np.ndarray):
    """A numpy byte array as the `uint8_t *` llama.cpp's state calls take."""
    return data.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    left, right = np.asarray(a[:n]), np.asarray(b[:n])
    diff = np.flatnonzero(left != right)
    return int(diff[0]) if diff.size else n


class PromptCache:
    def __init__(self, budget_bytes: int) -> None:
        self._budget = budget_bytes
        self._entries: OrderedDict[int, SavedPrompt] = OrderedDict()  # most recent last
        self._next_key = 0
        self._lib = llama_library()

    @property
    def size_bytes(self) -> int:
        return sum(len(entry.data) for entry in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def best(self, tokens: list[int], adapters: tuple = ()) -> tuple[int | None, int]:
        """The saved entry (under these adapters) sharing the longest prefix with `tokens`,
        and that length."""
        best_key, best_shared = None, 0
        for key, entry in self._entries.items():
            if entry.adapters != adapters:
                continue
            shared = common_prefix(entry.tokens, tokens)
            if shared > best_shared:
                best_key, best_shared = key, shared
        return best_key, best_shared

    def save(self, ctx: int, seq_id: int, tokens: list[int], adapters: tuple = ()) -> None:
        """Keep the state of `seq_id`, whose cache holds exactly `tokens` (computed under
        `adapters`)."""
        if len(tokens) < MIN_TOKENS or self._budget <= 0:
            return
        for key, entry in list(self._entries.items()):
            if entry.adapters != adapters:
                continue
            shared = common_prefix(entry.tokens, tokens)
            if shared == len(tokens):  # already covered by a longer or equal entry
                self._entries.move_to_end(key)
                return
            if shared == len(entry.tokens):  # the new state extends this one
                del self._entries[key]
        size = self._lib.llama_state_seq_get_size(ctx, seq_id)
        if size == 0 or size > self._budget:
            return
        data = np.empty(size, dtype=np.uint8)  # not zeroed first: llama.cpp writes every byte
        if self._lib.llama_state_seq_get_data(ctx, as_bytes(data), size, seq_id) != size:
            return
        self._entries[self._next_key] = SavedPrompt(list(tokens), data, adapters)
        self._next_key += 1
        while self.size_bytes > self._budget:
            self._entries.popitem(last=False)

    def restore(self, ctx: int, key: int, seq_id: int) -> list[int] | None:
        """Load a saved state into `seq_id` (which must be empty); its tokens, or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._lib.llama_state_seq_set_data(ctx, as_bytes(entry.data), len(entry.data), seq_id) == 0:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return list(entry.tokens)
