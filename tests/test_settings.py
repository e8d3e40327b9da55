"""What a memory folder remembers: taken when not set explicitly, refused when set to something else."""

from __future__ import annotations

import pytest

from lift_memory import MemoryConfig, settings
from lift_memory.config import GatedMemoryAdapterConfig, ModelConfig, RetrievalConfig, TrainConfig
from lift_memory.errors import ConfigError


def test_remembered_settings_fill_in_what_is_not_set_explicitly(tmp_path):
    made = MemoryConfig(
        model=ModelConfig(name="some/model", context_window=512),
        adapter=GatedMemoryAdapterConfig(gate="paper"),
        retrieval=RetrievalConfig(host="127.0.0.1", port=8123, chunk_size=64),
    )
    settings.save(tmp_path, made)
    opened = settings.reconcile(MemoryConfig(train=TrainConfig(max_steps=7)), settings.load(tmp_path), tmp_path)
    assert opened.model.name == "some/model" and opened.model.context_window == 512
    assert opened.adapter == made.adapter and opened.retrieval.port == 8123 and opened.retrieval.chunk_size == 64
    assert opened.train.max_steps == 7 and opened.retrieval.k == RetrievalConfig().k  # not remembered: per call
    same = MemoryConfig(retrieval=RetrievalConfig(port=8123))  # explicit and equal: fine
    assert settings.reconcile(same, settings.load(tmp_path), tmp_path).retrieval.host == "127.0.0.1"


@pytest.mark.parametrize(
    ("given", "name"),
    [
        (MemoryConfig(retrieval=RetrievalConfig(port=9000)), r"retrieval\.port=8123"),
        (MemoryConfig(model=ModelConfig(name="other/model")), r"model\.name='some/model'"),
        (MemoryConfig(adapter=GatedMemoryAdapterConfig(gate="exact")), r"adapter=\{"),
    ],
)
def test_an_explicit_conflict_names_the_setting(tmp_path, given, name):
    settings.save(tmp_path, MemoryConfig(model=ModelConfig(name="some/model"), retrieval=RetrievalConfig(port=8123),
                                         adapter=GatedMemoryAdapterConfig(gate="paper")))  # fmt: skip
    with pytest.raises(ConfigError, match=f"was made with {name}.*omit it"):
        settings.reconcile(given, settings.load(tmp_path), tmp_path)


def test_a_damaged_settings_file_is_one_typed_line(tmp_path):
    (tmp_path / "settings.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"unreadable.*delete it"):
        settings.load(tmp_path)
    (tmp_path / "settings.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a settings file"):
        settings.load(tmp_path)
    assert settings.load(tmp_path / "nowhere") is None
