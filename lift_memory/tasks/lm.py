"""Language-modelling examples from a document: overlapping segments and sentence-anchored windows.

Each example is the model's prefix tokens (BOS) followed by the span, with loss on every token of the span
(LIFT section 3.1). Task names: ``"segment"`` and ``"window"``, weighted separately by the trainer.
"""

from __future__ import annotations

from lift_memory.segment import Segmenter, TokenizedDocument
from lift_memory.types import Segment, TrainingExample


def lm_example(segment: Segment, prefix_ids: tuple[int, ...]) -> TrainingExample:
    """The example for one segment or window: prefix tokens, then the span with loss on all of it."""
    return TrainingExample(segment.kind, prefix_ids + segment.token_ids, loss_start=len(prefix_ids))


def lm_examples(
    doc: TokenizedDocument, segmenter: Segmenter, tokenizer, prefix_ids: tuple[int, ...]
) -> tuple[list[TrainingExample], list[Segment]]:
    """All segment and window examples of ``doc`` (segments first, each in document order), and the windows
    themselves (their contextualized variants are built from them)."""
    windows = segmenter.windows(doc, tokenizer)
    return [lm_example(s, prefix_ids) for s in segmenter.segments(doc) + windows], windows
