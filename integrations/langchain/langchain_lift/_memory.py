"""How integration classes get their ``LiftMemory``: given one, or opened lazily from a root and a model."""

from __future__ import annotations

from typing import Any

from lift_memory import LiftMemory


def open_memory(memory: Any, root: str | None, model: str) -> LiftMemory:
    """``memory`` if it is a :class:`LiftMemory`, else a new one at ``root`` with ``model`` (progress off)."""
    if memory is not None:
        if not isinstance(memory, LiftMemory):
            raise TypeError(f"memory must be a lift_memory.LiftMemory, got {type(memory).__name__}")
        return memory
    return LiftMemory(root=root, model=model, progress=False)
