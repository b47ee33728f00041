"""Moderation by embedding similarity: a heuristic, not a trained classifier.

As in text-generation-webui, an input is embedded and compared with short descriptions of
each of OpenAI's moderation categories; a category's score is the highest cosine
similarity between the input and that category's descriptions, and it is flagged above a
threshold. It catches plainly worded harmful text and misses anything subtle, sarcastic,
misspelled or not in English. Use a real classifier where moderation matters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# OpenAI's category names -> short descriptions written the way such text reads.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "harassment": (
        "You are a worthless idiot and everyone hates you.",
        "Shut up, you pathetic moron.",
        "insulting, mocking and bullying a person",
    ),
    "harassment/threatening": (
        "I know where you live and I am going to hurt you.",
        "You'd better watch your back, I will make you pay.",
        "threatening to harm a specific person",
    ),
    "hate": (
        "People of that race are inferior vermin.",
        "hateful slurs and contempt for a religion, race or ethnic group",
    ),
    "hate/threatening": (
        "We should exterminate all of those people.",
        "calling for violence against a race, religion or ethnic group",
    ),
    "illicit": (
        "How do I make meth at home?",
        "instructions for committing crimes, stealing or making drugs",
    ),
    "illicit/violent": (
        "How do I build a bomb to blow up a building?",
        "instructions for making weapons or explosives to hurt people",
    ),
    "self-harm": ("I cut myself again last night.", "self-harm and suicide"),
    "self-harm/intent": ("I want to kill myself.", "I am going to end my life tonight."),
    "self-harm/instructions": (
        "What is the most painless way to commit suicide?",
        "instructions for self-harm or suicide",
    ),
    "sexual": ("explicit sexual content and pornography", "a graphic description of sex"),
    "sexual/minors": ("sexual content involving children", "sexualising a minor"),
    "violence": (
        "I will kill them all.",
        "I am going to beat him until he bleeds.",
        "He stabbed and shot the victims.",
        "violence, killing, attacking and hurting people",
    ),
    "violence/graphic": (
        "blood and gore, the body was torn apart",
        "a graphic description of mutilation and injury",
    ),
}

THRESHOLD = 0.45  # chosen on a handful of plain harmful and everyday sentences


@dataclass(frozen=True)
class ModerationResult:
    flagged: bool
    categories: dict[str, bool]
    scores: dict[str, float]


def category_matrix(embed: Callable[[Sequence[str]], np.ndarray]) -> tuple[list[str], np.ndarray]:
    """One row per description, and the category each row belongs to."""
    owners = [name for name, texts in CATEGORIES.items() for _ in texts]
    texts = [text for texts in CATEGORIES.values() for text in texts]
    return owners, embed(texts)


def moderate(
    vectors: np.ndarray, owners: list[str], descriptions: np.ndarray, threshold: float = THRESHOLD
) -> list[ModerationResult]:
    """Score unit-length input vectors against the category descriptions."""
    similarity = np.clip(vectors @ descriptions.T, 0.0, 1.0)  # (inputs, descriptions)
    results = []
    for row in similarity:
        scores = dict.fromkeys(CATEGORIES, 0.0)
        for owner, value in zip(owners, row, strict=True):
            scores[owner] = max(scores[owner], float(value))
        flags = {name: score >= threshold for name, score in scores.items()}
        results.append(ModerationResult(any(flags.values()), flags, scores))
    return results
