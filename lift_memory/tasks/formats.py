"""Tasks -> training examples, rendered the way the model is prompted, with loss on the answer only.

With a chat template the task is a user turn, rendered exactly as :func:`lift_memory.prompt.render` renders a
question at test time, and the answer the assistant's turn; without one (base and tiny models) it is
``prompt``, a newline, ``Answer:`` and the answer. An end-of-sequence token closes the answer
so the model learns to stop. A contextualized variant puts a head-and-tail excerpt of the document before the
task, the way LIFT prompts at test time (arXiv 2502.14644, section 3.2).
"""

from __future__ import annotations

from dataclasses import dataclass

from lift_memory.prompt import ELLIPSIS, render
from lift_memory.segment import TokenizedDocument
from lift_memory.types import Task, TrainingExample


def excerpt(doc: TokenizedDocument, head: int, tail: int) -> str:
    """The document's first ``head`` and last ``tail`` tokens, joined by '...' (all of it when they cover it)."""
    if head + tail >= len(doc):
        return doc.text
    head_end, tail_start = doc.ends(head, tail)
    return doc.text[:head_end] + ELLIPSIS + doc.text[tail_start:]


@dataclass(frozen=True)
class TaskRenderer:
    """Renders tasks for one tokenizer.

    Args:
        tokenizer: the base model's tokenizer (its chat template is used when it has one).
        prefix_ids: tokens the tokenizer puts before text (BOS).
        eos_id: appended after the answer (None: nothing).
    """

    tokenizer: object
    prefix_ids: tuple[int, ...]
    eos_id: int | None

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def example(self, task: Task, context: str = "", name: str | None = None) -> TrainingExample:
        """The training example for ``task`` (``context`` first, if given); loss on the answer tokens."""
        end = [self.eos_id] if self.eos_id is not None else []
        if getattr(self.tokenizer, "chat_template", None):
            prompt_ids = render(self.tokenizer, context, task.prompt, self.prefix_ids)
            answer_ids = self._ids(task.answer.strip()) + end
        else:
            prompt = f"{context}\n\n{task.prompt}" if context else task.prompt
            prompt_ids = list(self.prefix_ids) + self._ids(prompt + "\nAnswer:")
            answer_ids = self._ids(" " + task.answer.strip()) + end
        return TrainingExample(name or task.kind, tuple(prompt_ids + answer_ids), loss_start=len(prompt_ids))
