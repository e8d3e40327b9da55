"""Exported adapters are standard PEFT folders: PeftModel.from_pretrained loads them with identical logits."""

from __future__ import annotations

import json

import pytest
import torch
from lift_test_helpers import TEXT, HashEmbedder

from lift_memory import LiftMemory
from lift_memory.config import GatedMemoryAdapterConfig, LoraAdapterConfig
from lift_memory.errors import ConfigError

IDS = [0, 5, 9, 33, 70, 101, 7, 250]


def _memory(tmp_path, model_dir, config, adapter=None):
    if adapter is not None:
        config = config.model_copy(update={"adapter": adapter})
    return LiftMemory(config, root=tmp_path / "mem", model=str(model_dir), embedder=HashEmbedder(), progress=False)


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")  # inside peft's loader
@pytest.mark.parametrize("train_embeddings", [False, True])
@pytest.mark.parametrize("tie", [False, True])
def test_peft_loads_an_exported_adapter_with_identical_logits(tmp_path, fast_config, train_embeddings, tie):
    from lift_test_helpers import save_tiny_llama
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model_dir = save_tiny_llama(tmp_path / "model", tie=tie)
    adapter = LoraAdapterConfig(r=4, train_embeddings=train_embeddings)
    memory = _memory(tmp_path, model_dir, fast_config, adapter)
    memory.memorize(TEXT, doc_id="proverbs")
    with memory.engine.use("proverbs"), torch.no_grad():
        ours = memory.engine.adapter.model(input_ids=torch.tensor([IDS])).logits
    memory.memorize(TEXT.upper(), doc_id="shouted")  # the slot now holds another document's weights
    folder = memory.export("proverbs", tmp_path / "export")
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in folder.iterdir()}
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4 and config["base_model_name_or_path"] == str(model_dir)
    base = AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"])
    theirs_model = PeftModel.from_pretrained(base, folder).eval()
    with torch.no_grad():
        theirs = theirs_model(input_ids=torch.tensor([IDS])).logits
    assert not torch.equal(ours, AutoModelForCausalLM.from_pretrained(model_dir)(torch.tensor([IDS])).logits)
    assert torch.allclose(theirs, ours, atol=1e-5, rtol=0)


def test_export_refuses_what_it_cannot_write(tmp_path, tiny_model_dir, fast_config):
    memory = _memory(tmp_path, tiny_model_dir, fast_config)
    memory.memorize(TEXT, doc_id="proverbs")
    memory.memorize("A short note.", doc_id="note")  # fits the window: no adapter
    with pytest.raises(ConfigError, match="without an adapter"):
        memory.export("note", tmp_path / "note")
    (tmp_path / "taken").mkdir()
    with pytest.raises(ConfigError, match="exists; choose another folder or pass overwrite=True"):
        memory.export("proverbs", tmp_path / "taken")
    assert memory.export("proverbs", tmp_path / "taken", overwrite=True) == tmp_path / "taken"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".taken")) == []
    gated = LiftMemory(
        fast_config.model_copy(update={"adapter": GatedMemoryAdapterConfig()}),
        root=tmp_path / "gated",
        model=str(tiny_model_dir),
        embedder=HashEmbedder(),
        progress=False,
    )
    gated.memorize(TEXT, doc_id="proverbs")
    with pytest.raises(ConfigError, match="stay in lift-memory's own"):
        gated.export("proverbs", tmp_path / "gated-export")
    assert not (tmp_path / "gated-export").exists()
