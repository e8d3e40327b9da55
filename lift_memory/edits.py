"""What changed between two versions of a document, and which training examples re-memorizing it needs.

The texts are compared sentence by sentence (difflib on the sentence lists: fast at any length, and the unit
a fact lives in). An :class:`Edit` holds the character spans of the new text that differ from the old one; a
deletion leaves a zero-width span where the removed text was. Incremental re-memorizing trains on what touches
a changed span, plus a replay sample of the rest, so the adapter learns the new facts without forgetting the
old ones (the sample is drawn by a hash of the span and the seed: the same every epoch and every run).
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from lift_memory.config import TrainConfig
from lift_memory.segment import sentence_starts


@dataclass(frozen=True)
class Edit:
    """The changed character spans of the new text, and how much of it they cover."""

    changed: tuple[tuple[int, int], ...]
    n_chars: int
    replay: float = 0.1
    """Share of the untouched examples trained again."""
    seed: int = 0

    @property
    def fraction(self) -> float:
        """Share of the new text's characters in changed spans (0 for a pure deletion)."""
        return sum(end - start for start, end in self.changed) / max(self.n_chars, 1)

    def touches(self, start: int, end: int) -> bool:
        """Whether the span ``[start, end)`` overlaps a change (or borders a deletion)."""
        return any((start < c_end and end > c_start) or (c_start == c_end and start <= c_start <= end)
                   for c_start, c_end in self.changed)  # fmt: skip

    def keeps(self, start: int, end: int) -> bool:
        """Whether re-memorizing trains on an example spanning ``[start, end)``: it touches a change, or it is in
        the replay sample."""
        if self.touches(start, end):
            return True
        digest = hashlib.sha256(f"{self.seed}:{start}:{end}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.replay


def diff(old: str, new: str, *, replay: float = 0.1, seed: int = 0) -> Edit:
    """The :class:`Edit` that turns ``old`` into ``new``."""
    old_cuts, new_cuts = _cuts(old), _cuts(new)
    old_sents = [old[a:b] for a, b in itertools.pairwise(old_cuts)]
    new_sents = [new[a:b] for a, b in itertools.pairwise(new_cuts)]
    changed = []
    matcher = difflib.SequenceMatcher(None, old_sents, new_sents, autojunk=False)
    for op, _, _, j1, j2 in matcher.get_opcodes():
        if op != "equal":
            changed.append((new_cuts[j1], new_cuts[j2]))
    return Edit(tuple(changed), len(new), replay, seed)


def _cuts(text: str) -> list[int]:
    """Sentence boundaries: 0, each sentence start, and the end."""
    return sorted({0, *sentence_starts(text), len(text)})


class Mixture(NamedTuple):
    """What one training run reads (see :meth:`Engine.mixture`)."""

    examples: list
    """The segment and window examples."""
    source: Any
    """What the trainer reads: the examples, or the task mixture over them."""
    share: float
    """Share of the document's segment and window examples kept (1.0 without an edit)."""


MIN_STEPS = 10  # the smallest step budget of an incremental run


def scaled_budget(config: TrainConfig, share: float) -> TrainConfig:
    """``config`` with its step, token and time budgets scaled by ``share`` (an incremental run trains on that
    share of the examples, for about as many epochs as a full run)."""
    steps = (
        None if config.max_steps is None else min(config.max_steps, max(MIN_STEPS, math.ceil(config.max_steps * share)))
    )
    tokens = None if config.max_tokens is None else max(1, math.ceil(config.max_tokens * share))
    seconds = None if config.max_seconds is None else config.max_seconds * share
    return config.model_copy(update={"max_steps": steps, "max_tokens": tokens, "max_seconds": seconds})
