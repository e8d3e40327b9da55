"""Frozen records passed between the stages of memorize and ask.

Plain dataclasses: no behaviour beyond conversion to JSON-ready dicts. Stages agree on these shapes and on
nothing else, so any stage can be replaced without touching its neighbours.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def _to_dict(record: Any) -> dict[str, Any]:
    return dataclasses.asdict(record)


@dataclass(frozen=True, slots=True)
class Segment:
    """A span of a tokenized document used as a language-modelling example.

    ``kind`` is ``"segment"`` for the long overlapping windows and ``"window"`` for the short windows that
    start at a sentence start. Token indices refer to the document's own tokenization for segments; a window
    is re-tokenized from its sentence start (as a prompt starting there would be), so only its character span
    is comparable across kinds.
    """

    kind: str
    token_ids: tuple[int, ...]
    char_start: int
    char_end: int
    token_start: int = -1
    token_end: int = -1


@dataclass(frozen=True, slots=True)
class SoftTargets:
    """A teacher's next-token distributions over an example's labelled tokens, cut to its top k."""

    ids: Any  # (n, k) long tensor: the k most likely next tokens at each of the n labelled positions
    logp: Any  # (n, k) float tensor: their log-probabilities, renormalized over the k


@dataclass(frozen=True, slots=True)
class TrainingExample:
    """One sequence to train on: loss on ``input_ids[loss_start:]`` (shifted), weighted by its ``task``.

    ``soft``, when set, replaces those tokens' targets by a teacher's distribution over its top-k next tokens
    at each of them (context distillation, :mod:`lift_memory.tasks.distill`): the loss there is KL(teacher ||
    model) instead of cross-entropy on the tokens themselves.
    """

    task: str
    input_ids: tuple[int, ...]
    loss_start: int = 0
    soft: SoftTargets | None = field(default=None, compare=False)

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True, slots=True)
class Task:
    """A synthesized training task: a prompt, its answer, and the evidence's character span in the document.

    ``kind`` is ``"recall"`` (a salient span masked), ``"order"`` (which passage comes first, what follows a
    passage) or ``"qa"`` (a question written by a generator).
    """

    kind: str
    prompt: str
    answer: str
    evidence_start: int
    evidence_end: int

    to_dict = _to_dict


@dataclass(frozen=True, slots=True)
class TrainStats:
    """What one training run did and why it stopped."""

    steps: int
    tokens: int
    seconds: float
    tokens_per_second: float
    final_loss: float
    stop_reason: str
    loss_by_task: dict[str, float] = field(default_factory=dict)
    examples_by_task: dict[str, int] = field(default_factory=dict)

    to_dict = _to_dict


@dataclass(frozen=True, slots=True)
class Snippet:
    """A piece of a stored document used as evidence, with where it comes from."""

    doc_id: str
    text: str
    char_start: int
    char_end: int
    chunk_id: str = ""
    score: float = 0.0
    scores: dict[str, float] = field(default_factory=dict)

    to_dict = _to_dict


@dataclass(frozen=True, slots=True)
class Usage:
    """What one call cost (``memorize``: the write that stored the memory; ``ask``: the answer)."""

    tokens_trained: int = 0
    """Tokens through the trainer (padded batches, every step)."""
    tokens_read: int = 0
    """Tokens the model read: the document (``memorize``), the prompt (``ask``)."""
    tokens_generated: int = 0
    seconds: float = 0.0
    """Wall time of the call."""
    peak_memory_mb: float | None = None
    """Peak memory during the call (see ``memory_kind``); None where it cannot be measured."""
    memory_kind: str = "rss"
    """``rss``: the process's resident memory (model included), sampled during the call; ``cuda``: torch's peak
    allocated GPU memory."""

    to_dict = _to_dict


@dataclass(frozen=True, slots=True)
class SelfCheck:
    """How well a freshly trained adapter answered held-out questions about its document (:mod:`selfcheck`)."""

    score: float
    """Mean keyword score of the probes' bare-prompt answers, 0 to 1."""
    probes: int
    seconds: float


@dataclass(frozen=True, slots=True)
class MemoryRecord:
    """What is stored about one memorized document (the manifest, as a record)."""

    doc_id: str
    title: str | None
    doc_hash: str
    n_chars: int
    n_tokens: int
    base_model: str
    adapter: dict[str, Any] | None
    trained: bool
    reason: str
    created: str
    train: TrainStats | None = None
    tasks: dict[str, int] = field(default_factory=dict)
    indexed: bool = False
    namespace: str | None = None
    """The retrieval namespace its chunks are indexed in (when ``indexed``)."""
    usage: Usage | None = None
    """What the write that stored this memory cost (tokens trained and read, seconds, peak memory)."""
    self_check: SelfCheck | None = None
    """The recall self-check of its adapter, right after training (None: untrained, or no probes)."""
    version: int = 1
    """1 for the first text stored under the id, one more for each text that replaced it."""
    extra: dict[str, Any] = field(default_factory=dict)

    to_dict = _to_dict


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer, the route that produced it and the evidence it rests on.

    ``adapter`` names the document whose adapter was on the model (``None``: the base model answered).
    ``timings`` holds seconds per stage (``retrieve``, ``prompt``, ``prefill``, ``decode``, ``total``).
    """

    text: str
    route: str
    adapter: str | None
    doc_ids: tuple[str, ...]
    snippets: tuple[Snippet, ...] = ()
    prompt_tokens: int = 0
    generated_tokens: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    coverage: float | None = None
    """Fraction of the answering document's tokens that the prompt showed (its ends and its snippets); None
    when no document answered. Below 1, the rest came from the adapter (``lift``, ``hybrid``) or was not read
    at all (``icl``, ``rag``)."""
    usage: Usage | None = None
    """Tokens, seconds and peak memory of this answer."""

    to_dict = _to_dict
