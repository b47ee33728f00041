"""Prompt-lookup drafting: guessing a sequence's next tokens from its own earlier tokens.

Text that repeats its input (rewriting a paragraph, editing code, quoting a document) is
full of n-grams that appeared before. When the last few tokens of a sequence occurred
earlier in it, the tokens that followed them then are a cheap guess (a draft) of what
comes next. The scheduler feeds the draft to the model with the sequence's next token in
one step, and samples every position with the sequence's own sampler: while the sampled
token equals the drafted one, it is kept, so one step can yield several tokens. The tokens
are exactly those sampled without drafting (one sample per token, from the same chain);
only the number of steps changes. No second model is needed.

Checking k drafted tokens costs more than one plain step (../shared/FACTS.md: 4 tokens
~2.2 single steps, 8 ~2.9), so the draft length adapts to what was accepted, and a
sequence whose draft fails stops drafting for a while, longer after each failure. Drafting
by default (not asked for) trusts only matches of 3 tokens or more: on story text the
2-token matches cost a single stream ~10% (bench_engine.py: engine/raw 0.90 with them,
1.00 without), while text that repeats its input matches on longer runs anyway.
"""

from __future__ import annotations

NGRAMS = (4, 3, 2)  # the longest match first: longer contexts guess better
SURE_NGRAM = 3  # drafting on its own (not asked for) trusts only matches this long
MIN_DRAFT, MAX_DRAFT = 2, 16
LOOKBACK = 4096  # prompt tokens indexed: the end of a long prompt is where matches are likely
MISSES_BEFORE_PAUSE = 2
FIRST_PAUSE, LONGEST_PAUSE = 16, 512  # tokens generated without drafting after misses


class PromptLookup:
    """The drafter of one sequence. Use on the scheduler's thread only."""

    def __init__(self, prompt: list[int], max_draft: int = MAX_DRAFT, *, asked: bool = False) -> None:
        """`asked`: the request asked for drafting; else it drafts by default, on surer matches."""
        self._ngrams = NGRAMS if asked else tuple(n for n in NGRAMS if n >= SURE_NGRAM)
        self._tokens: list[int] = []
        self._index: dict[tuple[int, ...], int] = {}  # n-gram -> where it last ended
        self._max = max(0, max_draft)
        self._length = min(MIN_DRAFT, self._max)  # grows only while drafts are accepted
        self._misses = 0
        self._pause = FIRST_PAUSE
        self._paused_until = 0
        self.drafted = 0
        self.accepted = 0
        for token in prompt[-LOOKBACK:]:
            self.append(token)

    def append(self, token: int) -> None:
        """One more token of the sequence (the prompt's, then each generated one)."""
        tokens = self._tokens
        for n in self._ngrams:  # index the n-grams that end just before this token
            if len(tokens) >= n:
                self._index[tuple(tokens[-n:])] = len(tokens)
        tokens.append(token)

    def propose(self, room: int) -> list[int]:
        """Up to `room` tokens that may follow the sequence, or [] (no match, or paused)."""
        tokens = self._tokens
        limit = min(room, self._length)
        if limit < MIN_DRAFT or len(tokens) < self._paused_until:
            return []
        for n in self._ngrams:
            if len(tokens) < n:
                continue
            start = self._index.get(tuple(tokens[-n:]))
            if start is not None and start < len(tokens):
                draft = tokens[start : start + limit]
                images = [i for i, token in enumerate(draft) if token < 0]  # placeholders
                return draft[: images[0]] if images else draft
        return []

    def record(self, drafted: int, accepted: int) -> None:
        """How a draft fared. A draft accepted whole doubles the next one; a miss starts over
        from the shortest, and misses in a row pause drafting, longer each time, so that text
        which does not repeat itself costs next to nothing."""
        self.drafted += drafted
        self.accepted += accepted
        if accepted == drafted:
            self._length = min(self._max, self._length * 2)
            self._misses = 0
            self._pause = FIRST_PAUSE
            return
        self._length = min(self._max, max(MIN_DRAFT, accepted))
        self._misses += 1
        if self._misses >= MISSES_BEFORE_PAUSE:
            self._paused_until = len(self._tokens) + self._pause
            self._pause = min(LONGEST_PAUSE, self._pause * 2)
            self._misses = 0
