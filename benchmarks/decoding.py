"""Benchmark: lift-memory's decoding loop against transformers' ``generate`` with a text streamer.

Both decode the same prompt greedily with a KV cache and stream text pieces, once without stop strings and
once with ``stop_strings`` that never occur (so both decode the full budget). The figure of merit is the ratio
of tokens per second, ours over transformers', measured in the same run (medians of repeats, interleaved).
The texts must be equal: the benchmark checks it.

Prints one JSON line per (model, case). Usage: python benchmarks/decoding.py [--tokens 128] [--real]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT = "The history of the printing press begins in the fifteenth century, when"
STOPS = ["<<never here>>", "\n\n\n\n"]


def ours(base, ids: list[int], tokens: int, stops: list[str]) -> tuple[str, float]:
    from lift_memory.config import GenerationConfig
    from lift_memory.generate import cut_at_stops, generate_ids, stream_text

    config = GenerationConfig(max_new_tokens=tokens, stop=tuple(stops))
    started = time.perf_counter()
    pieces = list(cut_at_stops(stream_text(base.tokenizer, generate_ids(base.model, ids, config, ())), stops))
    return "".join(pieces), time.perf_counter() - started


def transformers_generate(base, ids: list[int], tokens: int, stops: list[str]) -> tuple[str, float]:
    import torch
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(base.tokenizer, skip_prompt=True, skip_special_tokens=True)
    kwargs = {
        "input_ids": torch.tensor([ids]),
        "max_new_tokens": tokens,
        "min_new_tokens": tokens,  # no end-of-sequence stop: both decode the whole budget
        "do_sample": False,
        "streamer": streamer,
        "pad_token_id": base.tokenizer.pad_token_id or 0,
    }
    if stops:
        kwargs.update(stop_strings=stops, tokenizer=base.tokenizer)
    started = time.perf_counter()
    worker = threading.Thread(target=base.model.generate, kwargs=kwargs)
    worker.start()
    text = "".join(streamer)
    worker.join()
    return text, time.perf_counter() - started


def run(name: str, tokens: int, repeats: int) -> None:
    from lift_memory.models import load_model

    base = load_model(name, progress=False)
    ids = list(base.prefix_ids) + base.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    for case, stops in (("plain", []), ("stop_strings", STOPS)):
        times = {"ours": [], "transformers": []}
        texts = {}
        for _ in range(repeats):  # interleaved, so both see the same machine state
            for label, fn in (("ours", ours), ("transformers", transformers_generate)):
                texts[label], seconds = fn(base, ids, tokens, stops)
                times[label].append(seconds)
        ours_rate = tokens / statistics.median(times["ours"])
        theirs_rate = tokens / statistics.median(times["transformers"])
        print(
            json.dumps(
                {
                    "benchmark": "decoding",
                    "model": name,
                    "case": case,
                    "new_tokens": tokens,
                    "ours_tokens_per_second": round(ours_rate, 1),
                    "transformers_tokens_per_second": round(theirs_rate, 1),
                    "ratio": round(ours_rate / theirs_rate, 3),
                    "same_text": texts["ours"] == texts["transformers"],
                    "note": "greedy, KV cache, text streamed; medians of interleaved repeats",
                }
            ),
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--real", action="store_true", help="also SmolLM2-135M-Instruct (the packaged model)")
    args = parser.parse_args()
    run("builtin:tiny", args.tokens, args.repeats)
    if args.real:
        run("smollm2-135m-instruct", args.tokens, args.repeats)


if __name__ == "__main__":
    main()
