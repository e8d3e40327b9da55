"""The training mixture of one document: segments, sentence windows, synthesized tasks, contextualized variants.

A :class:`TaskMixture` is the trainer's ``ExampleSource``: asked once per epoch, it returns the language-
modelling examples, every task that exists so far (tasks stream in while training runs), and a fresh draw of
contextualized variants — a task or a sentence window preceded by a head-and-tail excerpt of the document,
whose lengths are resampled every epoch (LIFT v2 samples them once; resampling is better) — and retrieved
variants: a task after snippets laid out as the router lays out retrieval hits (the passage holding the
task's evidence among a few others, marked ``[n]``, sometimes between the document's ends), so that an
adapted model learns to read the snippets it is shown rather than answer over them (the ``hybrid`` route).
Contextualized examples are named ``<task>+ctx``, retrieved ones ``<task>+rag``; both are weighted like their
task unless ``task_weights`` says otherwise. With a :class:`~lift_memory.tasks.distill.Teacher`, every task
also appears once as a context-distillation example (``distill``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from lift_memory.prompt import head_tail_span, quote
from lift_memory.segment import TokenizedDocument
from lift_memory.tasks.distill import Teacher
from lift_memory.tasks.formats import TaskRenderer, excerpt
from lift_memory.types import Task, TrainingExample

RECITE = "Continue the document from this point:"


class TaskMixture:
    """Examples of one document for each epoch.

    Args:
        lm: segment and window examples (fixed).
        tasks: returns the tasks that exist now (e.g. ``TaskStream.tasks``).
        renderer: turns tasks into examples.
        doc: the tokenized document (for contextual excerpts).
        windows: the sentence-window texts (contextualized as "continue from here" tasks).
        contextualize: fraction of tasks and windows that also appear contextualized each epoch.
        context_tokens: budget of the head-and-tail excerpt (its length is drawn in [budget/2, budget]).
        retrieved: fraction of tasks that also appear after retrieved-style snippets each epoch.
        snippet_tokens: tokens per snippet (the retrieval chunk size).
        teacher: builds a context-distillation example of each task (None: none).
    """

    def __init__(
        self,
        lm: Sequence[TrainingExample],
        tasks: Callable[[], list[Task]],
        renderer: TaskRenderer,
        doc: TokenizedDocument,
        *,
        windows: Sequence[Task] = (),
        contextualize: float = 0.25,
        context_tokens: int = 128,
        retrieved: float = 0.0,
        snippet_tokens: int = 128,
        teacher: Teacher | None = None,
    ) -> None:
        self.lm, self.tasks, self.renderer, self.doc = list(lm), tasks, renderer, doc
        self.windows, self.contextualize, self.context_tokens = list(windows), contextualize, context_tokens
        self.retrieved, self.snippet_tokens = retrieved, snippet_tokens
        self.teacher = teacher
        self._rendered: dict[Task, TrainingExample] = {}
        self._distilled: dict[Task, TrainingExample | None] = {}
        self.seen_tasks = 0

    def epoch(self, index: int, rng: random.Random) -> list[TrainingExample]:
        tasks = self.tasks()
        self.seen_tasks = len(tasks)
        for task in tasks:
            if task not in self._rendered:
                self._rendered[task] = self.renderer.example(task)
        examples = self.lm + [self._rendered[t] for t in tasks]
        if self.teacher is not None:
            for task in tasks:
                if task not in self._distilled:
                    self._distilled[task] = self.teacher.example(task)
            examples += [d for t in tasks if (d := self._distilled[t]) is not None]
        if self.contextualize > 0 and self.context_tokens > 0:
            pool = tasks + self.windows
            for task in rng.sample(pool, round(self.contextualize * len(pool))):
                total = rng.randint(self.context_tokens // 2, self.context_tokens)
                head = rng.randint(total // 4, 3 * total // 4)
                context = excerpt(self.doc, head, total - head)
                examples.append(self.renderer.example(task, context, name=f"{task.kind}+ctx"))
        if self.retrieved > 0 and tasks:
            for task in rng.sample(tasks, round(self.retrieved * len(tasks))):
                context = self._snippets(task, rng)
                if context:
                    examples.append(self.renderer.example(task, context, name=f"{task.kind}+rag"))
        return examples

    def _snippets(self, task: Task, rng: random.Random) -> str | None:
        """Context as the router shows retrieval hits for ``task``: a passage of ``snippet_tokens`` holding
        the evidence and up to two other passages (as the budget allows), in document order; half the time
        between the document's head and tail (as ``hybrid`` prompts), within ``context_tokens`` in all. None
        when the evidence is longer than a passage."""
        doc, size = self.doc, self.snippet_tokens
        first, last = doc.token_at(task.evidence_start), doc.token_at(max(task.evidence_end - 1, 0))
        if len(doc) <= size or last - first + 1 > size:
            return None
        start = rng.randint(max(0, last + 1 - size), min(first, len(doc) - size))
        spans = [(start, start + size)]
        for _ in range(rng.randint(0, max(0, min(2, self.context_tokens // size - 1)))):
            other = rng.randrange(0, len(doc) - size)
            if all(other + size <= s or other >= e for s, e in spans):
                spans.append((other, other + size))
        end = round((self.context_tokens - size * len(spans)) / 2)  # tokens for each of head and tail
        ends = end >= 16 and rng.random() < 0.5 and end <= start and start + size <= len(doc) - end
        if ends:
            spans = [(s, e) for s, e in spans if s >= end and e <= len(doc) - end]
        texts = [doc.text[slice(*doc.char_span(s, e))] for s, e in sorted(spans)]
        if not ends:
            return quote("", texts)
        head_end, tail_start = head_tail_span(doc, 2 * end)  # `end` tokens each, as the router cuts them
        return quote(doc.text[:head_end], texts, doc.text[tail_start:])


def window_tasks(windows, text: str) -> list[Task]:
    """Sentence windows as "continue from here" tasks (for their contextualized variants): the prompt is the
    window's first few words, the answer the rest of it."""
    tasks = []
    for w in windows:
        piece = text[w.char_start : w.char_end]
        cut = piece.find(" ", min(40, len(piece) // 3))
        if cut > 0:
            tasks.append(Task("window", f"{RECITE}\n{piece[:cut]}", piece[cut:].strip(), w.char_start, w.char_end))
    return tasks
