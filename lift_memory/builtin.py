"""``builtin:tiny``: a small Llama model and byte-level BPE tokenizer built on the user's machine.

Model hubs may be out of reach, so the project's default model is made from text that ships with Python
(``pydoc_data.topics``, the language reference behind ``help()``, and the standard library's docstrings). The
build is deterministic for its recipe, takes two to three minutes on two CPU cores, and is cached as an
ordinary Hugging Face model directory, which :mod:`lift_memory.models` then loads like any local model.

Pretraining teaches the model to continue text it has already seen in its window, so that in-context methods
(reading the document or retrieved snippets) get a fair chance on it, not only parametric memory. That skill
(induction heads) did not form from language modelling alone within the budget; two phases make it form:
first rows of repeating random tokens, then language modelling on windows where passages come back. The
build records how well the result copies a repeated held-out passage (``builtin.json``).

The topics are split: most train the model, every ``_HELD_OUT_EVERY``-th is held out and serves as haystack
text (:func:`held_out_text`), so evaluations never test on pretraining text.

This module knows nothing about adapters, memories or retrieval.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from lift_memory.files import cache_dir

NAME = "builtin:tiny"
_RECIPE = {
    "version": 3,
    "vocab_size": 2048,
    "hidden_size": 128,
    "intermediate_size": 352,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "context_window": 512,
    "learning_rate": 2e-3,
    "warmup_steps": 30,
    # Phase 1: short rows of random tokens repeated with a random period. Only copying predicts them, which
    # forms induction heads (on natural text alone they did not form within budget). Formation is a sudden
    # drop of the loss after 800-1700 steps, depending on the seed: the phase ends once the smoothed loss is
    # below `copy_target_loss` (perfect copying gives ~2.7: the first period is unpredictable).
    "copy_max_steps": 2500,
    "copy_target_loss": 3.4,
    "copy_batch": 32,
    "copy_length": 32,
    # Phase 2: language modelling on full windows; in `repeat_fraction` of them a passage comes back later in
    # the window and continues as it did the first time, which carries the copying skill over to real text.
    "steps": 380,
    "batch_size": 8,
    "repeat_fraction": 0.7,
    "seed": 1234,
}
_HELD_OUT_EVERY = 6
_SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}


def _topics() -> list[tuple[str, str]]:
    import pydoc_data.topics

    return sorted(pydoc_data.topics.topics.items())


def training_text() -> list[str]:
    """What pretrains ``builtin:tiny``: the pydoc topics not held out, then the standard library's docstrings.

    The docstrings (about 1 MB, read with :mod:`ast`, nothing imported) make the corpus too large to memorize
    in the budget, so the model has to read repeated passages from its window instead of reciting them.
    """
    topics = [text for i, (_, text) in enumerate(_topics()) if i % _HELD_OUT_EVERY != _HELD_OUT_EVERY - 1]
    return topics + _stdlib_docstrings()


def _stdlib_docstrings(min_chars: int = 200) -> list[str]:
    import ast
    import sysconfig

    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "idlelib", "lib2to3", "tkinter", "turtledemo", "ensurepip", "site-packages", "pydoc_data"}
    docs = []
    for file in sorted(root.rglob("*.py")):
        if skip & set(file.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(file.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= min_chars:
                    docs.append(doc)
    return docs


def held_out_text() -> list[str]:
    """The pydoc topics that ``builtin:tiny`` never trains on: default haystack text for evaluations.

    (Some topics share one text, e.g. ``if`` and ``else``; a text that also trains the model is left out.)
    """
    topics = _topics()
    trained = {text for i, (_, text) in enumerate(topics) if i % _HELD_OUT_EVERY != _HELD_OUT_EVERY - 1}
    held = [text for i, (_, text) in enumerate(topics) if i % _HELD_OUT_EVERY == _HELD_OUT_EVERY - 1]
    return [text for text in held if text not in trained]


def recipe_id() -> str:
    """Identifies the recipe and its training text: a change to either builds a new model.

    Cheap on purpose (it runs at every load): the pydoc topics are hashed, the standard library's docstrings
    are identified by the exact Python build they ship with.
    """
    digest = hashlib.sha256(json.dumps(_RECIPE, sort_keys=True).encode() + sys.version.encode())
    for _, text in _topics():
        digest.update(text.encode())
    return f"tiny-v{_RECIPE['version']}-{digest.hexdigest()[:10]}"


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


def _copy_batches(rng: random.Random):
    """Phase 1: endless (B, 32) rows of random tokens repeating with a period of 8 to 15."""
    import torch

    T, V = _RECIPE["copy_length"], _RECIPE["vocab_size"]
    while True:
        rows = []
        for _ in range(_RECIPE["copy_batch"]):
            period = [rng.randrange(3, V) for _ in range(rng.randrange(8, T // 2))]
            rows.append((period * (T // len(period) + 1))[:T])
        yield torch.tensor(rows)


def _text_batches(stream: list[int], rng: random.Random, steps: int):
    """Phase 2: (B, T) windows of the corpus. In a repeat window a passage appears, other text follows, then
    the passage comes back and continues as it did the first time: predictable only by reading the window."""
    import torch

    T, B = _RECIPE["context_window"], _RECIPE["batch_size"]
    for _ in range(steps):
        rows = []
        for _ in range(B):
            start = rng.randrange(0, len(stream) - 2 * T)
            window = stream[start : start + T]
            if rng.random() < _RECIPE["repeat_fraction"]:
                n = rng.randrange(T // 8, T // 2)
                gap = stream[start + T : start + T + rng.randrange(0, T - 2 * n + 1)]
                window = (window[:n] + gap + window)[:T]
            rows.append(window)
        yield torch.tensor(rows)


def _build(out: Path, *, progress: bool) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    r = _RECIPE
    texts = training_text()
    tokenizer = _train_tokenizer(texts)
    stream: list[int] = []
    for text in texts:
        stream.extend(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
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
        tie_word_embeddings=True,  # copying a token is then the identity map of its embedding
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(r["seed"])
        model = LlamaForCausalLM(config)
        stats = _pretrain(model, stream, progress=progress)
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    info = {"name": NAME, "recipe": r, "recipe_id": recipe_id(), "python": sys.version.split()[0], **stats}
    info["in_context_copy_accuracy"] = _copy_accuracy(model, tokenizer)
    (out / "builtin.json").write_text(json.dumps(info, indent=2))


def _pretrain(model, stream: list[int], *, progress: bool) -> dict:
    import torch

    from lift_memory.progress import bar as progress_bar

    r = _RECIPE
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=r["learning_rate"], betas=(0.9, 0.95), weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / r["warmup_steps"]))
    rng = random.Random(r["seed"])
    bar = progress_bar(progress, desc=f"building {NAME} (once, ~2-3 min)", unit="step")
    started = time.perf_counter()

    def step(batch) -> float:
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        bar.update()
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        return loss.item()

    smoothed, copy_steps = 8.0, 0
    for copy_steps, batch in enumerate(_copy_batches(rng), start=1):
        smoothed = 0.95 * smoothed + 0.05 * step(batch)
        if smoothed < r["copy_target_loss"] or copy_steps >= r["copy_max_steps"]:
            break
    loss = float("nan")
    for batch in _text_batches(stream, rng, r["steps"]):
        loss = step(batch)
    bar.close()
    model.eval()
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "copy_phase": {"steps": copy_steps, "smoothed_loss": round(smoothed, 3)},
        "final_loss": round(loss, 3),
    }


def _copy_accuracy(model, tokenizer, n: int = 16) -> float:
    """Greedy next-token accuracy on the second occurrence of held-out passages repeated in the window."""
    import torch

    ids = tokenizer("\n\n".join(held_out_text()), add_special_tokens=False, verbose=False)["input_ids"]
    rng = random.Random(0)
    correct = total = 0
    with torch.inference_mode():
        for _ in range(n):
            start = rng.randrange(0, len(ids) - 400)
            passage, other = ids[start : start + 48], ids[start + 100 : start + 300]
            x = torch.tensor([[tokenizer.bos_token_id, *passage, *other, *passage]])
            predicted = model(input_ids=x).logits[0, -len(passage) : -1].argmax(-1)
            correct += int((predicted == x[0, -len(passage) + 1 :]).sum())
            total += len(passage) - 1
    return round(correct / total, 3)
