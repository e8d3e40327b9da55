"""Gated Memory's settings (``[adapter]`` with ``kind = "gated_memory"``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from lift_memory.config_base import ConfigModel


class GatedMemoryAdapterConfig(ConfigModel):
    """LIFT's Gated Memory: a memory MLP and a gate per attention head; the base model stays frozen."""

    section: ClassVar[str] = "adapter"

    kind: Literal["gated_memory"] = "gated_memory"
    """Adapter kind: LIFT's Gated Memory."""
    gate: Literal["paper", "exact"] = "exact"
    """``paper``: sigmoid(3(z(q) - 1)) as in the authors' code; ``exact``: sigmoid(l(q) - LSE_context(q)), the
    split of softmax attention over memory and context."""
    hidden_mult: int = Field(default=2, ge=1)
    """Memory MLP hidden size as a multiple of the head dimension (the paper: 2)."""
    log_mass_init: float | None = None
    """Exact gate: the memory's initial log-mass b (l(q) = U2·SiLU(U1·q) + b). None: log of the model's
    context window, i.e. the memory starts as heavy as a full window of context."""
