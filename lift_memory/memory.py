"""``LiftMemory``: memorize documents into adapters of one base model, and answer from them.

The facade wires the parts and owns no algorithm: segmentation (:mod:`~lift_memory.segment`), examples
(:mod:`~lift_memory.tasks`), the adapter slot (:mod:`~lift_memory.adapters`), the trainer
(:mod:`~lift_memory.train`), the bank on disk (:mod:`~lift_memory.bank`), prompts and decoding. The trainer
and the bank never meet: the facade hands the trained tensors from one to the other.

The base model is loaded once, lazily (listing or forgetting memories never loads it); answering from
another document copies that document's adapter weights into the slot.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lift_memory.bank import AdapterBank
from lift_memory.config import GenerationConfig, MemoryConfig
from lift_memory.errors import AdapterMismatchError, DocumentExistsError
from lift_memory.ids import default_doc_id, document_hash, document_text, validate_id
from lift_memory.types import Answer, MemoryRecord, TrainStats

_STATE_CACHE = 8  # adapter states kept in RAM, most recently used first


def default_root() -> Path:
    """``$LIFT_MEMORY_HOME``, else ``$XDG_DATA_HOME/lift-memory``, else ``~/.local/share/lift-memory``."""
    if env := os.environ.get("LIFT_MEMORY_HOME"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "lift-memory"


class _Engine:
    """The loaded base model with its adapter slot attached, and which document's weights are in it."""

    def __init__(self, config: MemoryConfig, progress: bool) -> None:
        from lift_memory.adapters.registry import attach
        from lift_memory.models import load_model
        from lift_memory.segment import Segmenter

        self.base = load_model(config.model, progress=progress)
        self.adapter = attach(self.base.model, config.adapter, seed=config.train.seed, builtin=self.base.is_builtin)
        room = self.base.context_window - len(self.base.prefix_ids)
        s = config.segment
        self.segmenter = Segmenter.for_model(s.length, s.overlap, s.window, max_length=room)
        self.train = config.train.resolved(builtin=self.base.is_builtin)
        self.loaded: str | None = None  # doc_id whose weights are in the slot
        self.states: OrderedDict[str, dict[str, Any]] = OrderedDict()

    @property
    def tokenizer(self):
        return self.base.tokenizer

    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)


