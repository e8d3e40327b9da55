"""The adapter contract.

An adapter is attached once to the frozen base model and acts as a *slot*: a document's weights are loaded
into it to answer from that document, so switching documents is a tensor copy, not a model reload. Every
adapter is the identity right after :meth:`Adapter.reset`, :meth:`Adapter.disabled` gives back the exact base
model, and :meth:`Adapter.state_dict` holds exactly the adapter's tensors (tests prove all three).

Adapters know nothing about documents, files or training loops.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from lift_memory.errors import AdapterMismatchError, ConfigError


class Adapter(ABC):
    """A trainable add-on to a frozen model. Subclasses attach in ``__init__``."""

    kind: ClassVar[str]

    def __init__(self) -> None:
        self._initial: dict[str, Any] = {}

    @property
    @abstractmethod
    def model(self):
        """The module to call: the base model with this adapter in place."""

    @abstractmethod
    def parameters(self) -> list:
        """The trainable parameters (nothing of the base model)."""

    @abstractmethod
    def named_tensors(self) -> dict[str, Any]:
        """The live adapter tensors by stable name (what :meth:`state_dict` copies)."""

    @abstractmethod
    def disabled(self) -> contextlib.AbstractContextManager[None]:
        """Context in which the model computes exactly what the base model computes."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """JSON-ready identity of this adapter (kind and layout), recorded in every manifest."""

    def export(self, folder: Path, base_model: str) -> None:
        """Write the slot's current weights in a format other tools load (LoRA: a PEFT folder)."""
        raise ConfigError(
            f"{self.kind} adapters have no format that other tools load, so they stay in lift-memory's own; "
            "memorize with a LoRA adapter (adapter.kind='lora') to export"
        )

    def state_dict(self) -> dict[str, Any]:
        """A CPU copy of the adapter's tensors."""
        return {name: t.detach().to("cpu", copy=True).contiguous() for name, t in self.named_tensors().items()}

    def load_state_dict(self, state: dict[str, Any], *, source: str = "state") -> None:
        """Copy ``state`` into the slot; refuse states of another layout with :class:`AdapterMismatchError`."""
        import torch

        live = self.named_tensors()
        missing, unexpected = sorted(live.keys() - state.keys()), sorted(state.keys() - live.keys())
        if missing or unexpected:
            raise AdapterMismatchError(
                f"{source} does not fit this {self.kind} adapter: {len(missing)} tensors missing "
                f"(e.g. {missing[:1]}), {len(unexpected)} unexpected (e.g. {unexpected[:1]}); "
                "re-memorize the document with this configuration"
            )
        for name, tensor in live.items():
            if tuple(state[name].shape) != tuple(tensor.shape):
                raise AdapterMismatchError(
                    f"{source}: tensor {name} has shape {tuple(state[name].shape)}, this adapter expects "
                    f"{tuple(tensor.shape)}; re-memorize the document with this configuration"
                )
        with torch.no_grad():
            for name, tensor in live.items():
                tensor.copy_(state[name])

    def snapshot_initial(self) -> None:
        """Remember the current weights as the start of every later training run."""
        self._initial = self.state_dict()

    def set_initial(self, state: dict[str, Any]) -> None:
        """Start later training runs from ``state`` (e.g. a pre-LIFT starting point)."""
        self.load_state_dict(state, source="initial state")
        self._initial = {k: v.clone() for k, v in state.items()}

    def reset(self) -> None:
        """Back to the initial weights (the identity, unless a learned start was set)."""
        self.load_state_dict(self._initial, source="initial state")

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
