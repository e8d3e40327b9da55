"""lift_memory: memorize long documents into an LLM's parameters at test time (LIFT).

The public API is the handful of names below; everything else is importable but may change.
Importing this package is cheap: torch, transformers and chromadb load on first use.
"""

from lift_memory.config import MemoryConfig
from lift_memory.errors import LiftMemoryError
from lift_memory.memory import LiftMemory
from lift_memory.types import Answer, MemoryRecord, Snippet

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "LiftMemory",
    "LiftMemoryError",
    "MemoryConfig",
    "MemoryRecord",
    "Snippet",
    "__version__",
]
