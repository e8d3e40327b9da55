"""The test-time trainer: AdamW on an adapter's parameters over weighted task examples, within a budget.

One loop, no framework: length-bucketed batches (see :mod:`lift_memory.train.collate`), linear warm-up then a
constant rate (LIFT trains at a constant rate), gradient clipping, and a loss that is the weighted mean of
per-task mean token losses, so that a task type's share of the gradient is its weight, not its token count.
It stops on the first of: step, token, time or epoch budget, a loss plateau, or a callback asking to stop.

Examples come from a sequence (the same every epoch) or from an :class:`ExampleSource`, asked once per epoch,
so sources can resample contextualized examples or add tasks that arrived while training ran.

The loss lives in :mod:`lift_memory.train.losses`. The trainer knows parameters and examples; it knows nothing about
adapters, documents or files.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from lift_memory.config import TrainConfig
from lift_memory.errors import ConfigError
from lift_memory.forward import Checkpointing, run, split_head
from lift_memory.train.collate import IGNORE, Batch, Soft, collate, plan_batches
from lift_memory.train.heap import HeapTrim
from lift_memory.train.losses import next_token_targets, sliced_sums, task_counts, task_scale, task_sums
from lift_memory.types import TrainingExample, TrainStats


@runtime_checkable
class ExampleSource(Protocol):
    """Gives the examples of each epoch; may change between epochs."""

    def epoch(self, index: int, rng: random.Random) -> Sequence[TrainingExample]: ...


@dataclass(frozen=True)
class StepInfo:
    """What a callback sees after every optimizer step. ``seconds`` counts the steps and the building of their
    examples (an epoch's examples, a context-distillation teacher's passes), never the time spent in callbacks."""

    step: int
    loss: float
    learning_rate: float
    tokens: int
    tokens_per_second: float
    seconds: float
    loss_by_task: dict[str, float] = field(default_factory=dict)


Callback = Callable[[StepInfo], "bool | None"]
"""Called after each step; returning True stops training (reason ``"callback"``)."""


@dataclass
class Checkpoint:
    """Everything needed to continue a run exactly where it stopped (the caller persists it).

    Batches are replayed, not stored: the same examples and seed give the same batch order, so a resumed run
    skips the first ``step`` batches and computes the rest exactly as an uninterrupted run would.
    """

    step: int
    tokens: int
    seconds: float
    parameters: list  # the trained tensors, in the trainer's order
    optimizer: dict
    scheduler: dict
    plateau: dict


class _Plateau:
    """Tracks a bias-corrected exponential moving average of the loss and counts steps without progress."""

    def __init__(self, patience: int | None, delta: float, beta: float = 0.9) -> None:
        self.patience, self.delta, self.beta = patience, delta, beta
        self.avg, self.n, self.best, self.since = 0.0, 0, float("inf"), 0

    def state(self) -> dict:
        return {"avg": self.avg, "n": self.n, "best": self.best, "since": self.since}

    def load(self, state: dict) -> None:
        self.avg, self.n, self.best, self.since = state["avg"], state["n"], state["best"], state["since"]

    def update(self, loss: float) -> bool:
        self.n += 1
        self.avg = self.beta * self.avg + (1 - self.beta) * loss
        smoothed = self.avg / (1 - self.beta**self.n)
        if smoothed < self.best * (1 - self.delta):
            self.best, self.since = smoothed, 0
        else:
            self.since += 1
        return self.patience is not None and self.since >= self.patience


def split_micro(group: Sequence[TrainingExample], micro_tokens: int | None) -> list[list[TrainingExample]]:
    """``group`` (similar lengths, as planned) cut into runs of at most ``micro_tokens`` padded tokens; each
    run is one forward/backward pass, their gradients accumulate into one optimizer step."""
    if micro_tokens is None:
        return [list(group)]
    ordered = sorted(group, key=len)
    runs: list[list[TrainingExample]] = [[]]
    for e in ordered:
        if runs[-1] and len(e) * (len(runs[-1]) + 1) > micro_tokens:
            runs.append([])
        runs[-1].append(e)
    return runs


class Trainer:
    """Trains ``parameters`` of ``model`` on weighted examples.

    Args:
        model: a causal LM whose forward takes ``input_ids`` and ``attention_mask`` and returns ``.logits``.
        parameters: what to train (the adapter's); nothing else gets gradients.
        config: optimizer, batching, budget and task weights.
        pad_id: token id used for padding.
        callbacks: called after every step with a :class:`StepInfo`.
        progress: show a progress bar.
        desc: the progress bar's label.
    """

    def __init__(
        self,
        model,
        parameters: list,
        config: TrainConfig,
        *,
        pad_id: int,
        callbacks: Sequence[Callback] = (),
        progress: bool = True,
        desc: str = "memorizing",
    ) -> None:
        self.model, self.parameters, self.config = model, list(parameters), config
        self.pad_id, self.callbacks, self.progress, self.desc = pad_id, list(callbacks), progress, desc
        self.heap = HeapTrim()

    def _optimizer(self):
        import torch

        c = self.config
        if c.learning_rate is None:
            raise ConfigError("train.learning_rate is None; resolve it first (TrainConfig.resolved)")
        kwargs = {"lr": c.learning_rate, "betas": c.betas, "weight_decay": c.weight_decay}
        try:
            return torch.optim.AdamW(self.parameters, fused=True, **kwargs)
        except (RuntimeError, TypeError):  # no fused kernel for this device or dtype
            return torch.optim.AdamW(self.parameters, foreach=True, **kwargs)

    def weight(self, task: str) -> float:
        """The weight of a task type: its own, else its base task's (``recall+ctx`` -> ``recall``), else 0."""
        weights = self.config.task_weights
        return weights.get(task, weights.get(task.split("+", 1)[0], 0.0))

    def _batches(self, source, rng: random.Random):
        """Endless stream of (epochs done after this batch, batch of examples), re-planned every epoch."""
        epoch = 0
        while True:
            examples = source.epoch(epoch, rng) if isinstance(source, ExampleSource) else source
            examples = [e for e in examples if self.weight(e.task) > 0 and len(e) > 1]
            if not examples:
                return
            plan = plan_batches([len(e) for e in examples], self.config.batch_tokens, rng)
            for done, idx in enumerate(plan, start=1):
                yield epoch + done / len(plan), [examples[i] for i in idx]
            epoch += 1

    def fit(
        self,
        examples: Sequence[TrainingExample] | ExampleSource,
        *,
        resume: Checkpoint | None = None,
        checkpoint_every: int | None = None,
        on_checkpoint: Callable[[Checkpoint], None] | None = None,
    ) -> TrainStats:
        """Train until a budget, a plateau or a callback stops it; return what happened.

        Args:
            examples: a sequence (the same every epoch) or an :class:`ExampleSource`.
            resume: continue this checkpoint's run (same examples and config) instead of starting fresh.
            checkpoint_every: call ``on_checkpoint`` every this many steps (and when training stops).
            on_checkpoint: receives a :class:`Checkpoint` to persist.

        Random draws (dropout) are seeded by ``config.seed`` on a forked generator: the caller's stays as it was.
        """
        import torch

        device = self.parameters[0].device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.config.seed)
            return self._fit(examples, resume, checkpoint_every, on_checkpoint)

    def _fit(self, examples, resume, checkpoint_every, on_checkpoint) -> TrainStats:
        import torch

        from lift_memory.progress import bar as progress_bar

        c = self.config
        names: list[str] = []  # task types in order of appearance; tasks may stream in during training
        index: dict[str, int] = {}
        device = self.parameters[0].device
        weights = torch.zeros(0, device=device)
        rng = random.Random(c.seed)
        opt = self._optimizer()
        # Linear warmup to a constant rate. Not transformers' get_constant_schedule_with_warmup: it runs the first
        # step at rate 0, and test-time training often has only a few dozen steps to spend.
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / (c.warmup_steps + 1)))
        plateau = _Plateau(c.plateau_patience, c.plateau_delta)
        step = tokens = 0
        seconds = 0.0
        loss_value, reason = float("nan"), "no examples"
        last_by_task: dict[str, float] = {}
        seen: dict[str, int] = {}
        bar = progress_bar(self.progress, total=c.max_steps, desc=self.desc, unit="step", leave=False)
        skip = 0
        if resume is not None:
            with torch.no_grad():
                for p, saved in zip(self.parameters, resume.parameters, strict=True):
                    p.copy_(saved)
            opt.load_state_dict(resume.optimizer)
            sched.load_state_dict(resume.scheduler)
            plateau.load(resume.plateau)
            skip, step, tokens, seconds = resume.step, resume.step, resume.tokens, resume.seconds
            bar.update(step)

        def checkpoint() -> Checkpoint:
            return Checkpoint(
                step=step,
                tokens=tokens,
                seconds=seconds,
                parameters=[p.detach().clone() for p in self.parameters],
                optimizer=opt.state_dict(),
                scheduler=sched.state_dict(),
                plateau=plateau.state(),
            )

        self.model.train()
        try:
            with self._checkpointing() as ckpt:
                started = time.perf_counter()  # a step's time includes building its epoch's examples
                for epochs, group in self._batches(examples, rng):
                    for e in group:
                        seen[e.task] = seen.get(e.task, 0) + 1
                        if e.task not in index:
                            index[e.task] = len(names)
                            names.append(e.task)
                            weights = torch.tensor([self.weight(n) for n in names], device=device)
                    if skip:  # replaying the batches a resumed run already trained on
                        skip -= 1
                        started = time.perf_counter()
                        continue
                    loss, means, counts, n_tokens = self._step(group, index, weights, ckpt)
                    if c.grad_clip is not None:
                        torch.nn.utils.clip_grad_norm_(self.parameters, c.grad_clip)
                    lr = opt.param_groups[0]["lr"]
                    opt.step()
                    sched.step()
                    opt.zero_grad(set_to_none=True)
                    loss_value = loss.item()
                    step, tokens = step + 1, tokens + n_tokens
                    seconds += time.perf_counter() - started
                    last_by_task.update(
                        {names[i]: round(means[i].item(), 4) for i in range(len(names)) if counts[i] > 0}
                    )
                    info = StepInfo(step, loss_value, lr, tokens, tokens / seconds, seconds, dict(last_by_task))
                    bar.update()
                    bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{info.tokens_per_second:.0f}", refresh=False)
                    reason = self._stop_reason(info, epochs, plateau.update(loss_value))
                    if any([cb(info) for cb in self.callbacks]):
                        reason = reason or "callback"
                    if on_checkpoint is not None and checkpoint_every and (reason or step % checkpoint_every == 0):
                        on_checkpoint(checkpoint())
                    if reason:
                        break
                    started = time.perf_counter()
                else:
                    reason = "no examples" if step == 0 else "exhausted"
        finally:
            bar.close()
            self.model.eval()
        return TrainStats(
            steps=step,
            tokens=tokens,
            seconds=round(seconds, 3),
            tokens_per_second=round(tokens / seconds, 1) if seconds else 0.0,
            final_loss=round(loss_value, 4),
            stop_reason=reason,
            loss_by_task=last_by_task,
            examples_by_task=seen,
        )

    def _checkpointing(self):
        """Activation checkpointing for this run (a no-op context when the config turns it off)."""
        if self.config.checkpoint_activations == "never":
            return contextlib.nullcontext(None)
        return Checkpointing(self.model)

    def _step(self, group: Sequence[TrainingExample], index: dict[str, int], weights, ckpt):
        """Forward and backward one mini-batch in micro-batches; gradients accumulate in the parameters.

        The loss is exactly the mini-batch's weighted mean of per-task mean token losses: each micro-batch's
        per-task sums are scaled by the token counts of the whole mini-batch before its backward pass.

        Returns:
            (loss, per-task mean losses (K,), per-task token counts (K,), real tokens).
        """
        import torch

        device = weights.device
        micro = [
            _to(collate(c, self.pad_id, index), device) for c in split_micro(group, self.config.micro_batch_tokens)
        ]
        k = weights.numel()
        counts = sum(task_counts(b.labels, b.tasks, k) for b in micro)  # (K,) over the whole mini-batch
        scale = task_scale(weights, counts)
        sums = torch.zeros(k, device=device)
        for b in micro:
            self.heap.maybe()
            part = self._pass(b, k, ckpt)
            (part * scale).sum().backward()
            sums += part.detach()
        return (sums * scale).sum(), sums / counts.clamp(min=1), counts, sum(b.n_tokens for b in micro)

    def _pass(self, batch: Batch, k: int, ckpt: Checkpointing | None):
        """Forward one micro-batch; return its per-task loss sums (K,), with the graph for backward.

        Logits are computed only from the first position that predicts a labelled token: a task's prompt
        needs none, and the (tokens x vocabulary) projection is a large share of the cost. A pass longer than
        ``micro_batch_tokens`` (one example that alone exceeds it) is checkpointed ("auto"; "always": every
        pass), and its loss is computed a slice of positions at a time, so that peak memory stays bounded.
        """
        c = self.config
        targets = next_token_targets(batch.labels)
        labelled = (targets != IGNORE).any(0).nonzero()
        first = int(labelled[0]) if len(labelled) else targets.size(1) - 1
        long = c.micro_batch_tokens is not None and batch.input_ids.numel() > c.micro_batch_tokens
        if ckpt is not None:
            ckpt.use(c.checkpoint_activations == "always" or long)
        if long and ckpt is not None and (parts := split_head(self.model)) is not None:
            return sliced_sums(parts, batch, targets, first, k, c.micro_batch_tokens // batch.input_ids.size(0))
        keep = targets.size(1) - first
        logits, _ = run(self.model, batch.input_ids, attention_mask=batch.attention_mask, keep=keep)
        soft = None if batch.soft is None else batch.soft.cut(first)
        return task_sums(logits, targets[:, first:], batch.tasks, k, soft)[0]

    def _stop_reason(self, info: StepInfo, epochs: float, plateaued: bool) -> str:
        c = self.config
        if c.max_steps is not None and info.step >= c.max_steps:
            return "max_steps"
        if c.max_tokens is not None and info.tokens >= c.max_tokens:
            return "max_tokens"
        if c.max_seconds is not None and info.seconds >= c.max_seconds:
            return "max_seconds"
        if c.max_epochs is not None and epochs >= c.max_epochs - 1e-9:
            return "max_epochs"
        if plateaued and info.step > c.warmup_steps:
            return "plateau"
        return ""


def _to(batch: Batch, device) -> Batch:
    move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
    soft = None if batch.soft is None else Soft(move(batch.soft.ids), move(batch.soft.logp), move(batch.soft.mask))
    return Batch(
        move(batch.input_ids), move(batch.attention_mask), move(batch.labels), move(batch.tasks), batch.n_tokens, soft
    )
