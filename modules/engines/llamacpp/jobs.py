"""What the scheduler knows about one generation while it runs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..base import GenerationRequest, TokenLogprob, TopLogprob
from ..crossthread import Channel
from ..text_assembler import TextAssembler
from .drafting import PromptLookup
from .media import MediaTokens
from .sampler import SequenceSampler


@dataclass(frozen=True)
class Probe:
    """Instead of generating, report the most likely next tokens (internal/logits)."""

    top_n: int
    use_samplers: bool


@dataclass(eq=False)
class Job:
    request: GenerationRequest
    prompt: list[int]
    channel: Channel
    limit: int  # most tokens this job may generate
    echo_text: str | None = None  # text to emit before the first generated token
    probe: Probe | None = None
    submitted: float = field(default_factory=time.monotonic)
    deadline: float | None = None
    cancelled: bool = False  # set from any thread; read by the scheduler between steps
    adapters: tuple = ()  # the LoRA adapters it runs under (adapters.py: an AdapterKey)

    # Scheduler state
    seq_id: int = -1
    sampler: SequenceSampler | None = None
    assembler: TextAssembler | None = None
    prefilled: int = 0  # prompt tokens whose KV is in the cache
    reused: int = 0  # of those, taken over from the cache instead of evaluated
    next_token: int | None = None  # sampled, to be fed to the model in the next step
    lookup: PromptLookup | None = None  # drafts this job's next tokens (drafting.py)
    media: MediaTokens | None = None  # a prompt with images: its chunks (media.py)
    generated: int = 0
    echo_logprobs: list[TokenLogprob] = field(default_factory=list)
    last_logprobs: np.ndarray | None = None  # log-softmax of the previous chunk's last row
    started_at: float | None = None  # when a slot took the job
    first_token_at: float | None = None

    @property
    def id(self) -> str:
        return self.request.request_id

    @property
    def params(self):
        return self.request.params

    @property
    def in_prefill(self) -> bool:
        return self.prefilled < len(self.prompt)

    @property
    def wants_logprobs(self) -> bool:
        return self.params.logprobs is not None

    @property
    def wants_echo_logprobs(self) -> bool:
        return self.request.echo and self.wants_logprobs


def probe_entries(top: tuple[TopLogprob, ...]) -> tuple[TokenLogprob, ...]:
    """A probe answers with one pseudo-token whose alternatives are the result."""
    return (TokenLogprob(token="", bytes=b"", logprob=None, top=top),)
