from __future__ import annotations

import pytest
import torch
from lift_test_helpers import TEXT, HashEmbedder

from lift_memory import LiftMemory
from lift_memory.config import LoraAdapterConfig
from lift_memory.errors import (
    AdapterMismatchError,
    ConfigError,
    DocumentExistsError,
    InvalidDocumentError,
    InvalidIdError,
    UnknownDocumentError,
)


@pytest.fixture
def memory(tmp_path, tiny_model_dir, fast_config):
    return LiftMemory(
        fast_config, root=tmp_path / "mem", model=str(tiny_model_dir), embedder=HashEmbedder(), progress=False
    )


def _logits(memory, doc_id, ids=(0, 5, 9, 33, 70, 101)):
    with memory.engine.use(doc_id), torch.no_grad():
        return memory.engine.adapter.model(input_ids=torch.tensor([ids])).logits


def test_memorize_then_ask(memory):
    record = memory.memorize(TEXT, title="proverbs")
    assert record.doc_id.startswith("doc-") and record.title == "proverbs"
    assert record.trained and record.train.steps == 3 and record.train.stop_reason == "max_steps"
    assert record.tasks["segment"] >= 1 and record.tasks["window"] >= 5
    assert record.adapter["kind"] == "lora" and record.base_model == memory.config.model.name
    answer = memory.ask("What saves nine?", record.doc_id, mode="lift", max_new_tokens=5)
    assert answer.route == "lift" and answer.adapter == record.doc_id
    assert answer.generated_tokens <= 5 and answer.prompt_tokens + 5 <= memory.engine.base.context_window
    assert set(answer.timings) >= {"prompt", "generate", "total"}
    assert "".join(memory.stream("What saves nine?", record.doc_id, mode="lift", max_new_tokens=5)) == answer.text


def test_a_fresh_process_answers_with_identical_logits(memory, tmp_path, tiny_model_dir, fast_config):
    record = memory.memorize(TEXT, doc_id="proverbs")
    trained = _logits(memory, "proverbs")
    assert not torch.equal(trained, memory_base_logits(memory))
    reopened = LiftMemory(
        fast_config, root=tmp_path / "mem", model=str(tiny_model_dir), embedder=HashEmbedder(), progress=False
    )
    assert [r.doc_id for r in reopened.list()] == ["proverbs"]
    assert reopened.get("proverbs").doc_hash == record.doc_hash
    assert torch.equal(_logits(reopened, "proverbs"), trained)


def memory_base_logits(memory):
    return _logits(memory, None)


def test_switching_documents_swaps_adapters_not_models(memory):
    memory.memorize(TEXT, doc_id="a")
    memory.memorize(TEXT.upper(), doc_id="b")
    model = memory.engine.base.model
    a, b = _logits(memory, "a"), _logits(memory, "b")
    assert not torch.equal(a, b)
    assert torch.equal(_logits(memory, "a"), a) and memory.engine.base.model is model


def test_identical_text_is_a_no_op(memory):
    first = memory.memorize(TEXT, doc_id="same")
    calls = []
    again = memory.memorize(TEXT, doc_id="same", callbacks=[calls.append])
    assert again == first and calls == []


def test_a_memory_stored_before_a_setting_existed_is_still_the_same_memory(memory):
    from lift_memory.manifest import ADDED_SETTINGS

    first = memory.memorize(TEXT, doc_id="older")
    stored = memory.bank.manifest("older").settings
    older = dict(stored)
    for section, fields in ADDED_SETTINGS.items():  # as written by the release before these fields
        assert set(fields) <= set(stored[section])
        older[section] = {k: v for k, v in stored[section].items() if k not in fields}
    with memory.bank.transaction("older"):
        memory.bank.update_manifest("older", settings=older)
    calls = []
    assert memory.memorize(TEXT, doc_id="older", callbacks=[calls.append]).doc_hash == first.doc_hash
    assert calls == []  # not trained again
    changed = {**older, "train": {**older["train"], "max_epochs": 2.0}}
    with memory.bank.transaction("older"):
        memory.bank.update_manifest("older", settings=changed)
    memory.memorize(TEXT, doc_id="older", callbacks=[calls.append], replace=True)
    assert calls  # a setting that differs still counts


