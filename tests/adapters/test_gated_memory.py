from __future__ import annotations

import pytest
import torch
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from lift_memory.adapters import attach
from lift_memory.adapters.gated_memory.layer import blend, exact_gate
from lift_memory.adapters.gated_memory.model import GatedMemoryAdapter, context_logsumexp
from lift_memory.config import GatedMemoryAdapterConfig
from lift_memory.errors import ConfigError

SMALL = {
    "vocab_size": 97,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 64,
}
FAMILIES = {
    "llama": (LlamaConfig, LlamaForCausalLM, {}),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, {}),
    "qwen3": (Qwen3Config, Qwen3ForCausalLM, {"head_dim": 8}),
    "mistral": (MistralConfig, MistralForCausalLM, {"sliding_window": 6}),
    "gemma2": (Gemma2Config, Gemma2ForCausalLM, {"head_dim": 8, "sliding_window": 6, "attn_logit_softcapping": 5.0}),
}


def _model(family: str, impl: str = "sdpa", seed: int = 0):
    config_cls, model_cls, extra = FAMILIES[family]
    torch.manual_seed(seed)
    return model_cls(config_cls(**SMALL, **extra, attn_implementation=impl)).eval()


def _logits(model, ids, **kw):
    with torch.no_grad():
        return model(input_ids=ids, **kw).logits


