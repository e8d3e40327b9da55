from __future__ import annotations

import pytest
import torch
from lift_test_helpers import save_tiny_llama

from lift_memory.config import ModelConfig
from lift_memory.errors import ModelLoadError
from lift_memory.models import load_model


def test_loads_a_local_directory_frozen_on_cpu(tiny_model_dir):
    base = load_model(str(tiny_model_dir))
    assert base.device.type == "cpu" and base.model.dtype == torch.float32
    assert not any(p.requires_grad for p in base.model.parameters())
    assert not base.model.training
    assert base.context_window == 128 and base.prefix_ids == (0,)
    assert base.name == str(tiny_model_dir) and not base.is_builtin
    assert 1 in base.eos_ids


def test_fingerprints_tell_weights_apart(tiny_model_dir, other_model_dir, tmp_path):
    a, b = load_model(str(tiny_model_dir)), load_model(str(other_model_dir))
    assert a.tokenizer_fingerprint == b.tokenizer_fingerprint
    assert a.fingerprint != b.fingerprint
    again = save_tiny_llama(tmp_path / "again")  # same seed, same weights, another directory
    assert load_model(str(again)).fingerprint == a.fingerprint


def test_context_window_override(tiny_model_dir):
    assert load_model(ModelConfig(name=str(tiny_model_dir), context_window=64)).context_window == 64


def test_pickle_weights_are_refused(tmp_path):
    path = save_tiny_llama(tmp_path / "pickled")
    model_file = path / "model.safetensors"
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(path)
    model_file.unlink()
    torch.save(model.state_dict(), path / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="cannot load model"):
        load_model(str(path))


@pytest.mark.parametrize("name", ["./does-not-exist", "/nonexistent/model"])
def test_missing_paths_are_clear_errors(name):
    with pytest.raises(ModelLoadError, match="not a directory"):
        load_model(name)


def test_hub_ids_fail_cleanly_offline():
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE"):
        load_model("some-org/some-model-that-is-not-cached")


def test_remote_code_is_off_by_default():
    assert ModelConfig().trust_remote_code is False
