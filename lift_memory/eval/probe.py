"""Probes of parametric memory, for the demo and the benchmarks.

:class:`RecallProbe` is a trainer callback: every few steps it asks the adapter *as it is being trained*
to continue a needle's prefix (or to answer its question) from a bare prompt, and records the training time
(probe time excluded) at which the needle first came back. :func:`run_demo` memorizes a haystack with a needle and reports the
before/after figures that ``lift-memory demo`` prints.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from lift_memory.config import GenerationConfig
from lift_memory.eval.niah.haystack import Needle, build_haystack, corpus_texts, insert_needle
from lift_memory.eval.niah.scoring import keyword_score
from lift_memory.router import ROUTES


def bare_completion(memory, prompt: str, max_new_tokens: int = 24, *, question: bool = False) -> str:
    """Greedy continuation of ``prompt`` by the model with whatever weights are in the adapter slot now;
    ``question``: ``prompt`` is a question, rendered as a prompt with no context (the chat template's user
    turn where there is one)."""
    from lift_memory.generate import generate_ids
    from lift_memory.prompt import render

    eng = memory.engine
    model = eng.adapter.model
    was_training = model.training
    model.eval()
    try:
        if question:
            ids = render(eng.tokenizer, "", prompt, eng.base.prefix_ids)
        else:
            ids = list(eng.base.prefix_ids) + eng.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        out = generate_ids(model, ids, GenerationConfig(max_new_tokens=max_new_tokens), eng.base.eos_ids)
        return eng.tokenizer.decode(list(out), skip_special_tokens=True)
    finally:
        model.train(was_training)


def kl_from_base(memory, text: str, doc_id: str | None = None) -> float:
    """Mean per-token KL(base || adapted), in nats, on the first window of ``text``: how much the adapter changes
    the model where it should not (``text`` unrelated to the document). ``doc_id`` None: the adapter slot in its
    initial state (e.g. a pre-LIFT start)."""
    import torch

    eng = memory.engine
    ids = eng.tokenizer(text, add_special_tokens=False)["input_ids"][: eng.base.context_window - 1]
    x = torch.tensor([list(eng.base.prefix_ids) + ids], device=eng.base.device)
    with eng.lock, torch.inference_mode():
        with eng.use(None):
            base = torch.log_softmax(eng.adapter.model(input_ids=x).logits.float(), -1)
        if doc_id is None:
            eng.slot.reset()
        with eng.use(doc_id) if doc_id is not None else contextlib.nullcontext():
            adapted = torch.log_softmax(eng.adapter.model(input_ids=x).logits.float(), -1)
    return float((base.exp() * (base - adapted)).sum(-1).mean())


def expected_answer(task) -> str:
    """What a reply to ``task`` must contain: for a recall task the span its blank hides (its answer is the whole
    sentence, restored), else its whole answer."""
    from lift_memory.tasks.extractive import masked_span

    span = masked_span(task)
    return (task.answer if span is None else span).strip('"')


def task_accuracy(memory, tasks, doc_id: str | None = None) -> float:
    """Fraction of ``tasks`` whose expected answer (:func:`expected_answer`) appears in the model's greedy reply
    to the task's prompt, rendered exactly as in training (with ``doc_id``'s adapter; None: the base model).
    Each reply may run a few tokens past the length of the task's answer."""
    from lift_memory.generate import generate_ids
    from lift_memory.tasks.formats import TaskRenderer

    eng = memory.engine
    renderer = TaskRenderer(eng.tokenizer, eng.base.prefix_ids, None)
    hits = 0
    with eng.lock, eng.use(doc_id):
        for task in tasks:
            example = renderer.example(task)
            config = GenerationConfig(max_new_tokens=len(example.input_ids) - example.loss_start + 4)
            reply = generate_ids(
                eng.adapter.model, list(example.input_ids[: example.loss_start]), config, eng.base.eos_ids
            )
            hits += expected_answer(task) in eng.tokenizer.decode(list(reply), skip_special_tokens=True)
    return round(hits / max(len(tasks), 1), 3)


