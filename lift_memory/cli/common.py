"""What every subcommand shares: the settings its flags describe, the memory they open, how results print, and
argparse types that name their range."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lift_memory.errors import LiftMemoryError


def config_from_args(args: argparse.Namespace):
    """The MemoryConfig the flags describe: ``--config FILE`` (JSON or TOML), then each flag given on top. Only
    what is given counts as set, so a memory folder's remembered settings fill in the rest."""
    from lift_memory.config import MemoryConfig

    data: dict[str, Any] = _config_file(args.config) if getattr(args, "config", None) else {}

    def put(section: str, field: str, value: Any) -> None:
        if value is not None:
            data.setdefault(section, {})[field] = value

    put("model", "name", args.model)
    put("model", "context_window", getattr(args, "window", None))
    put("train", "max_steps", getattr(args, "max_steps", None))
    put("train", "max_epochs", getattr(args, "max_epochs", None))
    if getattr(args, "adapter", None):
        gate = {"gate": args.gate} if args.adapter == "gated_memory" and getattr(args, "gate", None) else {}
        data["adapter"] = {**data.get("adapter", {}), "kind": args.adapter, **gate}
    if getattr(args, "start", None):
        data["start"] = args.start
    return MemoryConfig.model_validate(data)


def toml():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib


def _config_file(path: str) -> dict[str, Any]:
    text_path = Path(path)
    try:
        raw = text_path.read_bytes()
    except OSError as exc:
        raise LiftMemoryError(f"cannot read --config {path!r}: {exc.strerror}") from exc
    try:
        data = toml().loads(raw.decode("utf-8")) if text_path.suffix == ".toml" else json.loads(raw)
    except ValueError as exc:
        raise LiftMemoryError(f"--config {path!r} is not valid {text_path.suffix[1:] or 'JSON'}: {exc}") from exc
    if not isinstance(data, dict):
        raise LiftMemoryError(f"--config {path!r} must hold an object of MemoryConfig fields")
    return data


def open_memory(args: argparse.Namespace, root: str | Path | None = None):
    from lift_memory.memory import LiftMemory

    return LiftMemory(config_from_args(args), root=root or args.root, progress=not args.quiet)


def emit(args: argparse.Namespace, data: Any, human: str) -> None:
    print(json.dumps(data, indent=2, default=str) if args.json else human)


def csv_list(kind):
    return lambda text: [kind(x) for x in text.split(",") if x.strip()]


_KIND_NAMES = {int: "an integer", float: "a number"}


def number(kind, low: float, high: float | None = None):
    """An argparse type: ``kind`` within [low, high], else a usage error (exit 2) that names the range."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {_KIND_NAMES[kind]}") from None
        if value < low or (high is not None and value > high):
            allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"{text} is out of range: must be {allowed}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


COUNT = number(int, 1)
FRACTION = number(float, 0.0, 1.0)
EPOCHS = number(float, 0.1)
