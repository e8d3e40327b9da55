"""What a memory folder remembers about how it was made, so that reopening it needs no flags.

``<root>/settings.json`` holds the settings that give the stored data its meaning: the base model (adapters
only fit the weights they were trained on), the adapter configuration, and the retrieval settings (the index
was embedded and chunked with them, and may live on a server). It is written at the folder's first write.
When a folder is opened, every remembered setting the caller did not set explicitly (pydantic's
``model_fields_set``) is taken from the folder; one set explicitly to another value is a :class:`ConfigError`.

This module knows configs and one JSON file; nothing about models, adapters or stores.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lift_memory.config import MemoryConfig
from lift_memory.errors import ConfigError
from lift_memory.files import atomic_write

FILE = "settings.json"
FORMAT = 1
REMEMBERED: dict[str, tuple[str, ...] | None] = {
    "model": ("name", "revision", "context_window"),
    "adapter": None,  # the whole adapter configuration
    "retrieval": ("enabled", "embedder", "chunk_size", "chunk_overlap", "host", "port"),
}
"""Per config section, the fields a folder remembers (None: all of them)."""


def default_root() -> Path:
    """``$LIFT_MEMORY_HOME``, else the user data folder (platformdirs: ``~/.local/share/lift-memory`` on Linux,
    following ``$XDG_DATA_HOME``)."""
    if env := os.environ.get("LIFT_MEMORY_HOME"):
        return Path(env).expanduser()
    from platformdirs import user_data_path

    return user_data_path("lift-memory", appauthor=False)


def remembered(config: MemoryConfig) -> dict[str, Any]:
    """The settings of ``config`` that a folder remembers, as JSON."""
    out: dict[str, Any] = {"format": FORMAT}
    for section, fields in REMEMBERED.items():
        dumped = getattr(config, section).model_dump(mode="json")
        out[section] = dumped if fields is None else {f: dumped[f] for f in fields}
    return out


def load(root: Path) -> dict[str, Any] | None:
    """The settings stored in ``root`` (None: none yet)."""
    path = Path(root) / FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):  # a root that is a file gets its own error on first use
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{path} is unreadable ({type(exc).__name__}); delete it, and the next memorize writes it anew"
        ) from exc
    if not isinstance(stored, dict) or any(not isinstance(stored.get(s), dict) for s in REMEMBERED):
        raise ConfigError(f"{path} is not a settings file; delete it, and the next memorize writes it anew")
    return stored


def save(root: Path, config: MemoryConfig) -> None:
    """Store ``config``'s remembered settings in ``root`` (at the folder's first write)."""
    atomic_write(Path(root) / FILE, json.dumps(remembered(config), indent=2, sort_keys=True).encode("utf-8"))


def reconcile(config: MemoryConfig, stored: dict[str, Any] | None, root: Path) -> MemoryConfig:
    """``config`` with every remembered setting it does not set explicitly taken from ``stored``.

    Raises:
        ConfigError: ``config`` sets a remembered setting explicitly to another value than the folder's.
    """
    if stored is None:
        return config
    data = config.model_dump(mode="json")
    for section, fields in REMEMBERED.items():
        theirs = stored[section]
        if fields is None:  # compared whole: an adapter passed explicitly must be the folder's
            if section in config.model_fields_set and data[section] != theirs:
                raise _conflict(root, section, theirs, data[section])
            data[section] = theirs
            continue
        explicit = getattr(config, section).model_fields_set if section in config.model_fields_set else set()
        for field in (f for f in fields if f in theirs):
            if field in explicit and data[section][field] != theirs[field]:
                raise _conflict(root, f"{section}.{field}", theirs[field], data[section][field])
            data[section][field] = theirs[field]
    return MemoryConfig.model_validate(data)


def _conflict(root: Path, name: str, theirs: Any, mine: Any) -> ConfigError:
    return ConfigError(
        f"the memory at {root} was made with {name}={theirs!r}, but {mine!r} was given; omit it (the folder "
        f"remembers it), or use another root"
    )