@dataclass
class RecallProbe:
    """Trainer callback recording when a needle is first recalled from a bare prompt.

    Args:
        memory: the :class:`~lift_memory.LiftMemory` whose adapter is training.
        needle: what to recall.
        every: probe every this many steps.
        stop_on_recall: ask the trainer to stop once recalled.
        question: ask the needle's question (instruct models) instead of continuing its prefix.
    """

    memory: Any
    needle: Needle
    every: int = 10
    stop_on_recall: bool = False
    question: bool = False
    recalled_at_step: int | None = None
    recalled_at_seconds: float | None = None
    history: list[tuple[int, float, float]] = field(default_factory=list)
    last_answer: str = ""

    def __call__(self, info) -> bool:
        if info.step % self.every or self.recalled_at_step is not None:
            return False
        prompt = self.needle.question if self.question else self.needle.prefix
        said = self.last_answer = bare_completion(self.memory, prompt, question=self.question)
        score = keyword_score(said, self.needle.keywords)
        self.history.append((info.step, round(info.seconds, 2), score))
        if score == 1.0:
            self.recalled_at_step, self.recalled_at_seconds = info.step, round(info.seconds, 2)
        return self.stop_on_recall and score == 1.0


def run_demo(memory, *, tokens: int = 8192, depth: float = 0.5, needle: Needle | None = None) -> dict[str, Any]:
    """Memorize a ``tokens``-long haystack with ``needle`` at ``depth`` and measure before/after.

    Returns a JSON-ready dict: training time and speed, perplexity of the document before/after, and the bare
    prompt continuation before/after with its keyword score.
    """
    needle = needle or Needle()
    tok = memory.engine.tokenizer
    text, at = insert_needle(build_haystack(tok, tokens, corpus_texts()), needle.text, depth, tok)
    ppl_before = memory.perplexity(text)
    said_before = memory.complete(needle.prefix, max_new_tokens=24)
    probe = RecallProbe(memory, needle, every=10)
    if "demo-haystack" in memory.bank:  # re-running the demo trains again rather than finding it memorized
        memory.forget("demo-haystack")
    record = memory.memorize(text, doc_id="demo-haystack", title="demo haystack", replace=True, callbacks=[probe])
    said_after = memory.complete(needle.prefix, record.doc_id, max_new_tokens=24)
    stats = record.train
    return {
        "doc_id": record.doc_id,
        "document_tokens": record.n_tokens,
        "needle_at_char": at,
        "depth": depth,
        "train_seconds": stats.seconds if stats else 0.0,
        "train_steps": stats.steps if stats else 0,
        "tokens_per_second": stats.tokens_per_second if stats else 0.0,
        "stop_reason": stats.stop_reason if stats else record.reason,
        "first_recall_seconds": probe.recalled_at_seconds,
        "perplexity_before": round(ppl_before, 3),
        "perplexity_after": round(memory.perplexity(text, record.doc_id), 3),
        "prompt": needle.prefix,
        "completion_before": said_before,
        "completion_after": said_after,
        "recall_before": keyword_score(said_before, needle.keywords),
        "recall_after": keyword_score(said_after, needle.keywords),
    }


def compare_routes(
    memory, text: str, question: str, *, doc_id: str = "demo-routes", modes=(*ROUTES, "auto")
) -> dict[str, Any]:
    """Memorize ``text`` (adapter and index) and answer ``question`` by every route in ``modes``.

    Returns a JSON-ready dict: the document's length against the window, training time, and per mode the
    answer, the route taken, and how much of the document the prompt showed.
    """
    record = memory.memorize(text, doc_id=doc_id, title="route comparison", replace=True, train=True)
    answers = {}
    for mode in modes:
        answer = memory.ask(question, doc_id, mode=mode)
        answers[mode] = {"text": answer.text.strip(), "route": answer.route, "coverage": answer.coverage}
    stats = record.train
    return {
        "model": memory.config.model.name,
        "window": memory.engine.base.context_window,
        "document_tokens": record.n_tokens,
        "train_seconds": stats.seconds if stats else 0.0,
        "train_steps": stats.steps if stats else 0,
        "question": question,
        "answers": answers,
    }
