"""Upstreams, the models they serve, and which one a request goes to.

An `Upstream` is one server; a `Member` is one model on one upstream, with its own count of
requests in flight and its capacity (the requests it generates at once: its slots). The
members that serve one model form its pool, and `choose` picks one for each request:

- Affinity first. Each request has a key: its conversation (`history_id`, the Responses
  chain, the client's `prompt_cache_key`, the UI's chat) or, failing that, a hash of the
  prompt's first characters. Members are ranked for the key by weighted rendezvous hashing
  (capacity is the weight), the same ranking in every worker process and after restarts,
  and the request goes to the first member in that order with a free slot: the turns of a
  conversation meet the prompt cache of the turns before, and an upstream that leaves or
  comes back moves only its own share of the conversations.
- Load next. When every member is full, the least loaded one by requests in flight per
  slot takes it (the upstream queues it), whatever the key.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from .config import UpstreamConfig
from .dialects import Dialect, Listing, ModelDetails
from .http import Endpoint, TlsOptions

UNKNOWN, UP, EJECTED = "unknown", "up", "ejected"
PREFIX_CHARACTERS = 512  # of the prompt, hashed when a request has no affinity key


class Upstream:
    """One upstream server: its address, what it serves, and its health."""

    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        self.name = config.name
        self.endpoint = Endpoint(
            config.url, config.key, tls=TlsOptions(verify=config.tls_verify, ca_file=config.ca_file)
        )
        self.dialect: Dialect | None = None
        self.state = UNKNOWN
        self.failures = 0  # consecutive failed checks or requests
        self.last_seen = 0.0  # when it last sent Hearth something (time.monotonic())
        self.last_error = ""
        self.members: dict[str, Member] = {}  # by the name Hearth offers
        self.lock = threading.Lock()

    @property
    def up(self) -> bool:
        return self.state == UP

    def offered(self, listings: Iterable[Listing]) -> dict[str, Listing]:
        """The name Hearth offers -> the model as this upstream lists it."""
        wanted = self.config.models
        out = {}
        for listing in listings:
            if wanted is None:
                out.setdefault(offered_name(listing.id), listing)
            elif listing.id in wanted:
                out[wanted[listing.id]] = listing
        return out

    def in_flight(self) -> int:
        return sum(member.in_flight for member in self.members.values())


def offered_name(upstream_id: str) -> str:
    """llama-server lists a model by its path unless started with --alias: Hearth offers it
    by its file name without `.gguf`, as it names local models, so that boxes which keep the
    same file in different folders form one pool."""
    if upstream_id.lower().endswith(".gguf"):
        return upstream_id.replace("\\", "/").rsplit("/", 1)[-1][: -len(".gguf")]
    return upstream_id


@dataclass(eq=False)
class Member:
    """One model on one upstream."""

    upstream: Upstream
    model: str  # the id the upstream knows it by
    listing: Listing
    details: ModelDetails | None = None  # fetched on first use
    in_flight: int = 0
    running: set = field(default_factory=set)  # generations to abort when the upstream is ejected

    @property
    def capacity(self) -> int:
        config = self.upstream.config
        if config.capacity:
            return config.capacity
        if self.details is not None and self.details.slots:
            return self.details.slots
        return self.upstream.dialect.default_capacity if self.upstream.dialect else 1

    @property
    def up(self) -> bool:
        return self.upstream.up

    def acquire(self, generation: object) -> None:
        with self.upstream.lock:
            self.in_flight += 1
            self.running.add(generation)

    def release(self, generation: object) -> None:
        with self.upstream.lock:
            if generation in self.running:
                self.running.discard(generation)
                self.in_flight -= 1


def affinity_key(explicit: str | None, prompt: str | list[int]) -> str:
    if explicit:
        return "k:" + explicit
    if isinstance(prompt, str):
        return "p:" + prompt[:PREFIX_CHARACTERS]
    return "t:" + ",".join(map(str, prompt[: PREFIX_CHARACTERS // 4]))


def _rank(key: str, member: Member) -> float:
    """Weighted rendezvous score: higher wins; a member's share grows with its capacity."""
    digest = hashlib.blake2b(f"{key}\x00{member.upstream.name}".encode(), digest_size=8).digest()
    unit = (int.from_bytes(digest, "big") + 1) / (2**64 + 1)  # in (0, 1)
    return -member.capacity / math.log(unit)


def ranked(key: str, members: Iterable[Member]) -> list[Member]:
    """The members in the order a request with `key` tries them (when they have room)."""
    return sorted(members, key=lambda m: _rank(key, m), reverse=True)


def choose(members: Iterable[Member], key: str, exclude: Iterable[Member] = ()) -> Member | None:
    """The member a request with `key` goes to, or None when no upstream of the pool is up."""
    skipped = set(map(id, exclude))
    candidates = [m for m in members if m.up and id(m) not in skipped]
    if not candidates:
        return None
    for member in ranked(key, candidates):
        if member.in_flight < member.capacity:
            return member
    return min(candidates, key=lambda m: ((m.in_flight + 1) / m.capacity, random.random()))
