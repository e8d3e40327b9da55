"""Helpers shared by the tests: a text, a tokenizer and a tiny Llama built in code, a deterministic embedder.

(Imported by name from test modules; ``conftest.py`` holds the fixtures, and the repository's root
``conftest.py`` the offline guards every test runs under.)
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

TEXT = (
    "The quick brown fox jumps over the lazy dog. A stitch in time saves nine. "
    "All that glitters is not gold! Where there is smoke, there is fire? "
    "The early bird catches the worm. Actions speak louder than words.\n\n"
    "Numbers like 42 and 1999 appear here, with names such as Ada Lovelace and Alan Turing. "
) * 4


def make_tokenizer(vocab_size: int = 320):
    """A byte-level BPE tokenizer with a BOS post-processor, trained in milliseconds on TEXT."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([TEXT], trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", model_max_length=128
    )


def save_tiny_llama(path: Path, *, seed: int = 0, hidden: int = 32, tie: bool = False) -> Path:
    """Save a randomly initialized 2-layer Llama (GQA) and its tokenizer as a local model directory."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = make_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
        tie_word_embeddings=tie,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


class HashEmbedder:
    """A deterministic bag-of-words embedder for unit tests (the real default is tested separately)."""

    identity: ClassVar[dict] = {"kind": "hash", "dim": 64}

    def _vector(self, text: str) -> list[float]:
        import hashlib
        import math

        v = [0.0] * 64
        for word in text.lower().split():
            v[int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
        norm = math.sqrt(sum(x * x for x in v)) or 1.0
        return [x / norm for x in v]

    def embed_documents(self, texts):
        return [self._vector(t) for t in texts]

    def embed_query(self, text):
        return self._vector(text)
