"""Training examples -> padded mini-batches with per-token labels and per-row task ids.

Batches are filled up to a budget of padded tokens from examples of similar length (shuffled, then sorted
within large buckets), so short sentence windows and long segments do not share a batch and little compute
goes to padding. This module knows tensors and nothing about models.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from lift_memory.types import TrainingExample

IGNORE = -100
_BUCKET_BATCHES = 32  # how many batches' worth of examples are sorted together


@dataclass
class Batch:
    """A padded batch. ``labels`` are ``IGNORE`` where no loss is taken; ``tasks`` index ``task_names``."""

    input_ids: object  # (B, T) long
    attention_mask: object | None  # (B, T) long; None when no row is padded
    labels: object  # (B, T) long
    tasks: object  # (B,) long
    n_tokens: int  # real (non-pad) tokens
    soft: Soft | None = None  # teacher targets, where any row has them


@dataclass
class Soft:
    """Teacher targets of a batch, aligned with next-token targets (position t predicts token t+1)."""

    ids: object  # (B, T, k) long
    logp: object  # (B, T, k) float
    mask: object  # (B, T) bool: positions whose loss is KL to the teacher

    def cut(self, start: int, end: int | None = None) -> Soft:
        """Positions ``start:end``."""
        return Soft(self.ids[:, start:end], self.logp[:, start:end], self.mask[:, start:end])


def plan_batches(lengths: Sequence[int], batch_tokens: int, rng: random.Random) -> list[list[int]]:
    """Group example indices into batches of at most ``batch_tokens`` padded tokens, in random order.

    An example longer than the budget gets a batch of its own.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    bucket = max(1, _BUCKET_BATCHES * batch_tokens // max(1, max(lengths, default=1)))
    for b in range(0, len(order), bucket):
        current: list[int] = []
        longest = 0
        for i in sorted(order[b : b + bucket], key=lengths.__getitem__):
            if current and max(longest, lengths[i]) * (len(current) + 1) > batch_tokens:
                batches.append(current)
                current, longest = [], 0
            current.append(i)
            longest = max(longest, lengths[i])
        if current:
            batches.append(current)
    rng.shuffle(batches)
    return batches


def collate(examples: Sequence[TrainingExample], pad_id: int, task_index: dict[str, int]) -> Batch:
    """Right-pad ``examples`` into one :class:`Batch`; loss on tokens from each example's ``loss_start``."""
    import torch

    width = max(len(e) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, ex in enumerate(examples):
        n = len(ex)
        ids[row, :n] = torch.tensor(ex.input_ids)
        mask[row, :n] = 1
        start = max(1, ex.loss_start)  # the first token has nothing to be predicted from
        labels[row, start:n] = ids[row, start:n]
    tasks = torch.tensor([task_index[e.task] for e in examples], dtype=torch.long)
    n_tokens = int(mask.sum())
    padded = n_tokens < mask.numel()
    return Batch(ids, mask if padded else None, labels, tasks, n_tokens, _soft(examples, width))


def _soft(examples: Sequence[TrainingExample], width: int) -> Soft | None:
    """The batch's teacher targets: row r's labelled tokens ``loss_start..n-1`` are predicted at positions
    ``loss_start-1..n-2``."""
    import torch

    given = [e for e in examples if e.soft is not None]
    if not given:
        return None
    k = given[0].soft.ids.size(1)
    ids = torch.zeros((len(examples), width, k), dtype=torch.long)
    logp = torch.zeros((len(examples), width, k), dtype=given[0].soft.logp.dtype)
    mask = torch.zeros((len(examples), width), dtype=torch.bool)
    for row, ex in enumerate(examples):
        if ex.soft is None:
            continue
        start, end = max(1, ex.loss_start) - 1, len(ex) - 1
        if ex.soft.ids.shape != (end - start, k):
            raise ValueError(f"soft targets of shape {tuple(ex.soft.ids.shape)} for {end - start} labelled tokens")
        ids[row, start:end], logp[row, start:end], mask[row, start:end] = ex.soft.ids, ex.soft.logp, True
    return Soft(ids, logp, mask)
