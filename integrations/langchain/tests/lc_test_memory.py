"""A shared lift-memory for the LangChain integration tests: real, on builtin:tiny, offline.

The standard test classes read their constructor parameters from properties, which cannot take fixtures;
``shared_memory()`` builds one memory per test session for them.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile

from lift_memory import LiftMemory, MemoryConfig
from lift_memory.config import TrainConfig

HANDBOOK = (
    "The office opens at eight in the morning. Visitors sign in at the front desk. "
    "The pass key for the server room is 4817-QX. Only the night guard may change it. "
    "Lunch is served between noon and two. The library keeps the annual reports. "
) * 6


@functools.cache
def shared_memory() -> LiftMemory:
    """A memory on builtin:tiny holding the handbook (trained briefly) and a short note (read whole)."""
    root = tempfile.mkdtemp(prefix="langchain-lift-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    memory = LiftMemory(MemoryConfig(train=TrainConfig(max_steps=20)), root=root, progress=False)
    memory.memorize(HANDBOOK, doc_id="handbook", title="handbook", train=True)
    memory.memorize("The vending machine takes coins only.", doc_id="note")
    return memory
