"""LoRA through peft, as a slot adapter.

peft does the work (layer injection, the zero-initialized B matrix that makes an attached adapter the
identity, ``modules_to_save`` copies of the embeddings); this module only adapts peft's model to the
:class:`~lift_memory.adapters.base.Adapter` contract.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from lift_memory.adapters.base import Adapter
from lift_memory.adapters.lora.config import LoraAdapterConfig


def _module_name(model, module) -> str:
    return next(name for name, m in model.named_modules() if m is module).rsplit(".", 1)[-1]


class LoraAdapter(Adapter):
    """LoRA on ``config.target_modules``; with ``train_embeddings`` also full copies of embeddings and head."""

    kind = "lora"

    def __init__(self, model, config: LoraAdapterConfig, *, builtin: bool = False) -> None:
        from peft import LoraConfig, get_peft_model

        super().__init__()
        self.config = config
        self.train_embeddings = builtin if config.train_embeddings is None else config.train_embeddings
        tied = bool(getattr(model.config, "tie_word_embeddings", False))
        modules_to_save = None
        if self.train_embeddings:
            modules_to_save = [_module_name(model, model.get_input_embeddings())]
            if not tied:
                modules_to_save.append(_module_name(model, model.get_output_embeddings()))
        target = config.target_modules
        peft_config = LoraConfig(
            r=config.r,
            lora_alpha=config.alpha,
            lora_dropout=config.dropout,
            target_modules=target if isinstance(target, str) else list(target),
            modules_to_save=modules_to_save,
            ensure_weight_tying=tied and self.train_embeddings,  # the trained copy stays the output head too
            bias="none",
        )
        with warnings.catch_warnings():  # peft calls a transformers API that transformers deprecates
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            self._peft = get_peft_model(model, peft_config)
        self._tensors = {
            name.removeprefix("base_model.model."): p for name, p in self._peft.named_parameters() if p.requires_grad
        }

    @property
    def model(self):
        return self._peft

    def parameters(self) -> list:
        return list(self._tensors.values())

    def named_tensors(self) -> dict[str, Any]:
        return self._tensors

    def disabled(self):
        return self._peft.disable_adapter()

    def export(self, folder: Path, base_model: str) -> None:
        """Write the slot's current weights as a standard PEFT adapter folder (``adapter_config.json`` and
        ``adapter_model.safetensors``), which ``PeftModel.from_pretrained`` and vLLM's LoRA serving load."""
        config = self._peft.peft_config["default"]
        previous, config.base_model_name_or_path = config.base_model_name_or_path, base_model
        try:
            self._peft.save_pretrained(str(folder), safe_serialization=True)
        finally:
            config.base_model_name_or_path = previous

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "config": self.config.model_dump(mode="json"),
            "train_embeddings": self.train_embeddings,
            "parameters": self.n_parameters(),
        }
