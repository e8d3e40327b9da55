"""``builtin:tiny``: a small Llama model and byte-level BPE tokenizer built on the user's machine.

Model hubs may be out of reach, so the project's default model is made from text that ships with Python
(``pydoc_data.topics``, the language reference behind ``help()``). The build is deterministic for its recipe,
takes a couple of minutes on two CPU cores, and is cached as an ordinary Hugging Face model directory, which
:mod:`lift_memory.models` then loads like any local model.

Pretraining mixes plain windows with windows in which an earlier passage is repeated and continued, so the
model learns to continue text it has already seen in its window: in-context methods (reading the document
or retrieved snippets) get a fair chance on this model, not only parametric memory.

The topics are split: most train the model, every ``_HELD_OUT_EVERY``-th is held out and serves as haystack
text (:func:`held_out_text`), so evaluations never test on pretraining text.

This module knows nothing about adapters, memories or retrieval.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

NAME = "builtin:tiny"
_RECIPE = {
    "version": 1,
    "vocab_size": 2048,
    "hidden_size": 128,
    "intermediate_size": 352,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "context_window": 512,
    "steps": 420,
    "batch_size": 8,
    "learning_rate": 3e-3,
    "warmup_steps": 30,
    "copy_fraction": 0.4,
    "random_copy_fraction": 0.2,
    "seed": 1234,
}
_HELD_OUT_EVERY = 6
_SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}


def _topics() -> list[tuple[str, str]]:
    import pydoc_data.topics

    return sorted(pydoc_data.topics.topics.items())


def training_text() -> list[str]:
    """The pydoc topics that pretrain ``builtin:tiny``."""
    return [text for i, (_, text) in enumerate(_topics()) if i % _HELD_OUT_EVERY != _HELD_OUT_EVERY - 1]


def held_out_text() -> list[str]:
    """The pydoc topics that ``builtin:tiny`` never trains on: default haystack text for evaluations."""
    return [text for i, (_, text) in enumerate(_topics()) if i % _HELD_OUT_EVERY == _HELD_OUT_EVERY - 1]


def recipe_id() -> str:
    """Identifies the recipe and its training text: a change to either builds a new model."""
    digest = hashlib.sha256(json.dumps(_RECIPE, sort_keys=True).encode())
    for text in training_text():
        digest.update(text.encode())
    return f"tiny-v{_RECIPE['version']}-{digest.hexdigest()[:10]}"


def cache_dir() -> Path:
    """Where built models live: ``$LIFT_MEMORY_CACHE``, else ``$XDG_CACHE_HOME/lift-memory``, else ``~/.cache``."""
    if env := os.environ.get("LIFT_MEMORY_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lift-memory"


def ensure_builtin(name: str = NAME, cache: Path | None = None, *, progress: bool = True) -> Path:
    """Return the directory of the built model ``name``, building it first if it is not cached.

    Concurrent callers wait on a file lock; the model appears atomically (built in a temporary directory,
    then renamed), so an interrupted build leaves nothing half-written behind.
    """
    from filelock import FileLock

    from lift_memory.errors import ConfigError

    if name != NAME:
        raise ConfigError(f"unknown built-in model {name!r}; available: {NAME!r}")
    root = Path(cache) if cache is not None else cache_dir()
    target = root / "builtin" / recipe_id()
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").exists():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
        try:
            _build(tmp, progress=progress)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _train_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_RECIPE["vocab_size"],
        special_tokens=list(_SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    bos = _SPECIAL_TOKENS["bos_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=_RECIPE["context_window"], **_SPECIAL_TOKENS)


def _batches(stream: list[int], rng: random.Random, steps: int):
    """Yield (B, T) batches: plain windows, and windows where an earlier passage repeats and continues."""
    import torch

    T, B = _RECIPE["context_window"], _RECIPE["batch_size"]
    for _ in range(steps):
        rows = []
        for _ in range(B):
            start = rng.randrange(0, len(stream) - 2 * T)
            window = stream[start : start + T]
            u = rng.random()
            if u < _RECIPE["random_copy_fraction"]:
                # Random tokens carry no language statistics: only copying predicts their repeat.
                n = rng.randrange(16, 96)
                noise = [rng.randrange(3, _RECIPE["vocab_size"]) for _ in range(n)]
                j = rng.randrange(0, T - 2 * n - 32)
                k = rng.randrange(j + n, T - n)
                window = window[:j] + noise + window[j : k - n] + noise + window[k - n :]
                window = window[:T]
            elif u < _RECIPE["random_copy_fraction"] + _RECIPE["copy_fraction"]:
                # At a random point j, jump back to an earlier position i and continue from there: the tokens
                # after the jump are predictable only by finding the passage earlier in the window.
                i = rng.randrange(0, T // 2)
                j = rng.randrange(i + 32, T - 16)
                window = window[:j] + stream[start + i : start + i + T - j]
            rows.append(window)
        yield torch.tensor(rows)


def _build(out: Path, *, progress: bool) -> None:
    import torch
    from tqdm.auto import tqdm
    from transformers import LlamaConfig, LlamaForCausalLM

    r = _RECIPE
    texts = training_text()
    tokenizer = _train_tokenizer(texts)
    stream: list[int] = []
    for text in texts:
        stream.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        stream.append(tokenizer.eos_token_id)

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=r["hidden_size"],
        intermediate_size=r["intermediate_size"],
        num_hidden_layers=r["num_hidden_layers"],
        num_attention_heads=r["num_attention_heads"],
        num_key_value_heads=r["num_key_value_heads"],
        max_position_embeddings=r["context_window"],
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    with _seeded(r["seed"]):
        model = LlamaForCausalLM(config)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=r["learning_rate"], betas=(0.9, 0.95), weight_decay=0.1)
        steps, warmup = r["steps"], r["warmup_steps"]

        def lr_at(step: int) -> float:  # linear warm-up, cosine decay to 10 %
            if step < warmup:
                return (step + 1) / warmup
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
        bar = tqdm(total=steps, desc=f"building {NAME} (once)", disable=not progress, unit="step")
        t0 = time.perf_counter()
        for batch in _batches(stream, random.Random(r["seed"]), steps):
            loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.close()
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    info = {"name": NAME, "recipe": r, "recipe_id": recipe_id(), "seconds": round(time.perf_counter() - t0, 1)}
    info["python"] = sys.version.split()[0]
    (out / "builtin.json").write_text(json.dumps(info, indent=2))


@contextlib.contextmanager
def _seeded(seed: int):
    import torch

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)
