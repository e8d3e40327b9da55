"""Pre-LIFT: train what per-document LIFT starts from, on many *other* documents.

The LIFT paper fine-tunes the model on other long texts with the same tasks before test time, so that it is
used to being LIFTed; the authors released no code or settings for it, and their Gated Memory always started
from one random initialization. Here, a corpus (a folder of ``.txt`` files) is split — a held-out part is
never trained on — and the adapter slot trains on the training part's full LIFT mixture (segments, sentence
windows, recall and order tasks, contextualized variants), starting from its usual initialization. The
result is the adapter's *initial state* for every later document: ``MemoryConfig(start=<out dir>)``.

Runs are resumable: a checkpoint (adapter, optimizer, scheduler, step) is written atomically every
``checkpoint_every`` steps, and a rerun with the same corpus, configuration and seed continues from it —
batches are replayed, so the result equals an uninterrupted run's. Loading a starting point trained on another
base model, tokenizer or adapter layout is refused.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lift_memory.bank import AdapterBank
from lift_memory.config import MemoryConfig
from lift_memory.errors import ConfigError, InvalidDocumentError
from lift_memory.files import atomic_write
from lift_memory.ids import document_text
from lift_memory.slot import START_FILE, START_MANIFEST

_CHECKPOINT = "checkpoint"


@dataclass(frozen=True)
class Split:
    """Which corpus files train and which are held out (by name, decided by a hash: stable as files come and go)."""

    train: list[Path]
    held_out: list[Path]


def split_corpus(corpus: str | Path, held_out: float, seed: int = 0) -> Split:
    """The ``.txt`` files under ``corpus``, a fraction ``held_out`` of them (at least one) set aside."""
    files = sorted(Path(corpus).rglob("*.txt"))
    if len(files) < 2:
        raise ConfigError(f"corpus {str(corpus)!r} needs at least two .txt files (one is held out), found {len(files)}")

    def rank(path: Path) -> str:
        return hashlib.sha256(f"{seed}:{path.relative_to(corpus)}".encode()).hexdigest()

    n_held = min(len(files) - 1, max(1, round(held_out * len(files))))
    held = set(sorted(files, key=rank)[:n_held])
    return Split([f for f in files if f not in held], [f for f in files if f in held])


class _Corpus:
    """The training mixture over several documents: each document's own mixture, concatenated per epoch."""

    def __init__(self, mixtures) -> None:
        self.mixtures = mixtures

    def epoch(self, index: int, rng: random.Random):
        return [e for m in self.mixtures for e in m.epoch(index, rng)]


def _save_checkpoint(folder: Path, checkpoint, fingerprint: str) -> None:
    from safetensors.torch import save

    tensors, meta = {}, {"fingerprint": fingerprint, "step": checkpoint.step, "tokens": checkpoint.tokens}
    meta.update({"seconds": checkpoint.seconds, "scheduler": checkpoint.scheduler, "plateau": checkpoint.plateau})
    for i, p in enumerate(checkpoint.parameters):
        tensors[f"param.{i}"] = p.contiguous()
    opt_state = {}
    for key, state in checkpoint.optimizer["state"].items():
        opt_state[str(key)] = sorted(state)
        for name, value in state.items():
            tensors[f"opt.{key}.{name}"] = value.contiguous()
    meta.update({"optimizer_state": opt_state, "param_groups": checkpoint.optimizer["param_groups"]})
    atomic_write(folder / "state.safetensors", save(tensors))
    atomic_write(folder / "checkpoint.json", json.dumps(meta).encode())  # last: names a complete state


