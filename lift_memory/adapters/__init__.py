"""Per-document adapters. Importing this package registers the built-in kinds (see ``registry``)."""

from lift_memory.adapters import gated_memory, lora
from lift_memory.adapters.registry import attach

__all__ = ["attach", "gated_memory", "lora"]