class LiftMemory:
    """Memorize long documents into a model's parameters and answer questions from them.

    Example::

        from lift_memory import LiftMemory

        memory = LiftMemory()                       # builtin:tiny, memories under the user data dir
        record = memory.memorize(open("report.txt").read(), title="Q3 report")
        print(memory.ask("What was the revenue?", record.doc_id).text)

    Args:
        config: everything configurable; defaults suit ``builtin:tiny`` on a CPU.
        root: memory directory, overriding ``config.root``.
        model: base model name, overriding ``config.model.name``.
        progress: show progress bars for model building and training.
    """

    def __init__(
        self,
        config: MemoryConfig | None = None,
        *,
        root: str | os.PathLike[str] | None = None,
        model: str | None = None,
        progress: bool = True,
    ) -> None:
        config = config or MemoryConfig()
        if model is not None:
            config = config.model_copy(update={"model": config.model.model_copy(update={"name": model})})
        self.config = config
        self.root = Path(root if root is not None else config.root or default_root()).expanduser()
        self.bank = AdapterBank(self.root)
        self.progress = progress
        self._engine: _Engine | None = None
        self._lock = threading.RLock()

    # -- the model ---------------------------------------------------------------------------------------

    @property
    def engine(self) -> _Engine:
        """The loaded model and adapter slot (loaded on first use)."""
        with self._lock:
            if self._engine is None:
                self._engine = _Engine(self.config, self.progress)
            return self._engine

    def _settings(self) -> dict[str, Any]:
        """What, besides the text and the base model, determines a trained adapter."""
        c = self.config
        return {
            "segment": c.segment.model_dump(mode="json"),
            "train": self.engine.train.model_dump(mode="json"),
            "adapter": c.adapter.model_dump(mode="json"),
        }

    def _use(self, doc_id: str | None) -> None:
        """Put ``doc_id``'s adapter weights in the slot (None: no document; the base model answers)."""
        eng = self.engine
        if doc_id is None or doc_id == eng.loaded:
            return
        state = eng.states.get(doc_id)
        if state is None:
            self._check_compatible(self.bank.manifest(doc_id))
            state = self.bank.load_state(doc_id)
            if state is None:
                raise AdapterMismatchError(f"{doc_id!r} was stored without an adapter; ask it with mode='icl'")
        eng.adapter.load_state_dict(state, source=f"adapter of {doc_id!r}")
        eng.states[doc_id] = state
        eng.states.move_to_end(doc_id)
        while len(eng.states) > _STATE_CACHE:
            eng.states.popitem(last=False)
        eng.loaded = doc_id

    def _check_compatible(self, manifest: dict[str, Any]) -> None:
        eng, doc = self.engine, manifest["doc_id"]
        base = manifest["base"]
        if base["fingerprint"] != eng.base.fingerprint or base["tokenizer"] != eng.base.tokenizer_fingerprint:
            raise AdapterMismatchError(
                f"{doc!r} was memorized with base model {base['name']!r} (fingerprint {base['fingerprint']}), "
                f"this memory runs {eng.base.name!r} ({eng.base.fingerprint}); open it with that model or "
                "memorize the document again"
            )
        stored, live = dict(manifest.get("adapter") or {}), eng.adapter.describe()
        stored.pop("file", None)
        if stored and stored != live:
            raise AdapterMismatchError(
                f"{doc!r} has a {stored.get('kind')} adapter {stored.get('config')}, this memory uses "
                f"{live['kind']} {live['config']}; open it with the same adapter config or memorize it again"
            )

    # -- memorize ----------------------------------------------------------------------------------------

    def memorize(
        self,
        text: str | bytes,
        doc_id: str | None = None,
        title: str | None = None,
        *,
        replace: bool = False,
        callbacks: Sequence[Any] = (),
    ) -> MemoryRecord:
        """Fine-tune an adapter on ``text`` and store it; return what was stored.

        Memorizing identical text with the same model and settings again is a no-op that returns the stored
        record. Under an id that already holds a different text, pass ``replace=True``.

        Args:
            text: the document (``str``, or UTF-8 ``bytes``).
            doc_id: a safe name to store it under; default ``doc-<content hash>``.
            title: a human-readable title kept in the record.
            replace: allow replacing a different document stored under ``doc_id``.
            callbacks: trainer callbacks, each called with a ``StepInfo`` after every step.

        Raises:
            InvalidDocumentError: empty, whitespace-only or binary input.
            InvalidIdError: ``doc_id`` is not a safe name.
            DocumentExistsError: ``doc_id`` holds another text and ``replace`` is False.
        """
        from lift_memory.segment import tokenize
        from lift_memory.tasks.lm import lm_examples
        from lift_memory.train.loop import Trainer

        text = document_text(text)
        digest = document_hash(text)
        doc_id = validate_id(doc_id) if doc_id is not None else default_doc_id(text)
        with self._lock:
            eng = self.engine
            if doc_id in self.bank:
                old = self.bank.manifest(doc_id)
                if old["doc_hash"] == digest and old["base"]["fingerprint"] == eng.base.fingerprint:
                    if old.get("settings") == self._settings():
                        return record_from_manifest(old)
                elif old["doc_hash"] != digest and not replace:
                    raise DocumentExistsError(
                        f"doc_id {doc_id!r} already holds a different document; pass replace=True "
                        "(CLI: --replace) or choose another id"
                    )
            doc = tokenize(text, eng.tokenizer)
            examples = lm_examples(doc, eng.segmenter, eng.tokenizer, eng.base.prefix_ids)
            eng.adapter.reset()
            eng.loaded = None
            trainer = Trainer(
                eng.adapter.model,
                eng.adapter.parameters(),
                eng.train,
                pad_id=eng.pad_id,
                callbacks=callbacks,
                progress=self.progress,
                desc=f"memorizing {doc_id}",
            )
            stats = trainer.fit(examples)
            state = eng.adapter.state_dict()
            manifest = {
                "doc_id": doc_id,
                "title": title,
                "doc_hash": digest,
                "n_chars": len(text),
                "n_tokens": len(doc),
                "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "base": {
                    "name": eng.base.name,
                    "fingerprint": eng.base.fingerprint,
                    "tokenizer": eng.base.tokenizer_fingerprint,
                },
                "adapter": eng.adapter.describe(),
                "trained": True,
                "reason": f"trained {stats.steps} steps ({stats.stop_reason})",
                "train": stats.to_dict(),
                "tasks": _count_tasks(examples),
                "settings": self._settings(),
            }
            self.bank.save(doc_id, text=text, manifest=manifest, state=state)
            eng.states.pop(doc_id, None)
            eng.states[doc_id] = state
            eng.loaded = doc_id
            return record_from_manifest(self.bank.manifest(doc_id))

    # -- ask ---------------------------------------------------------------------------------------------

    def _generation(self, max_new_tokens: int | None) -> GenerationConfig:
        g = self.config.generation
        return g if max_new_tokens is None else g.model_copy(update={"max_new_tokens": max_new_tokens})

    def _prompt(self, question: str, doc_id: str, generation: GenerationConfig):
        from lift_memory.prompt import fit, head_tail
        from lift_memory.segment import tokenize

        eng = self.engine
        doc = tokenize(self.bank.text(doc_id), eng.tokenizer)
        limit = eng.base.context_window - generation.max_new_tokens
        return fit(eng.tokenizer, question, lambda budget: head_tail(doc, budget), limit, eng.base.prefix_ids)

    def stream(self, question: str, doc_id: str, *, max_new_tokens: int | None = None) -> Iterator[str]:
        """Like :meth:`ask`, yielding the answer's text as it is generated."""
        from lift_memory.generate import generate_ids, stream_text

        generation = self._generation(max_new_tokens)
        self.bank.manifest(doc_id)  # unknown or unsafe ids fail here, before any model is loaded
        with self._lock:
            prompt = self._prompt(question, doc_id, generation)
            self._use(doc_id)
            eng = self.engine
            ids = generate_ids(eng.adapter.model, prompt.ids, generation, eng.base.eos_ids)
            yield from stream_text(eng.tokenizer, ids)

    def ask(self, question: str, doc_id: str, *, max_new_tokens: int | None = None) -> Answer:
        """Answer ``question`` with ``doc_id``'s adapter on the model and the document's head and tail in the prompt.

        Raises:
            UnknownDocumentError: nothing is stored under ``doc_id``.
            AdapterMismatchError: the stored adapter belongs to another base model, tokenizer or adapter layout.
        """
        from lift_memory.generate import generate_ids

        generation = self._generation(max_new_tokens)
        self.bank.manifest(doc_id)  # unknown or unsafe ids fail here, before any model is loaded
        with self._lock:
            t0 = time.perf_counter()
            prompt = self._prompt(question, doc_id, generation)
            t1 = time.perf_counter()
            self._use(doc_id)
            t2 = time.perf_counter()
            eng = self.engine
            ids = list(generate_ids(eng.adapter.model, prompt.ids, generation, eng.base.eos_ids))
            t3 = time.perf_counter()
        return Answer(
            text=eng.tokenizer.decode(ids, skip_special_tokens=True),
            route="lift",
            adapter=doc_id,
            doc_ids=(doc_id,),
            prompt_tokens=len(prompt.ids),
            generated_tokens=len(ids),
            timings={"prompt": t1 - t0, "adapter": t2 - t1, "generate": t3 - t2, "total": t3 - t0},
        )

    def complete(self, prompt: str, doc_id: str | None = None, *, max_new_tokens: int | None = None) -> str:
        """Continue ``prompt`` as it is, with ``doc_id``'s adapter (None: the base model); no context added.

        This is the bare-prompt probe of parametric memory: what the adapted model recalls by itself.
        """
        from lift_memory.generate import generate_ids

        generation = self._generation(max_new_tokens)
        with self._lock:
            eng = self.engine
            ids = list(eng.base.prefix_ids) + eng.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            with self._adapter(doc_id):
                out = list(generate_ids(eng.adapter.model, ids, generation, eng.base.eos_ids))
        return eng.tokenizer.decode(out, skip_special_tokens=True)

    def perplexity(self, text: str, doc_id: str | None = None, *, stride: int | None = None) -> float:
        """Perplexity of ``text`` under the model with ``doc_id``'s adapter (None: the base model).

        Long texts are scored in windows of the model's context that advance by ``stride`` tokens (default:
        half a window), each token scored once with the most context a window gives it.
        """
        import torch

        from lift_memory.segment import tokenize

        with self._lock:
            eng = self.engine
            ids = list(tokenize(document_text(text), eng.tokenizer).ids)
            window = eng.base.context_window - len(eng.base.prefix_ids)
            stride = stride or max(1, window // 2)
            nll, count, done = 0.0, 0, 0
            with self._adapter(doc_id), torch.inference_mode():
                for begin in range(0, len(ids), stride):
                    end = min(begin + window, len(ids))
                    x = torch.tensor([list(eng.base.prefix_ids) + ids[begin:end]], device=eng.base.device)
                    logp = torch.log_softmax(eng.adapter.model(input_ids=x).logits[0, :-1].float(), -1)
                    token_nll = -logp.gather(1, x[0, 1:, None])[:, 0]  # predicts the ids of x[1:]
                    fresh = min(end - done, token_nll.numel())  # tokens no earlier window scored
                    nll += token_nll[token_nll.numel() - fresh :].sum().item()
                    count, done = count + fresh, end
                    if end == len(ids):
                        break
        return math.exp(nll / max(count, 1))

    def _adapter(self, doc_id: str | None):
        """Context: ``doc_id``'s adapter in the slot, or the adapter disabled for None."""
        if doc_id is None:
            return self.engine.adapter.disabled()
        self._use(doc_id)
        return contextlib.nullcontext()

    # -- the bank ----------------------------------------------------------------------------------------

    def get(self, doc_id: str) -> MemoryRecord:
        """The stored record of ``doc_id``."""
        return record_from_manifest(self.bank.manifest(doc_id))

    def list(self) -> list[MemoryRecord]:
        """Records of all stored documents, by id."""
        return [self.get(doc_id) for doc_id in self.bank.ids()]

    def forget(self, doc_id: str) -> None:
        """Delete ``doc_id``'s document, adapter and manifest."""
        with self._lock:
            self.bank.delete(doc_id)
            if self._engine is not None:
                self._engine.states.pop(doc_id, None)
                if self._engine.loaded == doc_id:
                    self._engine.loaded = None


def _count_tasks(examples) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in examples:
        counts[e.task] = counts.get(e.task, 0) + 1
    return counts


def record_from_manifest(m: dict[str, Any]) -> MemoryRecord:
    """The :class:`MemoryRecord` view of a stored manifest."""
    return MemoryRecord(
        doc_id=m["doc_id"],
        title=m.get("title"),
        doc_hash=m["doc_hash"],
        n_chars=m["n_chars"],
        n_tokens=m["n_tokens"],
        base_model=m["base"]["name"],
        adapter=m.get("adapter"),
        trained=m["trained"],
        reason=m["reason"],
        created=m["created"],
        train=TrainStats(**m["train"]) if m.get("train") else None,
        tasks=m.get("tasks", {}),
        indexed=m.get("indexed", False),
        extra={"base": m["base"], "settings": m.get("settings", {})},
    )
