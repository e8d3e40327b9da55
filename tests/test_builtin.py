from __future__ import annotations

import json
import time

import pytest

from lift_memory import builtin
from lift_memory.errors import ConfigError
from lift_memory.models import load_model


def test_held_out_text_never_trains_the_model():
    held, train = builtin.held_out_text(), builtin.training_text()
    assert held and train and not set(held) & set(train)
    assert builtin.recipe_id() == builtin.recipe_id()


def test_unknown_builtin_names_list_what_exists(tmp_path):
    with pytest.raises(ConfigError, match="available: 'builtin:tiny'"):
        builtin.ensure_builtin("builtin:huge", tmp_path)


def test_an_interrupted_build_leaves_nothing_behind(tmp_path, monkeypatch):
    def crash(out, *, progress):
        (out / "config.json").write_text("{}")  # half-written
        raise KeyboardInterrupt

    monkeypatch.setattr(builtin, "_build", crash)
    with pytest.raises(KeyboardInterrupt):
        builtin.ensure_builtin(cache=tmp_path, progress=False)
    leftovers = [p for p in (tmp_path / "builtin").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


@pytest.mark.slow
def test_builtin_tiny_is_cached_and_loads_fast(builtin_dir):
    started = time.perf_counter()
    base = load_model("builtin:tiny", progress=False)
    assert time.perf_counter() - started < 5  # cached: no rebuild
    assert base.is_builtin and base.context_window == 512 and base.prefix_ids == (base.tokenizer.bos_token_id,)
    assert base.model.config.model_type == "llama" and base.model.config.num_key_value_heads == 2
    text = "def f(x):\n    return x\n"
    assert base.tokenizer.decode(base.tokenizer(text, add_special_tokens=False)["input_ids"]) == text


@pytest.mark.slow
@pytest.mark.xfail(
    strict=False,
    reason="fresh builds on 2026-12-02 (torch 2.13.0, transformers 5.24.0, tokenizers 0.23.3) reach in-context "
    "copy accuracy 0.17 (0.22 with copy_target_loss 3.1); the builds these figures were first measured on "
    "reached ~0.8; not yet diagnosed",
)
def test_builtin_tiny_reads_its_window(builtin_dir):
    info = json.loads((builtin_dir / "builtin.json").read_text())
    # Pretraining taught it to continue a passage seen earlier in its window (induction), not only to recite.
    assert info["in_context_copy_accuracy"] > 0.5
