"""LIFT's Gated Memory attention adapter: ``config`` holds its settings, ``layer`` the math, ``model`` attaches
it to a model."""

from lift_memory.adapters.gated_memory.config import GatedMemoryAdapterConfig
from lift_memory.adapters.registry import AdapterKind, register


def _load():
    from lift_memory.adapters.gated_memory.model import GatedMemoryAdapter

    return GatedMemoryAdapter


def _learning_rate(builtin: bool, params: int | None) -> float:
    # LIFT v2's 1e-3 from a billion parameters up. Below (measured on SmolLM2-135M, docs/adapters.md), the gates
    # learned almost nothing in 150 s at 1e-3 and did at 1e-2; builtin:tiny needs 1e-2 as well.
    small = builtin or (params is not None and params < 1_000_000_000)
    return 1e-2 if small else 1e-3


register(AdapterKind("gated_memory", GatedMemoryAdapterConfig, _load, _learning_rate))
