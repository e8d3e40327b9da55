"""Decoding: token ids in, a stream of new token ids (and text) out, with a KV cache.

Greedy by default, so that every method in a comparison decodes alike; temperature and top-k sampling on
request, seeded. Whatever adapter is in the model's slot is used; this module knows nothing about adapters,
documents or prompts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from lift_memory.config import GenerationConfig


def _forward(model, ids, past):
    import torch

    from lift_memory.forward import run

    return run(model, torch.tensor([ids], device=model.device), keep=1, cache=past, use_cache=True)


def generate_ids(model, prompt_ids: list[int], config: GenerationConfig, eos_ids: Iterable[int] = ()) -> Iterator[int]:
    """Yield up to ``config.max_new_tokens`` new token ids; stops before an end-of-sequence id, or once
    ``config.max_seconds`` have passed."""
    import time

    import torch

    eos = frozenset(eos_ids)
    generator = None
    if config.temperature > 0:
        generator = torch.Generator(device=model.device).manual_seed(config.seed)
    deadline = None if config.max_seconds is None else time.monotonic() + config.max_seconds
    with torch.inference_mode():
        logits, past = _forward(model, prompt_ids, None)
        for _ in range(config.max_new_tokens):
            if deadline is not None and time.monotonic() > deadline:
                return
            logits = logits[0, -1].float()
            if config.temperature > 0:
                if config.top_k is not None:
                    kth = torch.topk(logits, min(config.top_k, logits.numel())).values[-1]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                probs = torch.softmax(logits / config.temperature, dim=-1)
                token = int(torch.multinomial(probs, 1, generator=generator))
            else:
                token = int(logits.argmax())
            if token in eos:
                return
            yield token
            logits, past = _forward(model, [token], past)


def stream_text(tokenizer, ids: Iterable[int]) -> Iterator[str]:
    """Turn a stream of token ids into text pieces whose concatenation is the decoded whole.

    A piece is released only when the text decoded so far extends what was released (a multi-byte
    character split across tokens is held back until it is complete).
    """
    seen: list[int] = []
    released = ""
    for token in ids:
        seen.append(token)
        text = tokenizer.decode(seen, skip_special_tokens=True)
        if text.startswith(released) and not text.endswith("\ufffd"):
            piece, released = text[len(released) :], text
            if piece:
                yield piece
    final = tokenizer.decode(seen, skip_special_tokens=True)
    if final.startswith(released) and len(final) > len(released):
        yield final[len(released) :]


def cut_at_stops(pieces: Iterable[str], stops: Sequence[str]) -> Iterator[str]:
    """Yield ``pieces`` up to the first of ``stops`` (which is not yielded), then stop consuming them.

    A stop string may span pieces, so text that could be the start of one is held back until the next piece
    shows it is not; what is yielded never contains a stop string or the start of one that then completes.
    """
    stops = [s for s in stops if s]
    if not stops:
        yield from pieces
        return
    pending = ""
    for piece in pieces:
        pending += piece
        cut = min((i for i in (pending.find(s) for s in stops) if i >= 0), default=-1)
        if cut >= 0:
            if cut:
                yield pending[:cut]
            return
        held = next(
            (n for n in range(min(len(pending), max(map(len, stops)) - 1), 0, -1)
             if any(s.startswith(pending[-n:]) for s in stops)),
            0,
        )  # fmt: skip
        if len(pending) > held:
            yield pending[: len(pending) - held]
            pending = pending[len(pending) - held :]
    if pending:
        yield pending
