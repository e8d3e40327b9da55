"""Test-wide guards for every suite in this repository: offline, loopback-only, GPU tests skipped on CPU.

Hubs are switched off before anything imports transformers; sockets may connect to loopback only (a real
Chroma server on 127.0.0.1 is fine, the internet is not); Chroma's telemetry is off.
"""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_real_connect = socket.socket.connect


def _loopback_only(self, address):
    host = address[0] if isinstance(address, tuple) else None
    if host is not None:
        try:
            ok = ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
        except (OSError, ValueError):
            ok = False
        if not ok:
            raise OSError(f"tests may not reach {host!r}: only loopback connections are allowed")
    return _real_connect(self, address)


socket.socket.connect = _loopback_only


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
