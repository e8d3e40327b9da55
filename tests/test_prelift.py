from __future__ import annotations

import json

import pytest
import torch
from lift_test_helpers import TEXT, HashEmbedder

from lift_memory import LiftMemory
from lift_memory.config import GatedMemoryAdapterConfig, TrainConfig
from lift_memory.errors import AdapterMismatchError, ConfigError
from lift_memory.prelift import prelift, split_corpus
from lift_memory.slot import START_FILE
from lift_memory.slot import START_MANIFEST as MANIFEST


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i in range(5):
        (folder / f"doc{i}.txt").write_text(
            f"Document number {i}. " + TEXT[i * 40 :] + f" It ends with code {1000 + i}."
        )
    return folder


def test_split_holds_files_out_deterministically(corpus):
    split = split_corpus(corpus, 0.2)
    assert len(split.held_out) == 1 and len(split.train) == 4
    assert split == split_corpus(corpus, 0.2) and not set(split.train) & set(split.held_out)
    with pytest.raises(ConfigError, match="at least two"):
        split_corpus(corpus / "missing", 0.2)


def _config(fast_config, tiny_model_dir, steps, **adapter):
    config = fast_config.model_copy(
        update={
            "model": fast_config.model.model_copy(update={"name": str(tiny_model_dir)}),
            "train": TrainConfig(learning_rate=1e-3, max_steps=steps, batch_tokens=256, plateau_patience=None),
        }
    )
    if adapter:
        config = config.model_copy(update={"adapter": GatedMemoryAdapterConfig(**adapter)})
    return config


def test_end_to_end_and_documents_record_their_start(corpus, tmp_path, tiny_model_dir, fast_config):
    config = _config(fast_config, tiny_model_dir, 6, gate="exact")
    manifest = prelift(corpus, tmp_path / "start", config, progress=False)
    assert (tmp_path / "start" / START_FILE).is_file() and manifest["train"]["steps"] == 6
    assert (
        len(manifest["corpus"]["held_out"]) == 1
        and manifest["corpus"]["held_out"][0] not in manifest["corpus"]["train"]
    )
    assert json.loads((tmp_path / "start" / MANIFEST).read_text())["adapter"]["kind"] == "gated_memory"

    started = config.model_copy(update={"start": tmp_path / "start"})
    memory = LiftMemory(started, root=tmp_path / "mem", embedder=HashEmbedder(), progress=False)
    adapter = memory.engine.adapter
    from safetensors.torch import load_file

    start = load_file(tmp_path / "start" / START_FILE)
    adapter.reset()
    assert all(torch.equal(adapter.state_dict()[k], start[k]) for k in start)  # documents start from it
    record = memory.memorize(TEXT, doc_id="d", train=True)
    assert record.extra["start"]["id"] and record.extra["start"]["steps"] == 6


def test_resume_after_interruption_equals_an_uninterrupted_run(corpus, tmp_path, tiny_model_dir, fast_config):
    straight = tmp_path / "straight"
    prelift(corpus, straight, _config(fast_config, tiny_model_dir, 8), checkpoint_every=3, progress=False)

    interrupted = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):  # killed after step 7; the last checkpoint is step 6
        prelift(
            corpus,
            interrupted,
            _config(fast_config, tiny_model_dir, 8),
            checkpoint_every=3,
            progress=False,
            callbacks=[_interrupt_at(7)],
        )
    manifest = prelift(corpus, interrupted, _config(fast_config, tiny_model_dir, 8), checkpoint_every=3, progress=False)
    assert manifest["resumed_from_step"] == 6 and manifest["train"]["steps"] == 8
    from safetensors.torch import load_file

    a, b = load_file(straight / START_FILE), load_file(interrupted / START_FILE)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _interrupt_at(step):
    def callback(info):
        if info.step == step:
            raise KeyboardInterrupt

    return callback


def test_a_longer_budget_continues_a_finished_run(corpus, tmp_path, tiny_model_dir, fast_config):
    prelift(corpus, tmp_path / "s", _config(fast_config, tiny_model_dir, 4), checkpoint_every=2, progress=False)
    manifest = prelift(
        corpus, tmp_path / "s", _config(fast_config, tiny_model_dir, 6), checkpoint_every=2, progress=False
    )
    assert manifest["resumed_from_step"] == 4 and manifest["train"]["steps"] == 6


def test_a_start_of_another_model_or_layout_is_refused(corpus, tmp_path, tiny_model_dir, other_model_dir, fast_config):
    config = _config(fast_config, tiny_model_dir, 2)
    prelift(corpus, tmp_path / "start", config, progress=False)
    other = config.model_copy(
        update={"start": tmp_path / "start", "model": config.model.model_copy(update={"name": str(other_model_dir)})}
    )
    with pytest.raises(AdapterMismatchError, match="trained on base model"):
        _ = LiftMemory(other, root=tmp_path / "m1", progress=False).engine
    gated = config.model_copy(update={"start": tmp_path / "start", "adapter": GatedMemoryAdapterConfig()})
    with pytest.raises(AdapterMismatchError, match="lora adapter"):
        _ = LiftMemory(gated, root=tmp_path / "m2", progress=False).engine
    with pytest.raises(ConfigError, match="no pre-LIFT starting point"):
        _ = LiftMemory(config.model_copy(update={"start": tmp_path}), root=tmp_path / "m3", progress=False).engine
