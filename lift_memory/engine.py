"""The model side: one frozen base model, its adapter slot, and everything that runs them.

The engine loads the base model and attaches the adapter once; a document's adapter weights are copied
into the slot when an answer needs them (the last few stay cached in RAM). It trains the slot on a document,
builds prompts from a router's :class:`~lift_memory.router.Plan`, decodes (whole or streamed), continues
bare prompts and scores perplexity. It implements the router's ``Answerer`` protocol.

It reads stored documents and adapters through the bank but never writes them, and it knows nothing about
retrieval stores: snippets reach it inside a plan.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lift_memory.bank import AdapterBank
from lift_memory.config import GenerationConfig, MemoryConfig, TrainConfig
from lift_memory.edits import Edit, Mixture, scaled_budget
from lift_memory.ids import document_text
from lift_memory.slot import AdapterSlot
from lift_memory.types import Answer, Usage

_DOC_CACHE = 8  # tokenized documents kept in RAM
QUESTION_ROOM = 64  # tokens kept free for the question when deciding whether a document fits the window


class LazyEngine:
    """The :class:`Engine`, loaded on first call (listing or forgetting memories never loads the model)."""

    def __init__(self, config: MemoryConfig, bank: AdapterBank, *, progress: bool = True) -> None:
        self.config, self.bank, self.progress = config, bank, progress
        self.loaded: Engine | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Engine:
        with self._lock:
            if self.loaded is None:
                self.loaded = Engine(self.config, self.bank, progress=self.progress)
            return self.loaded

    def forget(self, doc_id: str | None = None) -> None:
        """Drop what the engine, if loaded, caches about ``doc_id`` (None: about every document)."""
        if self.loaded is not None:
            self.loaded.forget(doc_id)


class Engine:
    """A base model with an adapter slot, answering from documents in ``bank``.

    Args:
        config: the memory's configuration (model, adapter, segmentation, training, generation).
        bank: where documents and adapters are stored.
        progress: show progress bars (model build, training).
    """

    def __init__(self, config: MemoryConfig, bank: AdapterBank, *, progress: bool = True) -> None:
        from lift_memory.adapters import attach
        from lift_memory.models import load_model
        from lift_memory.segment import Segmenter

        self.config, self.bank, self.progress = config, bank, progress
        self.base = load_model(config.model, progress=progress)
        self.adapter = attach(self.base.model, config.adapter, seed=config.train.seed, builtin=self.base.is_builtin)
        room = self.base.context_window - len(self.base.prefix_ids)
        s = config.segment
        self.segmenter = Segmenter.for_model(s.length, s.overlap, s.window, max_length=room)
        self.train_config = config.train.resolved(
            builtin=self.base.is_builtin, adapter=config.adapter.kind, params=self.base.model.num_parameters()
        )
        self.slot = AdapterSlot(self.base, self.adapter, bank)
        if config.start is not None:
            self.slot.load_start(config.start)
        self._docs: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self.lock = threading.RLock()

    @property
    def tokenizer(self):
        return self.base.tokenizer

    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)

    def count(self, text: str) -> int:
        """Tokens of ``text`` (no special tokens)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # -- documents and adapters --------------------------------------------------------------------------

    def document(self, doc_id: str):
        """The stored text of ``doc_id``, tokenized (cached)."""
        from lift_memory.segment import tokenize

        key = (doc_id, self.bank.manifest(doc_id).document_file)
        doc = self._docs.get(key)
        if doc is None:
            doc = tokenize(self.bank.text(doc_id), self.tokenizer)
            self._docs[key] = doc
            while len(self._docs) > _DOC_CACHE:
                self._docs.popitem(last=False)
        self._docs.move_to_end(key)
        return doc

    def fits(self, n_tokens: int) -> bool:
        """Whether a document of ``n_tokens`` fits the window beside a question and the generation budget."""
        return n_tokens + QUESTION_ROOM <= self.base.context_window - self.config.generation.max_new_tokens

    def has_adapter(self, doc_id: str) -> bool:
        return self.bank.manifest(doc_id).adapter is not None

    def self_check(self, doc_id: str) -> float | None:
        """The score of ``doc_id``'s recall self-check (None: not checked)."""
        found = self.bank.manifest(doc_id).self_check
        return None if found is None else found.score

    def check_recall(self, text: str) -> dict[str, Any] | None:
        """Run the recall self-check on the adapter in the slot, just trained on ``text``; None: no probes."""
        import dataclasses

        from lift_memory import selfcheck

        n = self.config.tasks.self_check
        found = selfcheck.probes(text, n, self.config.train.seed) if n else []
        with self.lock:
            result = selfcheck.check(self, found)
        return None if result is None else dataclasses.asdict(result)

    def fits_window(self, doc_id: str) -> bool:
        return self.fits(self.bank.manifest(doc_id).n_tokens)

    def forget(self, doc_id: str | None = None) -> None:
        """Drop anything cached about ``doc_id`` (None: about every document)."""
        self.slot.forget(doc_id)
        for key in [key for key in self._docs if doc_id is None or key[0] == doc_id]:
            del self._docs[key]

    def use(self, doc_id: str | None):
        """Context in which the model runs with ``doc_id``'s adapter (None: the exact base model)."""
        return self.slot.use(doc_id)

    def export(self, doc_id: str, folder: Path) -> None:
        """Write ``doc_id``'s adapter into ``folder`` in the format other tools load (see ``Adapter.export``)."""
        with self.lock:
            self.use(doc_id)
            self.adapter.export(folder, self.base.source or self.base.name)

    # -- training ----------------------------------------------------------------------------------------

    def context_tokens(self) -> int:
        """Budget of the head-and-tail excerpt in contextualized training examples."""
        configured = self.config.tasks.context_tokens
        return configured if configured is not None else min(4096, self.base.context_window // 4)

    def trainer(self, desc: str, callbacks: Sequence[Any] = (), config: TrainConfig | None = None):
        """A :class:`~lift_memory.train.loop.Trainer` for the adapter slot's parameters (``config``: instead of
        the memory's training settings)."""
        from lift_memory.train.loop import Trainer

        return Trainer(
            self.adapter.model,
            self.adapter.parameters(),
            config or self.train_config,
            pad_id=self.pad_id,
            callbacks=callbacks,
            progress=self.progress,
            desc=desc,
        )

    def mixture(self, doc, tasks=None, edit: Edit | None = None) -> Mixture:
        """What training on the tokenized ``doc`` reads. Without ``tasks`` the source is the segments and windows
        alone; with ``tasks`` (a callable returning the synthesized tasks so far, which may grow during training)
        it is the task mixture over all of them. With ``edit``, only what touches a change, and a replay sample
        of the rest."""
        from lift_memory.tasks.formats import TaskRenderer
        from lift_memory.tasks.lm import lm_example
        from lift_memory.tasks.mixture import TaskMixture, window_tasks

        windows = self.segmenter.windows(doc, self.tokenizer)
        spans = self.segmenter.segments(doc) + windows
        share = 1.0
        if edit is not None:
            n_all, spans = len(spans), [s for s in spans if edit.keeps(s.char_start, s.char_end)]
            share = len(spans) / max(n_all, 1)
            windows = [w for w in windows if edit.keeps(w.char_start, w.char_end)]
            if tasks is not None:
                every = tasks
                tasks = lambda: [t for t in every() if edit.keeps(t.evidence_start, t.evidence_end)]  # noqa: E731
        examples = [lm_example(s, self.base.prefix_ids) for s in spans]
        if tasks is None:
            return Mixture(examples, examples, share)
        renderer = TaskRenderer(self.tokenizer, self.base.prefix_ids, self.base.eos_id)
        source = TaskMixture(
            examples,
            tasks,
            renderer,
            doc,
            windows=window_tasks(windows, doc.text),
            contextualize=self.config.tasks.contextualize,
            context_tokens=self.context_tokens(),
            retrieved=self.config.tasks.retrieved,
            snippet_tokens=self.config.retrieval.chunk_size,
            teacher=self.teacher(doc, renderer),
        )
        return Mixture(examples, source, share)

    def teacher(self, doc, renderer):
        """The context-distillation teacher for ``doc``, or None when the ``distill`` task weighs nothing."""
        from lift_memory.tasks.distill import TASK, Teacher

        if self.train_config.task_weights.get(TASK, 0.0) <= 0:
            return None
        configured = self.config.tasks.distill_tokens
        room = self.base.context_window // 2
        tokens = configured if configured is not None else room
        return Teacher(self.adapter.model, self.adapter.disabled, renderer, doc, context_tokens=tokens)

    def train(
        self, doc, doc_id: str, callbacks: Sequence[Any] = (), tasks=None, *, start=None, edit: Edit | None = None
    ):
        """Train the slot on ``doc``, from its initial state or from ``start`` (a previous adapter state).

        Args:
            doc: the tokenized document.
            doc_id: for the progress bar.
            callbacks: trainer callbacks.
            tasks: a started :class:`~lift_memory.tasks.pipeline.TaskStream`, whose tasks join the mixture as
                they arrive (None: segments and sentence windows only).
            start: continue from these adapter weights (incremental re-memorizing) instead of the initial ones.
            edit: train only on what touches the edit's changes and a replay sample of the rest, with the step,
                token and time budgets scaled by the share of examples kept.

        Returns:
            (training stats, adapter state, examples per task type, synthesis stats or None).
        """
        mix = self.mixture(doc, None if tasks is None else tasks.tasks, edit)
        config = self.train_config if edit is None else scaled_budget(self.train_config, mix.share)
        with self.lock:
            self.slot.reset()
            if start is not None:
                self.adapter.load_state_dict(start, source=f"the previous adapter of {doc_id!r}")
            stats = self.trainer(f"memorizing {doc_id}", callbacks, config).fit(mix.source)
            state = self.adapter.state_dict()
        counts: dict[str, int] = {}
        for e in mix.examples:
            counts[e.task] = counts.get(e.task, 0) + 1
        synthesis = None
        if tasks is not None:
            synthesis = tasks.wait()
            for t in tasks.tasks():
                counts[t.kind] = counts.get(t.kind, 0) + 1
        return stats, state, counts, synthesis

    # -- answering (the router's Answerer) ---------------------------------------------------------------

    def generation(self, **overrides: Any) -> GenerationConfig:
        """The configured decoding settings with ``overrides`` (those not None) applied."""
        return self.config.generation.updated(**overrides)

    def prompt(self, question: str, plan, generation: GenerationConfig, history=()):
        """The prompt for ``question`` under ``plan``: snippets and/or the document's ends, fitted to the window
        after the conversation's earlier turns (``history``: (role, text) pairs)."""
        from lift_memory.prompt import assemble, fit

        doc = self.document(plan.doc_id) if plan.doc_id is not None and plan.ends else None
        share = 1.0 if doc is None else plan.snippet_share
        limit = self.base.context_window - generation.max_new_tokens
        return fit(
            self.tokenizer,
            question,
            lambda budget: assemble(doc, plan.doc_id, plan.snippets, budget, share, self.count),
            limit,
            self.base.prefix_ids,
            history,
        )

    def answer(self, question: str, plan, history=(), **generation: Any) -> Answer:
        """Answer ``question`` as ``plan`` says (``generation``: overrides of the decoding settings)."""
        stream = self.stream(question, plan, history, **generation)
        for _ in stream:
            pass
        return stream.answer

    def stream(self, question: str, plan, history=(), **generation: Any) -> AnswerStream:
        """The answer's text piece by piece as it is generated; ``.answer`` holds the :class:`Answer` after."""
        return AnswerStream(self, question, plan, self.generation(**generation), history)

    # -- probes ------------------------------------------------------------------------------------------

    def complete(self, prompt: str, doc_id: str | None = None, max_new_tokens: int | None = None) -> str:
        """Continue ``prompt`` as it is, with ``doc_id``'s adapter (None: the base model)."""
        from lift_memory.generate import generate_ids

        ids = list(self.base.prefix_ids) + self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        with self.lock, self.use(doc_id):
            generation = self.generation(max_new_tokens=max_new_tokens)
            out = list(generate_ids(self.adapter.model, ids, generation, self.base.eos_ids))
        return self.tokenizer.decode(out, skip_special_tokens=True)

    def perplexity(self, text: str, doc_id: str | None = None, stride: int | None = None) -> float:
        """Perplexity of ``text`` with ``doc_id``'s adapter, in windows advancing by ``stride`` tokens."""
        import torch

        from lift_memory.segment import tokenize

        ids = list(tokenize(document_text(text), self.tokenizer).ids)
        window = self.base.context_window - len(self.base.prefix_ids)
        stride = stride or max(1, window // 2)
        nll, count, done = 0.0, 0, 0
        with self.lock, self.use(doc_id), torch.inference_mode():
            for begin in range(0, len(ids), stride):
                end = min(begin + window, len(ids))
                x = torch.tensor([list(self.base.prefix_ids) + ids[begin:end]], device=self.base.device)
                logp = torch.log_softmax(self.adapter.model(input_ids=x).logits[0, :-1].float(), -1)
                token_nll = -logp.gather(1, x[0, 1:, None])[:, 0]  # predicts the ids of x[1:]
                fresh = min(end - done, token_nll.numel())  # tokens no earlier window scored
                nll += token_nll[token_nll.numel() - fresh :].sum().item()
                count, done = count + fresh, end
                if end == len(ids):
                    break
        return math.exp(nll / max(count, 1))


class AnswerStream:
    """Iterates over an answer's text pieces as they are generated; afterwards ``answer`` holds the full
    :class:`~lift_memory.types.Answer` (route, adapter, snippets, token counts, timings).

    The concatenated pieces equal ``answer.text``.
    """

    def __init__(self, engine: Engine, question: str, plan, generation: GenerationConfig, history=()) -> None:
        self._engine, self._question, self._plan, self._generation = engine, question, plan, generation
        self._history = tuple(history)
        self.answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        from lift_memory.generate import cut_at_stops, generate_ids, stream_text
        from lift_memory.usage import PeakMemory

        eng, plan = self._engine, self._plan
        t0 = time.perf_counter()
        prompt = eng.prompt(self._question, plan, self._generation, self._history)
        t1 = time.perf_counter()
        ids: list[int] = []
        text: list[str] = []
        with eng.lock, eng.use(plan.adapter), PeakMemory(eng.base.device) as peak:
            t2 = time.perf_counter()
            tokens = generate_ids(eng.adapter.model, prompt.ids, self._generation, eng.base.eos_ids)
            for piece in cut_at_stops(stream_text(eng.tokenizer, _recorded(tokens, ids)), self._generation.stop):
                text.append(piece)
                yield piece
        t3 = time.perf_counter()
        coverage, notes = None, plan.notes
        if plan.doc_id is not None:
            coverage = prompt.context.coverage(eng.document(plan.doc_id), plan.doc_id)
            if coverage < 1 and plan.adapter is None:
                notes = (*notes, f"the prompt showed {coverage:.0%} of {plan.doc_id!r}; the rest was not read")
        self.answer = Answer(
            text="".join(text),
            route=plan.route,
            adapter=plan.adapter,
            doc_ids=tuple(dict.fromkeys([*([plan.doc_id] if plan.doc_id else []), *(s.doc_id for s in plan.snippets)])),
            snippets=prompt.context.snippets,
            prompt_tokens=len(prompt.ids),
            generated_tokens=len(ids),
            timings={
                "retrieve": round(plan.retrieve_seconds, 4),
                "prompt": round(t1 - t0, 4),
                "adapter": round(t2 - t1, 4),
                "generate": round(t3 - t2, 4),
                "total": round(plan.retrieve_seconds + t3 - t0, 4),
            },
            notes=notes,
            coverage=coverage,
            usage=Usage(
                tokens_read=len(prompt.ids),
                tokens_generated=len(ids),
                seconds=round(plan.retrieve_seconds + t3 - t0, 4),
                peak_memory_mb=None if peak.mb is None else round(peak.mb, 1),
                memory_kind=peak.kind,
            ),
        )


def _recorded(tokens: Iterator[int], into: list[int]) -> Iterator[int]:
    for token in tokens:
        into.append(token)
        yield token
