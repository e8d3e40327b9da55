"""Files on disk: atomic writes, inter-process locks, and where this machine keeps its caches.

Everything lift_memory writes goes through :func:`atomic_write`, so that readers see the old file or the new
one, never a partial one, and a write that fails (a full disk, a read-only root) leaves no partial file and
raises :class:`~lift_memory.errors.StorageError`. This module knows nothing about what the files hold.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from lift_memory.errors import DocumentBusyError, StorageError

_STORAGE_ERRNOS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
}


@contextlib.contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Turn the OS errors a user can fix (permissions, read-only, full disk) into one-line
    :class:`StorageError` s that say what could not be written; other errors pass unchanged."""
    try:
        yield
    except StorageError:
        raise
    except OSError as exc:
        reason = _STORAGE_ERRNOS.get(exc.errno)
        if reason is None:
            raise
        hint = "free some space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "check its permissions"
        where = f" ({exc.filename})" if exc.filename else ""
        raise StorageError(
            f"cannot write {what}{where}: {reason}; {hint} and retry (nothing stored before was changed)"
        ) from exc


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a partial one."""
    with storage_errors(str(path)):
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


@contextlib.contextmanager
def locked(path: Path, *, timeout: float, what: str) -> Iterator[None]:
    """Hold the inter-process lock file ``path`` (``filelock``; released when the process dies, kill -9
    included). Waits up to ``timeout`` seconds, then raises :class:`DocumentBusyError` naming ``what``."""
    from filelock import FileLock, Timeout

    with storage_errors(f"the lock {path}"):
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path), timeout=timeout)
        try:
            lock.acquire()
        except Timeout:
            raise DocumentBusyError(
                f"{what} is being written by another process (waited {timeout:g} s); retry when it is done"
            ) from None
    try:
        yield
    finally:
        lock.release()


def writable(path: Path) -> bool:
    """Whether this process may create files in ``path`` (or in its nearest existing parent)."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return os.access(path, os.W_OK)


def cache_dir() -> Path:
    """Where built and converted models live: ``$LIFT_MEMORY_CACHE``, else the user cache folder (platformdirs:
    ``~/.cache/lift-memory`` on Linux, following ``$XDG_CACHE_HOME``)."""
    if env := os.environ.get("LIFT_MEMORY_CACHE"):
        return Path(env).expanduser()
    from platformdirs import user_cache_path

    return user_cache_path("lift-memory", appauthor=False)


def file_digest(path: Path) -> str:
    """SHA-256 of ``path``'s content, streamed in 4 MiB blocks (about a second per GB here) and cached by
    (resolved path, size, modification time) in ``<cache>/digests.json``, so that a large file already hashed
    costs nothing the next time. A cache that cannot be written costs a hash next time, nothing else."""
    path = Path(path).resolve()
    stat = path.stat()
    key, stamp = str(path), [stat.st_size, stat.st_mtime_ns]
    index = cache_dir() / "digests.json"
    try:
        known = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    known = known if isinstance(known, dict) else {}
    entry = known.get(key)
    if isinstance(entry, dict) and entry.get("stamp") == stamp:
        return entry["sha256"]
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    known = {k: v for k, v in known.items() if isinstance(v, dict) and Path(k).exists()}  # files since deleted go
    known[key] = {"stamp": stamp, "sha256": digest.hexdigest()}
    with contextlib.suppress(OSError):
        atomic_write(index, json.dumps(known, indent=1).encode("utf-8"))
    return known[key]["sha256"]


def write_folder(folder: Path, fill, *, overwrite: bool = False) -> Path:
    """Make ``folder`` by ``fill(tmp)`` into a temporary sibling renamed into place, so it appears whole or not at
    all; an existing ``folder`` is a :class:`ConfigError` unless ``overwrite``. Returns ``folder``."""
    import shutil
    import uuid

    from lift_memory.errors import ConfigError

    if folder.exists() and not overwrite:
        raise ConfigError(f"{str(folder)!r} exists; choose another folder or pass overwrite=True (CLI: --overwrite)")
    tmp = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        with storage_errors(f"the folder {folder}"):
            tmp.mkdir(parents=True)
            fill(tmp)
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
