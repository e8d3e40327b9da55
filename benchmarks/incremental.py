"""Benchmark: re-memorizing after a small edit, incrementally versus from scratch.

A document of the held-out question set (lift_memory.eval.questions) is memorized; then one of its fact
sentences is replaced by a new fact (about 1 % of the text), and the edited text is memorized again twice: over
the first memory (incremental: from its adapter, on what the edit touches and a replay sample) and in a fresh
folder (from scratch, the baseline of the same run). Prints one JSON line per document:

  {"benchmark": "incremental", "time_ratio": ..., "new_fact": {...}, "old_facts": {...}, ...}

time_ratio is the incremental write's seconds over the from-scratch write's. Recall is the NIAH keyword score of
``mode="lift"`` answers (the adapter alone, no retrieval) to the facts' questions: new_fact for the new
sentence, old_facts for the facts the edit left alone, before and after. builtin:tiny cannot read facts, so on
it only the times mean anything; run it on SmolLM2 for recall.

Usage: python benchmarks/incremental.py [--model smollm2-135m-instruct --window 512] [--tokens 1500]
       [--steps 40] [--docs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

NEW_FACT = (
    "The night watch is kept by a retired pilot named Odile Varga.",
    "Who keeps the night watch?",
    ("Odile",),
)
TARGET = "time_ratio <= 0.25, new fact recalled, old_facts.kept >= 0.9"


def recall(memory, doc_id: str, facts) -> float:
    from lift_memory.eval.questions import score

    scores = [score(memory.ask(f.question, doc_id, mode="lift", max_new_tokens=24).text, f) for f in facts]
    return round(sum(scores) / max(len(scores), 1), 3)


def run(doc, args) -> dict:
    from lift_memory import LiftMemory
    from lift_memory.config import MemoryConfig, ModelConfig, TrainConfig
    from lift_memory.eval.questions import Fact

    train = TrainConfig(max_steps=args.steps, batch_tokens=args.batch_tokens, plateau_patience=None)
    config = MemoryConfig(model=ModelConfig(name=args.model, context_window=args.window), train=train)
    with tempfile.TemporaryDirectory() as scratch:
        memory = LiftMemory(config, root=f"{scratch}/incremental", progress=False)
        text = doc.build(memory.engine.tokenizer, args.tokens)
        replaced, kept = (
            doc.facts[len(doc.facts) // 2],
            [f for i, f in enumerate(doc.facts) if i != len(doc.facts) // 2],
        )
        new = Fact(*NEW_FACT)
        edited = text.replace(replaced.sentence, new.sentence)
        assert edited != text, "the fact sentence was not found in the document"

        first = memory.memorize(text, doc_id=doc.name, train=True)
        old_before = recall(memory, doc.name, kept)
        started = time.perf_counter()
        update = memory.memorize(edited, doc_id=doc.name, replace=True, train=True)
        incremental_seconds = time.perf_counter() - started
        new_incremental, old_after = recall(memory, doc.name, [new]), recall(memory, doc.name, kept)

        fresh = LiftMemory(config, root=f"{scratch}/scratch", progress=False)
        started = time.perf_counter()
        scratch_record = fresh.memorize(edited, doc_id=doc.name, train=True)
        scratch_seconds = time.perf_counter() - started
        new_scratch = recall(fresh, doc.name, [new])
    return {
        "benchmark": "incremental",
        "model": args.model,
        "window": memory.engine.base.context_window,
        "document": doc.name,
        "document_tokens": first.n_tokens,
        "edit_fraction": (update.extra["incremental"] or {}).get("changed"),
        "incremental": update.extra["incremental"] is not None,
        "steps": {"first": first.train.steps, "incremental": update.train.steps, "scratch": scratch_record.train.steps},
        "seconds": {"incremental": round(incremental_seconds, 2), "scratch": round(scratch_seconds, 2)},
        "time_ratio": round(incremental_seconds / scratch_seconds, 3),
        "new_fact": {"incremental": new_incremental, "scratch": new_scratch},
        "old_facts": {
            "before": old_before,
            "after": old_after,
            "kept": round(old_after / old_before, 3) if old_before else None,
        },
        "target": TARGET,
    }


def main() -> int:
    from lift_memory.eval.questions import DOCUMENTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:tiny")
    parser.add_argument("--window", type=int, help="cap the model's context window (tokens)")
    parser.add_argument("--tokens", type=int, default=1500, help="document length")
    parser.add_argument("--steps", type=int, default=40, help="the full run's step budget")
    parser.add_argument("--batch-tokens", type=int, default=1024)
    parser.add_argument("--docs", type=int, default=1, help="documents of the question set")
    args = parser.parse_args()
    for doc in DOCUMENTS[: args.docs]:
        print(json.dumps(run(doc, args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
