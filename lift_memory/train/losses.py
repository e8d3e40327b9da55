"""The trainer's loss: the weighted mean of per-task mean token losses, so that a task type's share of the
gradient is its weight, not its token count; and its memory-lean form for passes too long for full logits."""

from __future__ import annotations

from lift_memory.train.collate import IGNORE, Batch, Soft


def next_token_targets(labels):
    """(B, T) targets: position t predicts label t+1 (``IGNORE`` past the end). Shifting the labels instead of
    slicing the logits avoids copying the (large) logits."""
    import torch

    return torch.cat([labels[:, 1:], labels.new_full((labels.size(0), 1), IGNORE)], dim=1)


def task_sums(logits, targets, tasks, k: int, soft: Soft | None = None):
    """Per-task sums of token losses, and per-task token counts.

    Args:
        logits: (B, T, V) next-token logits.
        targets: (B, T) the token each position predicts (:func:`next_token_targets`), ``IGNORE`` where no
            loss is taken.
        tasks: (B,) task index of each row.
        k: number of tasks.
        soft: teacher targets for the same positions; where set, a position's loss is KL(teacher || model)
            over the teacher's top-k tokens instead of cross-entropy.

    Returns:
        (sums (K,), counts (K,)).
    """
    import torch
    import torch.nn.functional as F

    flat = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=IGNORE, reduction="none"
    )
    if soft is not None and bool(soft.mask.any()):
        flat = flat.masked_scatter(soft.mask.reshape(-1), distill_losses(logits, soft))
    valid = targets.reshape(-1) != IGNORE
    row_task = tasks[:, None].expand_as(targets).reshape(-1)[valid]  # (N,)
    sums = torch.zeros(k, device=flat.device).index_add_(0, row_task, flat[valid])
    counts = torch.zeros(k, device=flat.device).index_add_(0, row_task, torch.ones_like(flat[valid]))
    return sums, counts


def distill_losses(logits, soft: Soft):
    """KL(teacher || model) at each position ``soft.mask`` selects, (M,): sum over the teacher's top-k tokens of
    p (log p - log q), with p renormalized over the k and q the model's full softmax."""
    import torch

    chosen = soft.mask.reshape(-1)
    logq = torch.log_softmax(logits.reshape(-1, logits.size(-1))[chosen].float(), -1)  # (M, V)
    logp = soft.logp.reshape(-1, soft.logp.size(-1))[chosen].float()  # (M, k)
    ids = soft.ids.reshape(-1, soft.ids.size(-1))[chosen]
    return (logp.exp() * (logp - logq.gather(1, ids))).sum(-1)


def task_counts(labels, tasks, k: int):
    """Per-task counts of the tokens that carry a loss, (K,), without running the model."""
    import torch

    valid = (labels[:, 1:] != IGNORE).sum(1).float()  # (B,)
    return torch.zeros(k, device=labels.device).index_add_(0, tasks, valid)


def task_losses(logits, labels, tasks, weights):
    """Weighted mean over tasks of each task's mean token loss.

    Args:
        logits: (B, T, V) next-token logits.
        labels: (B, T) target ids, ``IGNORE`` where no loss is taken (unshifted, as in transformers).
        tasks: (B,) task index of each row.
        weights: (K,) weight of each task.

    Returns:
        (loss, per-task mean losses (K,), per-task token counts (K,)).
    """
    sums, counts = task_sums(logits, next_token_targets(labels), tasks, weights.numel())
    return (sums * task_scale(weights, counts)).sum(), (sums / counts.clamp(min=1)).detach(), counts


def task_scale(weights, counts):
    """(K,) factors with loss = sum_k scale_k * sums_k: the weighted mean, over the tasks that have tokens, of
    each task's mean token loss (``weights`` and token ``counts`` both (K,))."""
    w = weights * (counts > 0)
    return w / counts.clamp(min=1) / w.sum().clamp(min=1e-12)


def sliced_sums(parts, batch: Batch, targets, first: int, k: int, width: int):
    """Per-task loss sums of a long pass, the head and loss run ``width`` positions at a time, each slice
    checkpointed: only the decoder's hidden states stay alive, never the (tokens x vocabulary) logits."""
    import torch
    from torch.utils.checkpoint import checkpoint

    decoder, head = parts
    hidden = decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)[0]  # (B,T,H)

    def slice_sums(h, y, soft):
        return task_sums(head(h), y, batch.tasks, k, soft)[0]

    sums = torch.zeros(k, device=hidden.device)
    for start in range(first, targets.size(1), max(1, width)):
        end = start + max(1, width)
        soft = None if batch.soft is None else batch.soft.cut(start, end)
        sums = sums + checkpoint(slice_sums, hidden[:, start:end], targets[:, start:end], soft, use_reentrant=False)
    return sums
