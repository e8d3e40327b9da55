"""LoRA through peft: ``config`` holds its settings, ``model`` adapts peft's model to the slot contract."""

from lift_memory.adapters.lora.config import LoraAdapterConfig
from lift_memory.adapters.registry import AdapterKind, register


def _load():
    from lift_memory.adapters.lora.model import LoraAdapter

    return LoraAdapter


def _learning_rate(builtin: bool, params: int | None) -> float:
    # builtin:tiny trains its embeddings too; under a billion parameters (measured on SmolLM2-135M) 3e-4 recalls
    # little in a short budget; 3e-4 is LIFT's fast LoRA setting.
    if builtin:
        return 4e-3
    return 2e-3 if params is not None and params < 1_000_000_000 else 3e-4


register(AdapterKind("lora", LoraAdapterConfig, _load, _learning_rate))
