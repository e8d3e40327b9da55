"""Fixtures: tiny models built in code, and the cached builtin:tiny (helpers in ``lift_test_helpers``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lift_test_helpers import save_tiny_llama


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory) -> Path:
    """Same architecture and tokenizer as ``tiny_model_dir``, different weights."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama-other"), seed=1)


@pytest.fixture(scope="session")
def builtin_dir() -> Path:
    """builtin:tiny, built once into the user cache (a couple of minutes on a fresh machine)."""
    from lift_memory.builtin import ensure_builtin

    return ensure_builtin(progress=False)


@pytest.fixture
def fast_config():
    """A MemoryConfig that trains a few steps on the tiny random model."""
    from lift_memory.config import GenerationConfig, MemoryConfig, SegmentConfig, TrainConfig

    return MemoryConfig(
        segment=SegmentConfig(length=64, window=16),
        generation=GenerationConfig(max_new_tokens=8),
        train=TrainConfig(max_steps=3, batch_tokens=512, plateau_patience=None, warmup_steps=1),
    )
