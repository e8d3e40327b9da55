"""Load a causal LM and its tokenizer: a hub id, a local directory, a GGUF file, a packaged model or
``builtin:tiny``.

Loading is the same code for all of them: :mod:`lift_memory.model_files` first turns a name into a local
folder (building ``builtin:tiny``, converting a GGUF file once), which is then loaded like any local model.
Only safetensors weights are accepted, and modelling code from the hub runs only when ``trust_remote_code``
is set. Nothing contacts a hub unless the name is a hub id.

A :class:`LoadedModel` also carries the fingerprints that tie an adapter to the exact base model and tokenizer
it was trained on. This module knows nothing about adapters or documents.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lift_memory.config import ModelConfig
from lift_memory.errors import ConfigError, ModelLoadError, first_line
from lift_memory.files import file_digest
from lift_memory.model_files import BUILTIN_PREFIX, locate
from lift_memory.progress import quiet_transformers


@dataclass
class LoadedModel:
    """A frozen base model, its tokenizer and what identifies them."""

    model: Any
    tokenizer: Any
    name: str
    fingerprint: str
    tokenizer_fingerprint: str
    context_window: int
    prefix_ids: tuple[int, ...]
    """Special tokens the tokenizer puts before text (BOS), prepended to every training example and prompt."""
    source: str = ""
    """Where the weights were loaded from: a hub id or a local folder (what other tools load the base from)."""

    @property
    def device(self):
        return next(self.model.parameters()).device

    @property
    def is_builtin(self) -> bool:
        return self.name.startswith(BUILTIN_PREFIX)

    @property
    def eos_id(self) -> int | None:
        """The token that ends an answer in training examples (the tokenizer's EOS, else the model's first)."""
        if self.tokenizer.eos_token_id is not None:
            return self.tokenizer.eos_token_id
        return min(self.eos_ids, default=None)

    @property
    def eos_ids(self) -> frozenset[int]:
        ids = self.model.generation_config.eos_token_id
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        return frozenset(ids)


def _resolve_device(device: str):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"model.device={device!r} is not a torch device; use 'auto', 'cpu' or 'cuda'") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"model.device={device!r} but this machine has no usable CUDA device; use device='cpu' or 'auto'"
        )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"model.device={device!r} but MPS is not available; use device='cpu' or 'auto'")
    return resolved


def _resolve_dtype(dtype: str, device):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)


def load_model(config: ModelConfig | str | None = None, *, progress: bool = True) -> LoadedModel:
    """Load the base model named by ``config`` (a :class:`ModelConfig` or just a name), frozen, in eval mode."""
    if config is None or isinstance(config, str):
        config = ModelConfig() if config is None else ModelConfig(name=config)
    device = _resolve_device(config.device)  # before any building or conversion
    with quiet_transformers(progress):
        source, local = locate(config.name, progress=progress)
        tokenizer, model = _load(config, source, local, device)
    model.to(device).eval().requires_grad_(False)
    # Documents are tokenized whole on purpose (segments and prompts are cut to the window afterwards), so the
    # tokenizer's "longer than the maximum sequence length" warning would only be noise.
    tokenizer.deprecation_warnings["sequence-length-is-longer-than-the-specified-maximum"] = True
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=config.name,
        fingerprint=_model_fingerprint(model, source, local),
        tokenizer_fingerprint=tokenizer_fingerprint(tokenizer),
        context_window=_context_window(model, tokenizer, config.context_window),
        prefix_ids=_prefix_ids(tokenizer),
        source=str(source),
    )


def _context_window(model, tokenizer, override: int | None) -> int:
    if override is not None:
        return override
    window = getattr(model.config, "max_position_embeddings", None) or 2048
    if 0 < getattr(tokenizer, "model_max_length", 0) < 10**7:
        window = min(window, tokenizer.model_max_length)
    return int(window)


def _prefix_ids(tokenizer) -> tuple[int, ...]:
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    return tuple(with_special[: len(with_special) - len(plain)]) if with_special[-len(plain) :] == plain else ()


def _load(config: ModelConfig, source: str, local: bool, device):
    """The tokenizer and the model from ``source`` (``local``: a folder), with the dtype fit for ``device``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {
        "revision": None if local else config.revision,
        "trust_remote_code": config.trust_remote_code,
        "local_files_only": local,
    }
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(
            source,
            dtype=_resolve_dtype(config.dtype, device),
            use_safetensors=True,
            attn_implementation=config.attn_implementation,
            **kwargs,
        )
    except (OSError, ValueError) as exc:
        hint = "check the path" if local else "check the id, or set HF_HUB_OFFLINE=0 / pass a local directory"
        raise ModelLoadError(f"cannot load model {config.name!r} ({hint}): {first_line(exc)}") from exc
    return tokenizer, model


def tokenizer_fingerprint(tokenizer) -> str:
    """A short hash of the tokenizer's vocabulary and special tokens."""
    vocab = sorted(tokenizer.get_vocab().items())
    special = sorted(map(str, tokenizer.all_special_tokens))
    return hashlib.sha256(json.dumps([vocab, special]).encode()).hexdigest()[:16]


def _model_fingerprint(model, source: str, local: bool) -> str:
    """A short hash of the architecture and of the weights: every byte of a local folder's safetensors files
    (:func:`~lift_memory.files.file_digest`), or the hub commit they were downloaded at."""
    config = model.config.to_dict()
    for volatile in ("_name_or_path", "transformers_version", "_commit_hash", "dtype", "torch_dtype"):
        config.pop(volatile, None)
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    if local:
        for file in sorted(Path(source).glob("*.safetensors")):
            digest.update(file.name.encode() + file_digest(file).encode())
    else:
        digest.update(str(getattr(model.config, "_commit_hash", None) or source).encode())
    return digest.hexdigest()[:16]