def test_a_different_text_under_a_taken_id_is_refused_unless_replaced(memory):
    memory.memorize(TEXT, doc_id="taken")
    with pytest.raises(DocumentExistsError, match="replace=True"):
        memory.memorize(TEXT + " More.", doc_id="taken")
    assert memory.bank.text("taken") == TEXT
    replaced = memory.memorize(TEXT + " More.", doc_id="taken", replace=True)
    assert memory.bank.text("taken") == TEXT + " More." and replaced.n_chars == len(TEXT) + 6


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"text": ""}, InvalidDocumentError),
        ({"text": "   \n"}, InvalidDocumentError),
        ({"text": b"\x89PNG\r\n\x1a\n\x00\x00"}, InvalidDocumentError),
        ({"text": TEXT, "doc_id": "../../etc/passwd"}, InvalidIdError),
    ],
)
def test_bad_input_is_refused_and_nothing_is_lost(memory, kwargs, error):
    memory.memorize(TEXT, doc_id="kept")
    before = _logits(memory, "kept")
    with pytest.raises(error):
        memory.memorize(**kwargs)
    assert [r.doc_id for r in memory.list()] == ["kept"]
    assert torch.equal(_logits(memory, "kept"), before)


def test_unknown_ids(memory):
    with pytest.raises(UnknownDocumentError, match="no memory with doc_id 'ghost'"):
        memory.ask("?", "ghost")
    with pytest.raises(UnknownDocumentError):
        memory.forget("ghost")


def _open_other(tmp_path, config, model):
    return LiftMemory(config, root=tmp_path / "mem", model=str(model), embedder=HashEmbedder(), progress=False)


def test_adapters_of_another_base_model_are_refused(memory, tmp_path, other_model_dir, fast_config):
    memory.memorize(TEXT, doc_id="mine")
    with pytest.raises(ConfigError, match=r"was made with model\.name="):  # the folder remembers its model
        _open_other(tmp_path, fast_config, other_model_dir)
    (tmp_path / "mem" / "settings.json").unlink()  # without it, each manifest still names its base model
    with pytest.raises(AdapterMismatchError, match="trained on base model"):
        _open_other(tmp_path, fast_config, other_model_dir).ask("?", "mine")


def test_adapters_of_another_layout_are_refused(memory, tmp_path, tiny_model_dir, fast_config):
    memory.memorize(TEXT, doc_id="mine")
    config = fast_config.model_copy(update={"adapter": LoraAdapterConfig(r=2)})
    with pytest.raises(ConfigError, match="was made with adapter="):
        _open_other(tmp_path, config, tiny_model_dir)
    (tmp_path / "mem" / "settings.json").unlink()
    with pytest.raises(AdapterMismatchError, match="lora adapter"):
        _open_other(tmp_path, config, tiny_model_dir).ask("?", "mine")


def test_the_folder_remembers_its_settings(memory, tmp_path, fast_config):
    from lift_memory.config import RetrievalConfig

    config = fast_config.model_copy(update={"adapter": LoraAdapterConfig(r=2), "retrieval": RetrievalConfig(k=2,
                                    chunk_size=48)})  # fmt: skip
    first = _open_other(tmp_path, config, memory.config.model.name)
    first.memorize(TEXT, doc_id="mine")
    reopened = LiftMemory(fast_config, root=tmp_path / "mem", embedder=HashEmbedder(), progress=False)  # no flags
    assert reopened.config.model.name == memory.config.model.name and reopened.config.adapter.r == 2
    assert reopened.config.retrieval.chunk_size == 48 and reopened.config.retrieval.k == 5  # k is per question
    assert reopened.ask("What saves nine?", "mine", mode="lift", max_new_tokens=2).adapter == "mine"


def test_forget(memory):
    memory.memorize(TEXT, doc_id="gone")
    memory.forget("gone")
    assert memory.list() == []
    with pytest.raises(UnknownDocumentError):
        memory.ask("?", "gone")


def test_perplexity_uses_every_token_once(memory):
    short = memory.perplexity(TEXT[:200])
    long = memory.perplexity(TEXT * 3, stride=40)
    assert short > 1 and long > 1
    # A random model: perplexity near the vocabulary size, whatever the stride.
    assert abs(memory.perplexity(TEXT * 3, stride=100) - long) / long < 0.2


def test_loading_memorizing_and_asking_leave_the_process_as_they_found_it(memory):
    """No global side effects: torch's random state, transformers' progress bars, the environment."""
    import os
    import random

    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    torch.manual_seed(1234)
    before = (torch.random.get_rng_state(), random.getstate(), dict(os.environ))
    memory.memorize(TEXT, doc_id="d", train=True)
    memory.ask("Ada Lovelace", "d", max_new_tokens=3)
    after = (torch.random.get_rng_state(), random.getstate(), dict(os.environ))
    assert torch.equal(before[0], after[0]) and before[1:] == after[1:]
    assert hf_logging.is_progress_bar_enabled()
