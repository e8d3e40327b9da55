from __future__ import annotations

import pytest
import torch

from lift_memory.adapters import attach
from lift_memory.config import LoraAdapterConfig
from lift_memory.errors import AdapterMismatchError
from lift_memory.models import load_model


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.fixture
def ids():
    return torch.tensor([[0, 5, 17, 42, 99, 7, 3, 250]])


@pytest.mark.parametrize("train_embeddings", [False, True])
@pytest.mark.parametrize("tie", [False, True])
def test_lora_is_the_identity_at_init_and_when_disabled(tmp_path, ids, train_embeddings, tie):
    from lift_test_helpers import save_tiny_llama

    base = load_model(str(save_tiny_llama(tmp_path / "m", tie=tie)))
    reference = _logits(base.model, ids)
    adapter = attach(base.model, LoraAdapterConfig(r=4, train_embeddings=train_embeddings))
    assert torch.equal(_logits(adapter.model, ids), reference)
    with torch.no_grad():
        for t in adapter.parameters():
            t.add_(0.05)
    assert not torch.allclose(_logits(adapter.model, ids), reference)
    with adapter.disabled():
        assert torch.equal(_logits(adapter.model, ids), reference)
    adapter.reset()
    assert torch.equal(_logits(adapter.model, ids), reference)


def test_state_holds_exactly_the_adapter_tensors(tiny_model_dir):
    base = load_model(str(tiny_model_dir))
    adapter = attach(base.model, LoraAdapterConfig(r=4, train_embeddings=True))
    state = adapter.state_dict()
    trainable = {n for n, p in adapter.model.named_parameters() if p.requires_grad}
    assert len(state) == len(trainable) == len(adapter.parameters())
    assert all("lora_" in k or "modules_to_save" in k for k in state)
    assert any("embed_tokens" in k for k in state) and any("lm_head" in k for k in state)
    assert sum(v.numel() for v in state.values()) == adapter.n_parameters()
    assert adapter.describe()["kind"] == "lora"


def test_tied_embeddings_stay_tied_when_trained(tmp_path, ids):
    from lift_test_helpers import save_tiny_llama

    base = load_model(str(save_tiny_llama(tmp_path / "tied", tie=True)))
    adapter = attach(base.model, LoraAdapterConfig(r=4, train_embeddings=True))
    inner = adapter.model.get_base_model()
    emb_weight = inner.model.embed_tokens.modules_to_save["default"].weight
    out_weight = inner.lm_head.modules_to_save["default"].weight
    assert emb_weight.requires_grad and emb_weight.data_ptr() == out_weight.data_ptr()


def test_loading_a_state_of_another_layout_is_refused(tiny_model_dir):
    base = load_model(str(tiny_model_dir))
    adapter = attach(base.model, LoraAdapterConfig(r=4))
    state = adapter.state_dict()
    wrong_shape = {k: torch.zeros(v.shape[0] + 1, *v.shape[1:]) for k, v in state.items()}
    with pytest.raises(AdapterMismatchError, match="shape"):
        adapter.load_state_dict(wrong_shape)
    with pytest.raises(AdapterMismatchError, match="missing"):
        adapter.load_state_dict(dict(list(state.items())[1:]))
