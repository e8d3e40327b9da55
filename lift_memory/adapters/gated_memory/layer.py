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
    return attn + gate * (memory - attn)


def exact_gate(log_mass: torch.Tensor, lse_context: torch.Tensor) -> torch.Tensor:
    """``Z_M / (Z_M + Z_C)`` from ``log Z_M`` and ``log Z_C`` (both (B, T, H)), computed stably."""
    return torch.sigmoid(log_mass - lse_context)


class GatedMemoryLayer(nn.Module):
    """Memory and gate parameters of one attention layer, for ``n_heads`` heads of dim ``head_dim``.

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
        self.gate_kind = gate
        self.log_mass_init = log_mass_init
        hidden, rank = hidden_mult * head_dim, max(1, math.isqrt(head_dim))
        self.w1 = nn.Parameter(torch.empty(n_heads, head_dim, hidden))  # (H, D, 2D)
        self.w2 = nn.Parameter(torch.empty(n_heads, hidden, head_dim))  # (H, 2D, D)
        self.u1 = nn.Parameter(torch.empty(n_heads, head_dim, rank))  # (H, D, r)
        self.u2 = nn.Parameter(torch.empty(n_heads, rank))  # (H, r)
        self.bias = nn.Parameter(torch.zeros(n_heads)) if gate == "exact" else None  # (H,)
        self.scale = nn.Parameter(torch.zeros(n_heads))  # (H,) s_h: 0 = the base model exactly
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Linear's default: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) for every projection.
        for weight in (self.w1, self.w2, self.u1):
            bound = 1.0 / math.sqrt(weight.shape[1])
            nn.init.uniform_(weight, -bound, bound)
        nn.init.uniform_(self.u2, -1.0 / math.sqrt(self.u2.shape[1]), 1.0 / math.sqrt(self.u2.shape[1]))
        with torch.no_grad():
            self.scale.zero_()
            if self.bias is not None:
                self.bias.fill_(self.log_mass_init)

    def memory(self, q: torch.Tensor) -> torch.Tensor:
        """m(q): (B, T, H, D) -> (B, T, H, D)."""
        hidden = F.silu(torch.einsum("bthd,hde->bthe", q, self.w1))  # (B, T, H, 2D)
        return torch.einsum("bthe,hed->bthd", hidden, self.w2)

    def gate_logit(self, q: torch.Tensor) -> torch.Tensor:
        """z(q) (paper) or l(q) without its bias (exact): (B, T, H, D) -> (B, T, H), in float32."""
        hidden = F.silu(torch.einsum("bthd,hdr->bthr", q, self.u1))  # (B, T, H, r)
        return torch.einsum("bthr,hr->bth", hidden, self.u2).float()

    def gate(self, q: torch.Tensor, lse_context: torch.Tensor | None = None) -> torch.Tensor:
        """The memory's weight g(q) in [0, 1], (B, T, H), before the scale s."""
        z = self.gate_logit(q)
        if self.gate_kind == "paper":
            return torch.sigmoid(3.0 * (z - 1.0))
        if lse_context is None:
            raise RuntimeError("the exact gate needs the context's log-sum-exp; attach through GatedMemoryAdapter")
        return exact_gate(z + self.bias.float(), lse_context.float())

    def forward(self, q: torch.Tensor, attn: torch.Tensor, lse_context: torch.Tensor | None = None):
        """Blend ``attn`` with the memory. q, attn: (B, T, H, D); lse_context: (B, T, H) (exact gate only).

        Returns:
            (output (B, T, H, D), effective gate s·g (B, T, H)).
        """
        g = self.gate(q, lse_context) * self.scale.float()  # (B, T, H)
        out = blend(attn, self.memory(q), g.unsqueeze(-1).to(attn.dtype))
        return out, g
