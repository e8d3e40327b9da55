"""Test-wide guards for every suite in this repository: offline, loopback-only, GPU tests skipped on CPU.

Hubs are switched off before anything imports transformers; pytest-socket (``--allow-hosts`` in pyproject's
``addopts``) lets sockets connect to loopback only, so a real Chroma server on 127.0.0.1 is fine and the
internet is not; Chroma's telemetry is off.
"""

from __future__ import annotations

import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
