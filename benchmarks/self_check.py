"""Benchmark: does the recall self-check predict how well an adapter answers questions asked later?

Memories of varied quality are made from the held-out question set (lift_memory.eval.questions): each document
is memorized with several step budgets, each into a folder of its own. For each memory, the self-check's score
(held-out probes cut from the document, scored right after training) is set next to the adapter's accuracy on
the document's questions, asked later through ``mode="lift"`` (the adapter alone). Prints one JSON line per
memory and a summary with the Spearman rank correlation over all of them:

  {"benchmark": "self_check.memory", "document": ..., "steps": ..., "self_check": ..., "lift_accuracy": ...}
  {"benchmark": "self_check", "memories": 9, "spearman": ..., "target": ">= 0.6 over >= 8 memories"}

Usage: python benchmarks/self_check.py [--model smollm2-135m-instruct] [--window 512] [--tokens 1200]
       [--budgets 4,12,36] [--docs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def ranks(values: list[float]) -> list[float]:
    """Ranks from 1, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Pearson correlation of the ranks; None when either side is constant."""
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx, vy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return None if not vx or not vy else round(cov / (vx * vy) ** 0.5, 3)


def main() -> int:
    from lift_memory import LiftMemory, MemoryConfig
    from lift_memory.config import ModelConfig, TrainConfig
    from lift_memory.eval import questions
    from lift_memory.eval.questions import DOCUMENTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--tokens", type=int, default=1200)
    parser.add_argument("--budgets", default="4,12,36", help="step budgets, comma-separated")
    parser.add_argument("--docs", type=int, default=3)
    args = parser.parse_args()

    pairs = []
    with tempfile.TemporaryDirectory() as scratch:
        for doc in DOCUMENTS[: args.docs]:
            for steps in map(int, args.budgets.split(",")):
                train = TrainConfig(max_steps=steps, batch_tokens=1024, plateau_patience=None)
                config = MemoryConfig(model=ModelConfig(name=args.model, context_window=args.window), train=train)
                memory = LiftMemory(config, root=f"{scratch}/{doc.name}-{steps}", progress=False)
                record = memory.memorize(doc.build(memory.engine.tokenizer, args.tokens), doc_id=doc.name, train=True)
                accuracy = round(questions.accuracy(memory, doc, doc.name, "lift", max_new_tokens=24), 3)
                checked = record.self_check
                row = {
                    "benchmark": "self_check.memory",
                    "model": args.model,
                    "document": doc.name,
                    "steps": record.train.steps,
                    "self_check": None if checked is None else checked.score,
                    "probes": 0 if checked is None else checked.probes,
                    "lift_accuracy": accuracy,
                }
                print(json.dumps(row), flush=True)
                if checked is not None:
                    pairs.append((checked.score, accuracy))
    rho = spearman([p[0] for p in pairs], [p[1] for p in pairs]) if len(pairs) > 1 else None
    summary = {"benchmark": "self_check", "model": args.model, "memories": len(pairs), "spearman": rho}
    print(json.dumps(summary | {"target": ">= 0.6 over >= 8 memories"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
