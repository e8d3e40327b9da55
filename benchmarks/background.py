"""Benchmark: how long ``memorize(background=True)`` keeps the caller, against storing and indexing alone.

Both calls store and index a document of the same length, with the model and the embedder already loaded:
``memorize(train=False)`` (the baseline: what has to happen before an answer can cite the document) and
``memorize(background=True)`` (the same, then a training job queued). The median over a few documents of each,
in the same process. Prints one JSON line:

  {"benchmark": "background", "index_seconds": ..., "background_seconds": ..., "ratio": ..., "target": "ratio <= 1.5"}

Usage: python benchmarks/background.py [--model builtin:tiny] [--tokens 4000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    from lift_memory import LiftMemory, MemoryConfig
    from lift_memory.config import ModelConfig, TrainConfig
    from lift_memory.eval.niah.haystack import build_haystack, corpus_texts

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:tiny")
    parser.add_argument("--tokens", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    config = MemoryConfig(model=ModelConfig(name=args.model), train=TrainConfig(max_steps=5))
    with tempfile.TemporaryDirectory() as root, LiftMemory(config, root=root, progress=False) as memory:
        tokenizer = memory.engine.tokenizer
        texts = [
            f"Document {i}.\n\n" + build_haystack(tokenizer, args.tokens, corpus_texts()[i:])
            for i in range(2 * args.repeats + 1)
        ]
        memory.memorize(texts.pop(), doc_id="warm-up", train=False)  # the embedder and the store, loaded
        timings: dict[str, list[float]] = {"index": [], "background": []}
        for i in range(args.repeats):
            for kind, extra in (("index", {"train": False}), ("background", {"background": True})):
                started = time.perf_counter()
                memory.memorize(texts.pop(), doc_id=f"{kind}-{i}", **extra)
                timings[kind].append(time.perf_counter() - started)
                memory.wait()  # the next call starts with the worker idle, as an agent's next document would
        index, background = (statistics.median(timings[k]) for k in ("index", "background"))
        row = {
            "benchmark": "background",
            "model": args.model,
            "document_tokens": memory.get("index-0").n_tokens,
            "index_seconds": round(index, 3),
            "background_seconds": round(background, 3),
            "ratio": round(background / index, 3),
            "target": "ratio <= 1.5",
        }
    print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
