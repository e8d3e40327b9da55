"""How integration classes get their ``LiftMemory``: given one, or opened lazily from a root and a model."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, PrivateAttr, model_validator

from lift_memory import LiftMemory


def open_memory(memory: Any, root: str | None, model: str | None, embedder: Any = None) -> LiftMemory:
    """``memory`` if it is a :class:`LiftMemory`, else a new one at ``root`` with ``model`` and ``embedder``
    (progress off)."""
    if memory is not None:
        if not isinstance(memory, LiftMemory):
            raise TypeError(f"memory must be a lift_memory.LiftMemory, got {type(memory).__name__}")
        return memory
    return LiftMemory(root=root, model=model, embedder=embedder, progress=False)


class MemoryFields(BaseModel):
    """The fields every integration class uses to reach its memory, and the lazily opened memory itself."""

    memory: Any = Field(default=None, exclude=True)
    """A ``lift_memory.LiftMemory``. None: one is opened from ``root`` and ``model_name``."""
    model_name: str | None = Field(default=None, alias="model")
    """The memory's base model. With ``memory`` given, it is that memory's (another value is an error); else
    the model of the memory opened from ``root`` (None: lift-memory's default)."""
    root: str | None = None
    """Memory directory opened when ``memory`` is None (default: lift-memory's user data directory)."""

    _lift: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _base_model_of_the_memory(self):
        if isinstance(self.memory, LiftMemory):
            name = self.memory.config.model.name
            if self.model_name not in (None, name):
                raise ValueError(f"model_name={self.model_name!r}, but the memory given runs {name!r}")
            self.model_name = name
        return self

    @property
    def base_model(self) -> str:
        """The base model the answers come from."""
        return self.model_name or self.lift.config.model.name

    @property
    def lift(self) -> LiftMemory:
        """The ``LiftMemory`` behind this object (opened on first use)."""
        if self._lift is None:
            self._lift = open_memory(self.memory, self.root, self.model_name)
        return self._lift
