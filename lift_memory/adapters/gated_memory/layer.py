"""One attention layer's Gated Memory: a memory function and a gate per query head (LIFT v2, arXiv 2502.14644).

For head h with query q (taken *before* the rotary embedding), head dim d:

    m_h(q) = W2 · SiLU(W1 · q)                 d -> 2d -> d              the memorized input's answer
    paper:  g_h(q) = sigmoid(3 · (z_h(q) - 1)),  z_h(q) = U2 · SiLU(U1 · q)   (d -> floor(sqrt d) -> 1, no bias)
    exact:  g_h(q) = sigmoid(l_h(q) - LSE_C(q)), l_h(q) = U2 · SiLU(U1 · q) + b_h
    o_h = attn_h + s_h · g_h · (m_h(q) - attn_h)

The exact gate follows from splitting softmax attention over [memory M; context C]:
Attn(q, M ∪ C) = g · Attn(q, M) + (1 - g) · Attn(q, C) with g = Z_M / (Z_M + Z_C) = sigmoid(log Z_M - log Z_C),
Z_X = Σ_{i in X} exp(q·k_i / sqrt d). M is fixed, so Attn(q, M) and log Z_M are functions of q alone: m_h
learns the first, l_h the second, and LSE_C(q) = log Z_C is measured on the in-context keys.

``s_h`` is a per-head scale initialized to 0, so an attached, untrained adapter is exactly the base model (the
reference's gate starts near sigmoid(-3) = 0.05 and changes the model before any training); at s_h = 1 the
blend is the paper's. This module is pure tensor math: it knows nothing about where q, attn or LSE come from.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def blend(attn: torch.Tensor, memory: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """``attn + gate * (memory - attn)``: the gated mix of in-context attention and memory.

    Args:
        attn: (B, T, H, D) attention over the context.
        memory: (B, T, H, D) the memory function's output.
        gate: (B, T, H, 1) weight of the memory, already scaled.
    """
    return torch.lerp(attn, memory, gate)  # one op: decoding pays per op


def exact_gate(log_mass: torch.Tensor, lse_context: torch.Tensor) -> torch.Tensor:
    """``Z_M / (Z_M + Z_C)`` from ``log Z_M`` and ``log Z_C`` (both (B, T, H)), computed stably."""
    return torch.sigmoid(log_mass - lse_context)


class GatedMemoryLayer(nn.Module):
    """Memory and gate parameters of one attention layer, for ``n_heads`` heads of dim ``head_dim``.

    W1 and U1 read the same query, so they are stored side by side as one input projection ``w_in``: one batched
    product per layer and step instead of two (decoding pays per operation at small sizes).

    Args:
        n_heads: query heads of the layer.
        head_dim: dimension per head.
        gate: ``"paper"`` or ``"exact"``.
        hidden_mult: memory hidden size as a multiple of ``head_dim`` (the paper: 2).
        log_mass_init: initial ``b_h`` of the exact gate: the memory's log-mass before training.
    """

    def __init__(
        self, n_heads: int, head_dim: int, gate: str, hidden_mult: int = 2, log_mass_init: float = 0.0
    ) -> None:
        super().__init__()
        if gate not in ("paper", "exact"):
            raise ValueError(f"gate must be 'paper' or 'exact', got {gate!r}")
        self.gate_kind, self.log_mass_init = gate, log_mass_init
        self.hidden, self.rank = hidden_mult * head_dim, max(1, math.isqrt(head_dim))
        self.w_in = nn.Parameter(torch.empty(n_heads, head_dim, self.hidden + self.rank))  # (H, D, 2D + r): [W1 | U1]
        self.w2 = nn.Parameter(torch.empty(n_heads, self.hidden, head_dim))  # (H, 2D, D)
        self.u2 = nn.Parameter(torch.empty(n_heads, self.rank, 1))  # (H, r, 1)
        self.bias = nn.Parameter(torch.zeros(n_heads)) if gate == "exact" else None  # (H,)
        self.scale = nn.Parameter(torch.zeros(n_heads))  # (H,) s_h: 0 = the base model exactly
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Linear's default: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) for every projection.
        for weight in (self.w_in, self.w2, self.u2):
            bound = 1.0 / math.sqrt(weight.shape[1])
            nn.init.uniform_(weight, -bound, bound)
        with torch.no_grad():
            self.scale.zero_()
            if self.bias is not None:
                self.bias.fill_(self.log_mass_init)

    def _project(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(memory m(q), gate logit z(q)): (B, T, H, D) -> (B, T, H, D), (B, T, H).

        Heads are the batch of three batched products: fast both for training (BT in the thousands) and for
        decoding (BT = 1), where broadcasting would loop over BT·H tiny products.
        """
        b, t, h, d = q.shape
        x = q.reshape(b * t, h, d).transpose(0, 1)  # (H, BT, D)
        hidden = F.silu(torch.bmm(x, self.w_in))  # (H, BT, 2D + r)
        memory = torch.bmm(hidden[..., : self.hidden], self.w2)  # (H, BT, D)
        z = torch.bmm(hidden[..., self.hidden :], self.u2)  # (H, BT, 1)
        return memory.transpose(0, 1).reshape(b, t, h, d), z.view(h, b * t).transpose(0, 1).reshape(b, t, h)

    def memory(self, q: torch.Tensor) -> torch.Tensor:
        """m(q): (B, T, H, D) -> (B, T, H, D)."""
        return self._project(q)[0]

    def _gate(self, z: torch.Tensor, lse_context: torch.Tensor | None) -> torch.Tensor:
        if self.gate_kind == "paper":
            return torch.sigmoid(3.0 * (z - 1.0))
        if lse_context is None:
            raise RuntimeError("the exact gate needs the context's log-sum-exp; attach through GatedMemoryAdapter")
        return exact_gate(z + self.bias, lse_context.to(z.dtype))

    def gate(self, q: torch.Tensor, lse_context: torch.Tensor | None = None) -> torch.Tensor:
        """The memory's weight g(q) in [0, 1], (B, T, H), before the scale s."""
        return self._gate(self._project(q)[1], lse_context)

    def forward(self, q: torch.Tensor, attn: torch.Tensor, lse_context: torch.Tensor | None = None):
        """Blend ``attn`` with the memory. q, attn: (B, T, H, D); lse_context: (B, T, H) (exact gate only).

        Returns:
            (output (B, T, H, D), effective gate s·g (B, T, H)).
        """
        memory, z = self._project(q)
        g = self._gate(z, lse_context) * self.scale  # (B, T, H)
        return blend(attn, memory, g.unsqueeze(-1)), g
