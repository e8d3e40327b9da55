"""The LoRA adapter's settings (``[adapter]`` with ``kind = "lora"``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from lift_memory.config_base import ConfigModel


class LoraAdapterConfig(ConfigModel):
    """A LoRA adapter through peft."""

    section: ClassVar[str] = "adapter"

    kind: Literal["lora"] = "lora"
    """Adapter kind: LoRA (peft)."""
    r: int = Field(default=16, ge=1)
    """LoRA rank."""
    alpha: float = Field(default=32.0, gt=0)
    """LoRA scaling numerator (effective scale ``alpha / r``)."""
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout on the LoRA input."""
    target_modules: str | tuple[str, ...] = "all-linear"
    """Modules that get LoRA: ``all-linear`` or module names such as ``("q_proj", "v_proj")``."""
    train_embeddings: bool | None = None
    """Also train the input embeddings and the output head (peft ``modules_to_save``). None: only for
    ``builtin:tiny``, whose barely pretrained embeddings cannot represent a new document otherwise."""
