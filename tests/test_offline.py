"""The tests' network guard: loopback only (pytest-socket, configured in pyproject's addopts)."""

from __future__ import annotations

import socket

import pytest


@pytest.mark.filterwarnings("ignore:A test tried to use socket:UserWarning")  # the guard's own report
def test_the_outside_is_blocked_and_loopback_is_not():
    from pytest_socket import SocketConnectBlockedError

    with pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("93.184.216.34", 80), timeout=2)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        socket.create_connection(server.getsockname(), timeout=2).close()
