"""Context distillation: the adapted model learns to answer without the document as the base model answers
with the relevant passage in its window.

For each synthesized task the teacher is the frozen base model (the adapter disabled) reading a passage of the
document around the task's evidence, then the task's prompt and answer; the student is the adapted model
reading the prompt alone, as a question is asked at test time. At every answer token the student's loss is
KL(teacher || student) over the teacher's top-k next tokens (the self-study objective of Cartridges, arXiv
2506.06266; Knowledge Modules, arXiv 2503.08727, report that plain next-token training on a document does
poorly). The student learns what the teacher knows from reading, and the teacher's own way of saying it,
not only the reference answer's tokens.

The teacher runs once per task, when the task first joins the mixture; its top-k ids and log-probabilities
(k of each per answer token) stay in RAM. The examples are named ``distill`` and weighted by
``train.task_weights["distill"]`` (0: no teacher runs at all).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from lift_memory.segment import TokenizedDocument
from lift_memory.tasks.formats import TaskRenderer
from lift_memory.types import SoftTargets, Task, TrainingExample

TASK = "distill"


class Teacher:
    """Builds context-distillation examples of one document.

    Args:
        model: the model with the adapter in place (called as a causal LM).
        disabled: a context in which ``model`` computes exactly the base model (``Adapter.disabled``).
        renderer: renders tasks the way the trainer's other tasks are rendered.
        doc: the tokenized document.
        context_tokens: length of the passage the teacher reads, around the task's evidence.
        top_k: how many of the teacher's most likely next tokens are kept per answer token.
    """

    def __init__(
        self,
        model,
        disabled: Callable[[], AbstractContextManager[None]],
        renderer: TaskRenderer,
        doc: TokenizedDocument,
        *,
        context_tokens: int,
        top_k: int = 16,
    ) -> None:
        self.model, self.disabled, self.renderer, self.doc = model, disabled, renderer, doc
        self.context_tokens, self.top_k = context_tokens, top_k

    def passage(self, task: Task) -> str | None:
        """About ``context_tokens`` of the document with the task's evidence in the middle; None when the
        evidence alone is longer."""
        doc, size = self.doc, min(self.context_tokens, len(self.doc))
        first, last = doc.token_at(task.evidence_start), doc.token_at(max(task.evidence_end - 1, 0))
        if size <= 0 or last >= len(doc) or last - first + 1 > size:
            return None
        start = max(0, min(first - (size - (last - first + 1)) // 2, len(doc) - size))
        return doc.text[slice(*doc.char_span(start, start + size))]

    def example(self, task: Task) -> TrainingExample | None:
        """The student's example for ``task`` with the teacher's targets on its answer; None when the task's
        evidence does not fit the passage."""
        import torch

        from lift_memory.forward import run

        context = self.passage(task)
        if context is None:
            return None
        student = self.renderer.example(task, name=TASK)
        teacher = self.renderer.example(task, context)
        answer = student.input_ids[student.loss_start :]
        if teacher.input_ids[teacher.loss_start :] != answer:  # cannot happen with the renderer's own layout
            return None
        device = next(self.model.parameters()).device
        x = torch.tensor([teacher.input_ids], device=device)
        training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), self.disabled():
                logits, _ = run(self.model, x, keep=len(answer) + 1)
        finally:
            self.model.train(training)
        top = torch.log_softmax(logits[0, :-1].float(), -1).topk(self.top_k, -1)  # predicts each answer token
        logp = top.values - torch.logsumexp(top.values, -1, keepdim=True)
        soft = SoftTargets(ids=top.indices.cpu(), logp=logp.cpu())
        return TrainingExample(TASK, student.input_ids, student.loss_start, soft)
