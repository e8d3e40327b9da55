"""Files on disk: atomic writes, and where this machine keeps its caches.

Everything lift_memory writes goes through :func:`atomic_write`, so that readers see the old file or the new
one, never a partial one. This module knows nothing about what the files hold.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cache_dir() -> Path:
    """Where built and converted models live: ``$LIFT_MEMORY_CACHE``, else ``$XDG_CACHE_HOME/lift-memory``,
    else ``~/.cache/lift-memory``."""
    if env := os.environ.get("LIFT_MEMORY_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lift-memory"
