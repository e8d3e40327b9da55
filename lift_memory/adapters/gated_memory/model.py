"""Gated Memory on a Hugging Face model: hooks around the model's own attention, no copied attention classes.

Every attention module with ``q_proj`` / ``o_proj`` projections (Llama, Qwen2/Qwen3, Mistral, Gemma-2, ...)
gets one :class:`GatedMemoryLayer`:

- a forward hook on ``q_proj`` keeps the query *before* the rotary embedding, (B, T, H, D);
- a forward pre-hook on ``o_proj`` replaces the attention output by the gated blend with the memory, so the
  layer's own output projection follows, as in the paper;
- for the exact gate, the model's attention function (SDPA, eager, flash — whatever the config names) is
  wrapped so that it also measures the log-sum-exp of the scaled logits over the in-context keys, with the
  same mask, logit soft-capping and grouped-query layout; the attention output itself is untouched.

The adapter parameters live beside the model (the base model's state dict does not change). ``disabled()``
turns every hook into a pass-through, which is the exact base model. This module knows nothing about
training or files.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from lift_memory.adapters.base import Adapter
from lift_memory.adapters.gated_memory.layer import GatedMemoryLayer
from lift_memory.errors import ConfigError

_WRAPPED_PREFIX = "lift_gated_memory+"
_REGISTER_LOCK = threading.Lock()


def attention_modules(model) -> list[tuple[str, nn.Module]]:
    """The model's attention modules: those with q/k/v/o projections, in layer order."""
    found = [
        (name, m)
        for name, m in model.named_modules()
        if all(isinstance(getattr(m, p, None), nn.Linear) for p in ("q_proj", "k_proj", "v_proj", "o_proj"))
    ]
    if not found:
        raise ConfigError(
            f"{type(model).__name__} has no attention modules with q_proj/k_proj/v_proj/o_proj; "
            "Gated Memory supports Llama, Qwen2/3, Mistral and Gemma-2 style models"
        )
    return found