def _load_checkpoint(folder: Path, fingerprint: str):
    from safetensors.torch import load_file

    from lift_memory.train.loop import Checkpoint

    try:
        meta = json.loads((folder / "checkpoint.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("fingerprint") != fingerprint:
        return None  # another corpus, configuration or seed: start over
    tensors = load_file(folder / "state.safetensors")
    n = sum(1 for k in tensors if k.startswith("param."))
    state = {
        int(k): {name: tensors[f"opt.{k}.{name}"] for name in names} for k, names in meta["optimizer_state"].items()
    }
    return Checkpoint(
        step=meta["step"],
        tokens=meta["tokens"],
        seconds=meta["seconds"],
        parameters=[tensors[f"param.{i}"] for i in range(n)],
        optimizer={"state": state, "param_groups": meta["param_groups"]},
        scheduler=meta["scheduler"],
        plateau=meta["plateau"],
    )


def prelift(
    corpus: str | Path,
    out: str | Path,
    config: MemoryConfig | None = None,
    *,
    held_out: float = 0.2,
    checkpoint_every: int = 50,
    resume: bool = True,
    progress: bool = True,
    callbacks=(),
) -> dict[str, Any]:
    """Train a starting point for per-document LIFT on ``corpus``; write it to ``out``; return its manifest.

    Args:
        corpus: a folder of ``.txt`` files.
        out: output folder (``start.safetensors``, ``prelift.json``, checkpoints).
        config: model, adapter, segmentation, tasks and training budget (``train.max_steps`` /
            ``max_seconds`` bound the whole run). Default: ``MemoryConfig()``.
        held_out: fraction of the files never trained on (listed in the manifest, for evaluation).
        checkpoint_every: steps between checkpoints.
        resume: continue from a checkpoint of the same run, if there is one.
        progress: show a progress bar.
        callbacks: trainer callbacks (called with a ``StepInfo`` after every step).
    """
    from lift_memory.engine import Engine
    from lift_memory.segment import tokenize
    from lift_memory.tasks.extractive import ExtractiveGenerator

    config = config or MemoryConfig()
    out = Path(out)
    split = split_corpus(corpus, held_out, config.train.seed)
    texts = []
    for path in split.train:
        try:
            texts.append((path, document_text(path.read_bytes())))
        except InvalidDocumentError as exc:
            raise InvalidDocumentError(f"{path}: {exc}") from exc
    engine = Engine(config.model_copy(update={"start": None}), AdapterBank(out), progress=progress)
    generator = ExtractiveGenerator(seed=config.train.seed)
    mixtures = []
    for _, text in texts:
        tasks = generator_tasks(generator, text) if config.tasks.generator == "extractive" else []
        mixtures.append(engine.mixture(tokenize(text, engine.tokenizer), lambda tasks=tasks: tasks).source)
    corpus_id = hashlib.sha256("".join(f"{p.name}:{hashlib.sha256(t.encode()).hexdigest()}" for p, t in texts).encode())
    # What a checkpoint must agree on to be continued: everything but the budget (a run may be extended).
    budget = {"max_steps", "max_tokens", "max_seconds", "max_epochs"}
    settings = config.model_dump(mode="json", exclude={"train": budget, "root": True})
    fingerprint = hashlib.sha256(
        f"{corpus_id.hexdigest()}|{engine.base.fingerprint}|{json.dumps(settings, sort_keys=True)}".encode()
    ).hexdigest()[:16]
    folder = out / _CHECKPOINT
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = _load_checkpoint(folder, fingerprint) if resume else None
    engine.slot.reset()
    stats = engine.trainer("pre-LIFT", callbacks).fit(
        _Corpus(mixtures),
        resume=checkpoint,
        checkpoint_every=checkpoint_every,
        on_checkpoint=lambda c: _save_checkpoint(folder, c, fingerprint),
    )
    from safetensors.torch import save

    atomic_write(out / START_FILE, save(engine.adapter.state_dict()))
    manifest = {
        "format": 1,
        "base": {
            "name": engine.base.name,
            "fingerprint": engine.base.fingerprint,
            "tokenizer": engine.base.tokenizer_fingerprint,
        },
        "adapter": engine.adapter.describe(),
        "corpus": {
            "path": str(corpus),
            "train": [p.name for p, _ in texts],
            "held_out": [p.name for p in split.held_out],
            "id": corpus_id.hexdigest()[:16],
        },
        "train": stats.to_dict(),
        "resumed_from_step": checkpoint.step if checkpoint else 0,
        "settings": {
            "train": engine.train_config.model_dump(mode="json"),
            "tasks": config.tasks.model_dump(mode="json"),
        },
    }
    atomic_write(out / START_MANIFEST, json.dumps(manifest, indent=2).encode())
    return manifest


def generator_tasks(generator, text: str):
    """The generator's tasks for ``text``, synchronously (the extractive generator needs no concurrency)."""
    import asyncio

    return [t for unit in generator.plan(text) for t in asyncio.run(generator.agenerate(text, unit, 0))]
