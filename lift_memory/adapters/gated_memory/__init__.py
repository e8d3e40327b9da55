"""LIFT's Gated Memory attention adapter: ``config`` holds its settings, ``layer`` the math, ``model`` attaches
it to a model."""

from lift_memory.adapters.gated_memory.config import GatedMemoryAdapterConfig
from lift_memory.adapters.registry import AdapterKind, register


def _load():
    from lift_memory.adapters.gated_memory.model import GatedMemoryAdapter

    return GatedMemoryAdapter


def _learning_rate(builtin: bool, params: int | None) -> float:
    return 1e-2 if builtin else 1e-3  # LIFT v2's rate; the barely pretrained builtin:tiny needs more


register(AdapterKind("gated_memory", GatedMemoryAdapterConfig, _load, _learning_rate))