@pytest.fixture
def ids():
    return torch.randint(0, 97, (2, 12), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("gate", ["paper", "exact"])
@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_identity_at_init_and_when_disabled(family, gate, impl, ids):
    if family == "gemma2" and impl == "sdpa":
        pytest.skip("transformers runs Gemma-2 with eager attention only (its soft-capping)")
    model = _model(family, impl)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding: masks reach the gate's log-sum-exp too
    reference = _logits(model, ids, attention_mask=mask)
    adapter = attach(model, GatedMemoryAdapterConfig(gate=gate))
    torch.testing.assert_close(_logits(adapter.model, ids, attention_mask=mask), reference, rtol=0, atol=1e-5)
    with torch.no_grad():
        for p in adapter.parameters():
            p.add_(0.3)
    assert (_logits(adapter.model, ids, attention_mask=mask) - reference).abs().max() > 1e-3
    with adapter.disabled():
        assert torch.equal(_logits(adapter.model, ids, attention_mask=mask), reference)
    adapter.reset()
    torch.testing.assert_close(_logits(adapter.model, ids, attention_mask=mask), reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("gate", ["paper", "exact"])
def test_gradients_reach_only_adapter_parameters(gate, ids):
    model = _model("llama")
    adapter = attach(model, GatedMemoryAdapterConfig(gate=gate))
    with torch.no_grad():
        for layer in adapter.layers:
            layer.scale.fill_(0.5)  # at exactly 0 only the scale gets gradient
    adapter.model(input_ids=ids, labels=ids).loss.backward()
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in adapter.parameters())
    d, r = 8, 2  # head dim 32/4, floor(sqrt(8)); per head: W1 d*2d, U1 d*r, W2 2d*d, U2 r, plus s (and b)
    per_head = d * 2 * d + d * r + 2 * d * d + r + 1 + (gate == "exact")
    assert adapter.n_parameters() == 2 * 4 * per_head
    names = set(adapter.state_dict())
    expected = {f"{i}.{n}" for i in range(2) for n in ("w_in", "w2", "u2", "scale")}
    assert names == expected | ({f"{i}.bias" for i in range(2)} if gate == "exact" else set())


def test_exact_gate_equals_full_attention_over_memory_and_context():
    """Softmax attention over [M; C] == blend(Attn(q, C), Attn(q, M), sigmoid(log Z_M - log Z_C))."""
    g = torch.Generator().manual_seed(0)
    d, n_mem, n_ctx = 8, 5, 7
    q = torch.randn(3, d, generator=g)  # three queries
    k_m, v_m = torch.randn(n_mem, d, generator=g), torch.randn(n_mem, d, generator=g)
    k_c, v_c = torch.randn(n_ctx, d, generator=g), torch.randn(n_ctx, d, generator=g)
    scale = d**-0.5

    full = torch.softmax(q @ torch.cat([k_m, k_c]).T * scale, -1) @ torch.cat([v_m, v_c])  # brute force
    logits_m, logits_c = q @ k_m.T * scale, q @ k_c.T * scale
    attn_m = torch.softmax(logits_m, -1) @ v_m
    attn_c = torch.softmax(logits_c, -1) @ v_c
    gate = exact_gate(torch.logsumexp(logits_m, -1), torch.logsumexp(logits_c, -1))
    torch.testing.assert_close(blend(attn_c, attn_m, gate[:, None]), full)


@pytest.mark.parametrize("mask_kind", ["none", "bool", "float"])
@pytest.mark.parametrize("softcap", [None, 5.0])
def test_context_logsumexp_matches_the_softmax_normalizer(mask_kind, softcap):
    g = torch.Generator().manual_seed(0)
    b, h, kv, t, s, d = 2, 4, 2, 3, 7, 8
    query, key = torch.randn(b, h, t, d, generator=g), torch.randn(b, kv, s, d, generator=g)
    visible = torch.ones(t, s, dtype=torch.bool).tril(diagonal=s - t).expand(b, 1, t, s).clone()
    visible[0, :, :, 0] = False  # a padded key
    mask = {"none": None, "bool": visible, "float": torch.where(visible, 0.0, torch.finfo(torch.float32).min)}[
        mask_kind
    ]
    module = type("Attention", (), {})()
    got = context_logsumexp(module, query, key, mask, 0.3, softcap)  # (B, T, H)
    logits = query @ key.repeat_interleave(h // kv, 1).transpose(-1, -2) * 0.3
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    keep = visible if mask_kind != "none" else torch.ones(t, s, dtype=torch.bool).tril(diagonal=s - t)
    want = torch.logsumexp(logits.masked_fill(~keep, float("-inf")), -1).transpose(1, 2)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("gate", ["paper", "exact"])
def test_cached_decoding_matches_a_full_forward(gate, ids):
    adapter = attach(_model("llama"), GatedMemoryAdapterConfig(gate=gate))
    with torch.no_grad():
        for p in adapter.parameters():
            p.add_(0.2)
        full = adapter.model(input_ids=ids).logits[:, -1]
        past = adapter.model(input_ids=ids[:, :-1], use_cache=True).past_key_values
        step = adapter.model(input_ids=ids[:, -1:], past_key_values=past, use_cache=True).logits[:, -1]
    torch.testing.assert_close(step, full, rtol=1e-4, atol=1e-4)


def test_save_and_load_round_trip(ids, tmp_path):
    from safetensors.torch import load_file, save_file

    adapter = attach(_model("llama"), GatedMemoryAdapterConfig(gate="exact"))
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_()
    save_file(adapter.state_dict(), tmp_path / "a.safetensors")
    trained = _logits(adapter.model, ids)
    fresh = attach(_model("llama"), GatedMemoryAdapterConfig(gate="exact"))
    fresh.load_state_dict(load_file(tmp_path / "a.safetensors"))
    assert torch.equal(_logits(fresh.model, ids), trained)
    paper = attach(_model("llama"), GatedMemoryAdapterConfig(gate="paper"))
    with pytest.raises(Exception, match=r"tensors missing|unexpected"):
        paper.load_state_dict(load_file(tmp_path / "a.safetensors"))


def test_gate_statistics_and_unsupported_models(ids):
    adapter = attach(_model("llama"), GatedMemoryAdapterConfig(gate="exact"))
    stats = adapter.gate_statistics(input_ids=ids)
    assert stats.shape == (2, 4) and torch.all(stats == 0)  # s = 0 at init
    with torch.no_grad():
        for layer in adapter.layers:
            layer.scale.fill_(1.0)
    stats = adapter.gate_statistics(input_ids=ids)
    assert torch.all((stats > 0) & (stats < 1))
    with pytest.raises(ConfigError, match="no attention modules"):
        GatedMemoryAdapter(torch.nn.Linear(2, 2), GatedMemoryAdapterConfig())


@pytest.mark.gpu
@pytest.mark.parametrize("impl", ["sdpa", "flash_attention_2"])
def test_identity_and_training_on_cuda(impl, ids):
    if impl == "flash_attention_2":
        pytest.importorskip("flash_attn")
    config_cls, model_cls, _ = FAMILIES["llama"]
    model = model_cls(config_cls(**SMALL, attn_implementation=impl)).to("cuda", torch.bfloat16).eval()
    ids = ids.cuda()
    reference = _logits(model, ids)
    adapter = attach(model, GatedMemoryAdapterConfig(gate="exact"))
    torch.testing.assert_close(_logits(adapter.model, ids), reference, rtol=0, atol=1e-5)
    with torch.no_grad():
        for layer in adapter.layers:
            layer.scale.fill_(0.5)
    adapter.model(input_ids=ids, labels=ids).loss.backward()
    assert all(p.grad is not None for p in adapter.parameters())


def test_memorize_and_ask_with_gated_memory(tmp_path, tiny_model_dir, fast_config):
    from lift_test_helpers import TEXT, HashEmbedder

    from lift_memory import LiftMemory

    config = fast_config.model_copy(update={"adapter": GatedMemoryAdapterConfig(gate="exact")})
    memory = LiftMemory(config, root=tmp_path, model=str(tiny_model_dir), embedder=HashEmbedder(), progress=False)
    a = memory.memorize(TEXT, doc_id="a")
    memory.memorize(TEXT.upper(), doc_id="b")
    assert a.adapter["kind"] == "gated_memory" and a.adapter["config"]["gate"] == "exact"
    assert memory.engine.train_config.learning_rate == 1e-2  # a small model; LIFT v2's 1e-3 from 1B parameters up
    model = memory.engine.base.model
    with memory.engine.use("a"), torch.no_grad():
        la = model(input_ids=torch.tensor([[0, 5, 9, 33]])).logits
    with memory.engine.use("b"), torch.no_grad():
        lb = model(input_ids=torch.tensor([[0, 5, 9, 33]])).logits
    assert not torch.equal(la, lb) and memory.engine.base.model is model  # swapped adapters, same base
    assert memory.ask("saves nine", "a", mode="lift", max_new_tokens=3).adapter == "a"
    from lift_memory.config import LoraAdapterConfig
    from lift_memory.errors import AdapterMismatchError, ConfigError

    def reopen(config):
        return LiftMemory(config, root=tmp_path, model=str(tiny_model_dir), embedder=HashEmbedder(), progress=False)

    assert reopen(fast_config).ask("saves nine", "a", mode="lift", max_new_tokens=3).adapter == "a"  # remembered
    lora = fast_config.model_copy(update={"adapter": LoraAdapterConfig()})
    with pytest.raises(ConfigError, match="was made with adapter="):
        reopen(lora)
    (tmp_path / "settings.json").unlink()  # a folder from before folders remembered their settings
    with pytest.raises(AdapterMismatchError, match="gated_memory adapter"):
        reopen(lora).ask("?", "a", mode="lift")


@pytest.mark.slow
def test_gated_memory_memorizes_on_builtin_tiny(builtin_dir, tmp_path):
    from lift_memory import LiftMemory, MemoryConfig
    from lift_memory.config import TrainConfig
    from lift_memory.eval.niah.haystack import build_haystack, corpus_texts

    config = MemoryConfig(adapter=GatedMemoryAdapterConfig(gate="exact"), train=TrainConfig(max_steps=60))
    memory = LiftMemory(config, root=tmp_path, progress=False)
    text = build_haystack(memory.engine.tokenizer, 1024, corpus_texts())
    before = memory.perplexity(text)
    record = memory.memorize(text, index=False)
    assert record.trained and memory.perplexity(text, record.doc_id) < 0.8 * before
