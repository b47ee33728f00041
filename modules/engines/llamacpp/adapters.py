"""LoRA adapters (GGUF) on a loaded model, and which of them a sequence runs under.

A model has a list of active adapters, each with a scale: text-generation-webui's
`/v1/internal/lora/load` sets the list, `unload` empties it, and llama-server's request
field `lora: [{"id": i, "scale": s}]` picks scales per request (an adapter it does not
list gets scale 0; `id` is the adapter's place in the list). A request that names none
runs under the list's own scales.

llama.cpp applies adapters to a whole context (`llama_set_adapters_lora`), never to one
sequence. So every job carries an adapter key, the adapters it runs under with their
nonzero scales; a decode step serves one key at a time (steps.py), and cached KV cells
are reused only under the key that computed them (placement.py, prompt_cache.py).

An adapter file is loaded once per model and kept until the model is freed (llama.cpp
frees a model's adapters with it), so a key stays valid for as long as a job holds it,
and loading the same file again costs nothing. Loading happens on the scheduler's thread.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...errors import InvalidRequest

AdapterKey = tuple[tuple[int, float], ...]  # (serial, scale) of each adapter with a nonzero scale


@dataclass(frozen=True)
class ActiveAdapter:
    """An adapter in a model's list. `id` is its place in the list (what requests name)."""

    id: int
    name: str
    scale: float
    serial: int  # unique for the model's lifetime: what keys hold


def adapter_key(adapters: Sequence[ActiveAdapter], request: Sequence[tuple[int, float]] | None) -> AdapterKey:
    """The key of a request: its own scales by id (unlisted adapters get 0, as in
    llama-server), or without a `lora` field, the list's scales."""
    if request is None or not request:
        scales = {adapter.id: adapter.scale for adapter in adapters}
    else:
        scales = {}
        for index, (adapter_id, scale) in enumerate(request):
            if not 0 <= adapter_id < len(adapters):
                known = ", ".join(f"{a.id} ({a.name})" for a in adapters) or "none are loaded"
                raise InvalidRequest(
                    f"There is no LoRA adapter with id {adapter_id} on this model ({known}).",
                    param=f"lora.{index}.id",
                )
            scales[adapter_id] = scale
    return tuple(sorted((a.serial, float(scales[a.id])) for a in adapters if scales.get(a.id)))


class AdapterLibrary:
    """The adapters of one model and the ones its context runs under now."""

    def __init__(self, lib, model_ptr: int) -> None:
        self._lib = lib
        self._model_ptr = model_ptr
        self._files: dict[Path, tuple[int, int]] = {}  # file -> (serial, adapter pointer)
        self._pointers: dict[int, int] = {}  # serial -> adapter pointer
        self._current: AdapterKey = ()  # what the context runs under
        self.active: tuple[ActiveAdapter, ...] = ()

    def set_active(self, entries: Sequence[tuple[str, Path, float]]) -> tuple[ActiveAdapter, ...]:
        """Make these (name, file, scale) the model's list, loading files not loaded yet."""
        active = []
        for index, (name, path, scale) in enumerate(entries):
            serial = self._load(name, path)
            active.append(ActiveAdapter(index, name, float(scale), serial))
        self.active = tuple(active)
        return self.active

    def _load(self, name: str, path: Path) -> int:
        resolved = path.resolve()
        if resolved not in self._files:
            pointer = self._lib.llama_adapter_lora_init(self._model_ptr, str(resolved).encode())
            if not pointer:
                raise InvalidRequest(
                    f"The LoRA adapter {name!r} could not be loaded onto this model (llama.cpp "
                    "refused it: not a GGUF LoRA adapter, or made for another model).",
                    param="lora_names",
                )
            serial = len(self._pointers) + 1
            self._files[resolved] = (serial, pointer)
            self._pointers[serial] = pointer
        return self._files[resolved][0]

    def apply(self, ctx: int, key: AdapterKey) -> None:
        """Run the context under `key` from the next decode on (llama.cpp then rebuilds its
        compute graph: a few milliseconds, paid only when the key changes)."""
        if key == self._current:
            return
        n = len(key)
        pointers = (self._lib.llama_adapter_lora_p_ctypes * max(1, n))(*(self._pointers[s] for s, _ in key))
        scales = (ctypes.c_float * max(1, n))(*(scale for _, scale in key))
        self._lib.llama_set_adapters_lora(ctx, pointers if n else None, n, scales if n else None)
        self._current = key
