"""One forward pass of a causal LM, written once for every transformers version we support.

transformers renamed the KV-cache argument (``past_key_values`` became ``cache`` in 5.x, the old name
deprecated) and not every model takes ``logits_to_keep``; callers here say what they want (a cache to extend,
logits for the last positions only) and this module spells it the way the loaded model's ``forward`` expects.
Works through peft wrappers. It knows nothing about adapters, documents or training.
"""

from __future__ import annotations

import inspect
from functools import cache
from typing import Any


@cache
def _parameters(model_cls: type) -> frozenset[str]:
    return frozenset(inspect.signature(model_cls.forward).parameters)


def _inner(model):
    """The transformers model under any peft wrapper."""
    return getattr(model, "get_base_model", lambda: model)()


def run(model, input_ids, *, attention_mask=None, keep: int | None = None, cache: Any = None, use_cache: bool = False):
    """``model``'s output for ``input_ids`` (B, T); its logits cover only the last ``keep`` positions when the
    model can skip the others (with a large vocabulary the (T, V) projection is a large part of the cost), and
    its ``cache`` is the KV cache to continue from (None: a fresh one when ``use_cache``).

    Returns:
        (logits (B, keep or T, V), the cache after this pass or None).
    """
    params = _parameters(type(_inner(model)))
    kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": use_cache}
    if keep is not None and "logits_to_keep" in params:
        kwargs["logits_to_keep"] = keep
    if cache is not None:
        kwargs["cache" if "cache" in params else "past_key_values"] = cache
    out = model(**kwargs)
    new_cache = getattr(out, "cache", None) if "cache" in params else getattr(out, "past_key_values", None)
    logits = out.logits
    if keep is not None and logits.shape[1] > keep:  # a model without logits_to_keep computed them all
        logits = logits[:, -keep:]
    return logits, new_cache


_PLAIN_HEAD = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "phi3", "olmo2"}
"""Model types whose logits are exactly ``lm_head(decoder(...).last_hidden_state)``: no soft-capping or scaling
after the head, so the two halves can be run apart (see :func:`split_head`)."""


def split_head(model):
    """``(decoder, head)`` of ``model`` when its logits are the head applied to the decoder's last hidden
    state (a known plain architecture), else None. Running them apart lets a caller compute the loss of a
    long sequence a slice of positions at a time instead of materializing (tokens x vocabulary) logits."""
    inner = _inner(model)
    if getattr(inner.config, "model_type", None) not in _PLAIN_HEAD:
        return None
    try:
        return inner.get_decoder(), inner.get_output_embeddings()
    except (AttributeError, NotImplementedError, ValueError):
        return None


class Checkpointing:
    """Activation checkpointing that can be switched per forward pass, for a training run.

    Inside ``with Checkpointing(model) as ckpt:``, ``ckpt.use(True)`` makes the next passes keep only each
    layer's input and recompute the rest during the backward pass (about 1.5x the compute of a frozen-base
    pass, a fraction of the memory); ``ckpt.use(False)`` keeps all activations. A model that does not support
    checkpointing runs without it (``available`` is False). On exit the model is as it was.
    """

    def __init__(self, model) -> None:
        self.model = _inner(model)
        self.available = bool(getattr(self.model, "supports_gradient_checkpointing", False))
        self._flags: list[Any] = []

    def __enter__(self) -> Checkpointing:
        if self.available:
            enable = getattr(self.model, "activation_checkpointing_enable", None)
            if enable is not None:
                enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:  # transformers < 5
                self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            self._flags = [m for m in self.model.modules() if hasattr(m, "gradient_checkpointing")]
            self.use(False)
        return self

    def use(self, on: bool) -> None:
        """Checkpoint the following passes (when available)."""
        for module in self._flags:
            module.gradient_checkpointing = on

    def __exit__(self, *exc: object) -> None:
        if self.available:
            disable = getattr(self.model, "activation_checkpointing_disable", None)
            (disable or self.model.gradient_checkpointing_disable)()
            self.model.disable_input_require_grads()
