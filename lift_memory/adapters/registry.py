"""The table of adapter kinds: a config ``kind`` names its config class, its implementation and its default
learning rate.

Each kind registers itself in its package's ``__init__`` (as peft's tuners do), and ``lift_memory.adapters``
imports the built-in kinds. Adding a kind is a folder ``adapters/<kind>/`` with ``config.py`` and
``model.py``, a :func:`register` call, and one import in ``adapters/__init__.py``. The implementation (which
needs torch) is imported only when an adapter of its kind is attached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lift_memory.errors import ConfigError

if TYPE_CHECKING:
    from lift_memory.adapters.base import Adapter


@dataclass(frozen=True)
class AdapterKind:
    """One kind of adapter."""

    name: str
    config: type
    """Its pydantic config class (``kind: Literal[name]``)."""
    load: Callable[[], type[Adapter]]
    """Imports and returns the implementation."""
    learning_rate: Callable[[bool, int | None], float]
    """The default peak learning rate for ``(builtin, base-model parameter count)``."""


_KINDS: dict[str, AdapterKind] = {}


def register(kind: AdapterKind) -> None:
    if kind.name in _KINDS and _KINDS[kind.name] != kind:
        raise ConfigError(f"adapter kind {kind.name!r} is registered twice")
    _KINDS[kind.name] = kind


def kind(name: str) -> AdapterKind:
    if name not in _KINDS:
        raise ConfigError(f"unknown adapter kind {name!r}; available: {sorted(_KINDS)}")
    return _KINDS[name]


def attach(model, config, *, seed: int = 0, builtin: bool = False) -> Adapter:
    """Attach the adapter described by ``config`` (its ``kind`` picks the class) to ``model``."""
    import torch

    cls = kind(config.kind).load()
    # Adapter initialization draws random numbers: seed it, and leave the caller's RNG as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        adapter = cls(model, config, builtin=builtin)
    adapter.snapshot_initial()
    return adapter


def default_learning_rate(name: str, *, builtin: bool, params: int | None) -> float:
    return kind(name).learning_rate(builtin, params)


__all__ = ["AdapterKind", "attach", "default_learning_rate", "kind", "register"]