def _heads(module: nn.Module, config) -> tuple[int, int]:
    head_dim = getattr(module, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return module.q_proj.out_features // head_dim, head_dim


def context_logsumexp(module, query, key, attention_mask, scaling: float, softcap: float | None = None):
    """log Σ_j exp(logit_j) over the keys each query may see — exactly the softmax's normalizer.

    Args:
        module: the attention module (unused; the signature follows transformers' attention functions).
        query: (B, H, T, D) queries after the rotary embedding.
        key: (B, KV, S, D) keys after the rotary embedding (the cache's, when decoding).
        attention_mask: None (causal), a boolean mask (True: attend) or an additive float mask, (B, 1, T, S).
        scaling: the logits' scale (1/sqrt(D) unless the model says otherwise).
        softcap: Gemma-2's logit soft-capping, if any.

    Returns:
        (B, T, H) in float32.
    """
    b, h, t, d = query.shape
    kv, s = key.shape[1], key.shape[2]
    # Query heads j*g .. j*g+g-1 share key head j (grouped-query attention): group the queries instead of
    # copying the keys.
    q = (query * scaling).reshape(b, kv, (h // kv) * t, d)
    logits = torch.matmul(q, key.transpose(-1, -2)).view(b, h, t, s)  # (B, H, T, S)
    if logits.dtype != torch.float32:
        logits = logits.float()
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    if attention_mask is None:
        if t > 1:  # causal: query i sits at key position s - t + i (a single decoding query sees every key)
            visible = torch.ones(t, s, dtype=torch.bool, device=logits.device).tril(diagonal=s - t)
            logits = logits.masked_fill(~visible, float("-inf"))
    elif attention_mask.dtype == torch.bool:
        logits = logits.masked_fill(~attention_mask[..., :s], float("-inf"))
    else:
        logits = logits + attention_mask[..., :s].float()
    # torch.logsumexp guards against infinities op by op (~30 us per call here, most of a decoding step's
    # overhead); a row max does the same job in five small ops. A fully masked row gives -inf, i.e. gate 1.
    peak = logits.amax(dim=-1, keepdim=True).clamp(min=-1e30)  # finite even for a fully masked row
    lse = torch.log(torch.exp(logits - peak).sum(dim=-1)) + peak.squeeze(-1)
    return lse.transpose(1, 2)  # (B, T, H)


def _register_wrapped(original_name: str) -> str:
    """Register (once) an attention function that runs ``original_name`` and records the context LSE."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    name = _WRAPPED_PREFIX + original_name
    with _REGISTER_LOCK:
        if name in ALL_ATTENTION_FUNCTIONS:
            return name

        def attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
            if original_name == "eager":  # each modelling file has its own (Gemma-2's soft-caps the logits)
                original = sys.modules[type(module).__module__].eager_attention_forward
            else:
                original = ALL_ATTENTION_FUNCTIONS[original_name]
            out = original(module, query, key, value, attention_mask, scaling=scaling, **kwargs)
            state = getattr(module, "_lift_gated_memory", None)
            if state is not None and state.active:
                scale = scaling if scaling is not None else query.shape[-1] ** -0.5
                state.lse = context_logsumexp(module, query, key, attention_mask, scale, kwargs.get("softcap"))
            return out

        ALL_ATTENTION_FUNCTIONS.register(name, attention)
        if original_name in ALL_MASK_ATTENTION_FUNCTIONS:
            ALL_MASK_ATTENTION_FUNCTIONS.register(name, ALL_MASK_ATTENTION_FUNCTIONS[original_name])
    return name


class _LayerState:
    """What the hooks of one attention layer share during a forward pass."""

    def __init__(self, layer: GatedMemoryLayer, heads: int, head_dim: int) -> None:
        self.layer, self.heads, self.head_dim = layer, heads, head_dim
        self.active = True
        self.q: torch.Tensor | None = None
        self.lse: torch.Tensor | None = None
        self.record: list[torch.Tensor] | None = None  # gate statistics, when asked for


class GatedMemoryAdapter(Adapter):
    """LIFT's Gated Memory in every attention layer; ``config.gate`` is ``"paper"`` or ``"exact"``."""

    kind = "gated_memory"

    def __init__(self, model, config, *, builtin: bool = False) -> None:
        super().__init__()
        self.config = config
        self._model = model
        modules = attention_modules(model)
        model.requires_grad_(False)  # only the memory and gate parameters train
        param = next(model.parameters())
        self.layers = nn.ModuleList()
        self._states: list[_LayerState] = []
        self._handles = []
        log_mass = config.log_mass_init
        if log_mass is None:  # the memory starts as heavy as a full window of context
            log_mass = math.log(getattr(model.config, "max_position_embeddings", 2048))
        self.log_mass_init = log_mass
        for _, module in modules:
            heads, head_dim = _heads(module, model.config)
            layer = GatedMemoryLayer(heads, head_dim, config.gate, config.hidden_mult, log_mass)
            layer.to(device=param.device, dtype=param.dtype if param.dtype.is_floating_point else torch.float32)
            state = _LayerState(layer, heads, head_dim)
            self.layers.append(layer)
            self._states.append(state)
            module._lift_gated_memory = state
            self._handles.append(module.q_proj.register_forward_hook(self._keep_query(state)))
            self._handles.append(module.o_proj.register_forward_pre_hook(self._blend(state)))
        if config.gate == "exact":
            current = model.config._attn_implementation or "eager"
            if not current.startswith(_WRAPPED_PREFIX):
                model.config._attn_implementation = _register_wrapped(current)
        self._tensors = {name: p for name, p in self.layers.named_parameters()}

    @staticmethod
    def _keep_query(state: _LayerState):
        def hook(_module, _inputs, output):
            if state.active:
                state.q = output.view(*output.shape[:-1], state.heads, state.head_dim)  # (B, T, H, D)

        return hook

    @staticmethod
    def _blend(state: _LayerState):
        def pre_hook(_module, inputs):
            if not state.active or state.q is None:
                return None
            (attn,) = inputs
            shaped = attn.view(*attn.shape[:-1], state.heads, state.head_dim)  # (B, T, H, D)
            out, gate = state.layer(state.q, shaped, state.lse)
            state.q = state.lse = None
            if state.record is not None:
                state.record.append(gate.detach().float().mean(dim=(0, 1)))  # (H,)
            return (out.reshape(attn.shape),)

        return pre_hook

    @property
    def model(self):
        return self._model

    def parameters(self) -> list:
        return list(self._tensors.values())

    def named_tensors(self) -> dict[str, Any]:
        return self._tensors

    @contextlib.contextmanager
    def disabled(self) -> Iterator[None]:
        previous = [s.active for s in self._states]
        for s in self._states:
            s.active, s.q, s.lse = False, None, None
        try:
            yield
        finally:
            for s, was in zip(self._states, previous, strict=True):
                s.active = was

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "config": self.config.model_dump(mode="json"),
            "layers": len(self.layers),
            "parameters": self.n_parameters(),
        }

    def gate_statistics(self, **model_inputs) -> torch.Tensor:
        """Mean effective gate (s·g) per layer and head over the tokens of one forward pass: (L, H)."""
        for s in self._states:
            s.record = []
        try:
            with torch.inference_mode():
                self._model(**model_inputs)
            return torch.stack([torch.stack(s.record).mean(0) for s in self._states])
        finally:
            for s in self._states:
                s.record = None
