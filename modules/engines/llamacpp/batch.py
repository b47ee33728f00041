"""A llama_batch whose arrays are numpy buffers owned by Python.

Filling a batch token by token through ctypes costs microseconds per field; writing
numpy slices costs almost nothing, which matters for long prompts evaluated in chunks.
Every token belongs to exactly one sequence, so each `seq_id[i]` points at element i of
one flat int32 array.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import numpy as np

from .library import llama_library


class Batch:
    def __init__(self, capacity: int) -> None:
        lib = llama_library()
        self.capacity = capacity
        self.tokens = np.zeros(capacity, dtype=np.int32)
        self.positions = np.zeros(capacity, dtype=np.int32)
        self.n_seq_id = np.ones(capacity, dtype=np.int32)
        self.seq_ids = np.zeros(capacity, dtype=np.int32)
        self.logits = np.zeros(capacity, dtype=np.int8)
        int32_p = ctypes.POINTER(ctypes.c_int32)
        self._seq_id_ptrs = (int32_p * capacity)()
        base = self.seq_ids.ctypes.data
        for i in range(capacity):
            self._seq_id_ptrs[i] = ctypes.cast(base + 4 * i, int32_p)
        self.struct = lib.llama_batch()
        self.struct.token = self.tokens.ctypes.data_as(int32_p)
        self.struct.embd = None
        self.struct.pos = self.positions.ctypes.data_as(int32_p)
        self.struct.n_seq_id = self.n_seq_id.ctypes.data_as(int32_p)
        self.struct.seq_id = self._seq_id_ptrs
        self.struct.logits = self.logits.ctypes.data_as(ctypes.POINTER(ctypes.c_int8))
        self.size = 0

    @property
    def room(self) -> int:
        return self.capacity - self.size

    def clear(self) -> None:
        self.size = 0

    def add(self, tokens: Sequence[int], first_position: int, seq_id: int, outputs: str = "last") -> int:
        """Append tokens of one sequence; return the batch index of the first one.

        outputs: "last" asks for logits of the last token only, "all" for every token,
        "none" for none.
        """
        start, n = self.size, len(tokens)
        end = start + n
        self.tokens[start:end] = tokens
        self.positions[start:end] = np.arange(first_position, first_position + n, dtype=np.int32)
        self.seq_ids[start:end] = seq_id
        self.logits[start:end] = 1 if outputs == "all" else 0
        if outputs == "last" and n:
            self.logits[end - 1] = 1
        self.size = end
        return start

    def as_struct(self):
        self.struct.n_tokens = self.size
        return self.struct
