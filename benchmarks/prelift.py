"""Benchmark: per-document LIFT from the plain start vs from a pre-LIFT start, on builtin:tiny.

The pre-LIFT corpus is the standard library's docstrings grouped into documents (a folder of .txt files);
evaluation documents are haystacks of held-out Python documentation (never seen in any training) with a
needle each. For each start and document: steps and seconds until the needle comes back from a bare prompt,
document perplexity after a fixed number of steps, and KL(base || adapted) on unrelated text — for the start
itself and after per-document LIFT.

Prints JSON lines. Usage: python benchmarks/prelift.py [--prelift-steps 400] [--steps 150]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def write_corpus(folder: Path, docs: int = 24, chars: int = 6000) -> None:
    from lift_memory.builtin import _stdlib_docstrings

    pieces = _stdlib_docstrings()
    folder.mkdir(parents=True, exist_ok=True)
    text, n = "", 0
    for piece in pieces:
        text += piece + "\n\n"
        if len(text) >= chars:
            (folder / f"doc{n:03d}.txt").write_text(text)
            text, n = "", n + 1
            if n == docs:
                break


def evaluate(start: Path | None, docs, steps: int, unrelated: str, root: str) -> dict:
    from lift_memory import LiftMemory, MemoryConfig
    from lift_memory.config import RetrievalConfig, TrainConfig
    from lift_memory.eval.probe import RecallProbe, kl_from_base

    config = MemoryConfig(
        train=TrainConfig(max_steps=steps, plateau_patience=None),
        retrieval=RetrievalConfig(enabled=False),
        start=start,
    )
    memory = LiftMemory(config, root=root, progress=False)
    rows = []
    start_kl = kl_from_base(memory, unrelated)
    for i, (text, needle) in enumerate(docs):
        probe = RecallProbe(memory, needle, every=5)
        record = memory.memorize(text, doc_id=f"doc{i}", train=True, callbacks=[probe])
        rows.append(
            {
                "steps_to_recall": probe.recalled_at_step,
                "seconds_to_recall": probe.recalled_at_seconds,
                "perplexity": round(memory.perplexity(text, record.doc_id), 3),
                "kl_unrelated": round(kl_from_base(memory, unrelated, record.doc_id), 4),
            }
        )
    recalled = [r["steps_to_recall"] for r in rows if r["steps_to_recall"] is not None]
    return {
        "documents": rows,
        "recalled": f"{len(recalled)}/{len(rows)}",
        "median_steps_to_recall": statistics.median(recalled) if recalled else None,
        "mean_perplexity": round(statistics.mean(r["perplexity"] for r in rows), 3),
        "kl_unrelated_start": round(start_kl, 4),
        "mean_kl_unrelated_after": round(statistics.mean(r["kl_unrelated"] for r in rows), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prelift-steps", type=int, default=400)
    parser.add_argument("--steps", type=int, default=150, help="per-document steps")
    parser.add_argument("--tokens", type=int, default=2048, help="evaluation document length")
    args = parser.parse_args()

    from lift_memory import MemoryConfig
    from lift_memory.builtin import _stdlib_docstrings, held_out_text
    from lift_memory.config import TrainConfig
    from lift_memory.eval.niah.haystack import EXAMPLE_NEEDLES, build_haystack, insert_needle
    from lift_memory.models import load_model
    from lift_memory.prelift import prelift

    tok = load_model("builtin:tiny", progress=False).tokenizer
    held = held_out_text()
    docs = []
    for i, needle in enumerate(EXAMPLE_NEEDLES):  # different held-out text for each document
        haystack = build_haystack(tok, args.tokens, held[i::3] or held)
        docs.append((insert_needle(haystack, needle.text, 0.5, tok)[0], needle))
    unrelated = "\n\n".join(_stdlib_docstrings()[-40:])  # in no evaluation document nor in the pre-LIFT corpus
    with tempfile.TemporaryDirectory() as root:
        corpus, start = Path(root) / "corpus", Path(root) / "start"
        write_corpus(corpus)
        config = MemoryConfig(train=TrainConfig(max_steps=args.prelift_steps, plateau_patience=None))
        manifest = prelift(corpus, start, config, progress=False)
        plain = evaluate(None, docs, args.steps, unrelated, f"{root}/plain")
        pre = evaluate(start, docs, args.steps, unrelated, f"{root}/pre")
    ratio = None
    if plain["median_steps_to_recall"] and pre["median_steps_to_recall"]:
        ratio = round(pre["median_steps_to_recall"] / plain["median_steps_to_recall"], 3)
    print(
        json.dumps(
            {
                "benchmark": "prelift",
                "adapter": "lora (builtin:tiny default)",
                "prelift_steps": manifest["train"]["steps"],
                "prelift_seconds": manifest["train"]["seconds"],
                "corpus_documents": len(manifest["corpus"]["train"]),
                "per_document_steps": args.steps,
                "plain_start": plain,
                "prelift_start": pre,
                "steps_to_recall_ratio": ratio,
                "target": "ratio <= 0.5 at no higher KL on unrelated text",
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
