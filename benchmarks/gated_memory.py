"""Benchmark: LoRA vs Gated Memory (paper gate, exact gate) on builtin:tiny, at equal optimizer steps.

One runner, one row per adapter configuration. On an 8k-token haystack with three needles, each row trains
for the same number of steps and reports: needle recall from a bare prompt, document perplexity,
preservation = KL(base || adapted) on text that is not in the document (standard-library docstrings; lower is
better), trainable parameters, training tokens/s, and decode tokens/s relative to the base model.

Prints one JSON line per row. Usage: python benchmarks/gated_memory.py [--steps 300]
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

ROWS = [
    {"name": "lora", "adapter": {"kind": "lora"}},
    {"name": "gated-paper", "adapter": {"kind": "gated_memory", "gate": "paper"}},
    {"name": "gated-exact", "adapter": {"kind": "gated_memory", "gate": "exact"}},
    {"name": "gated-paper-h8", "adapter": {"kind": "gated_memory", "gate": "paper", "hidden_mult": 8}},
    {"name": "gated-exact-h8", "adapter": {"kind": "gated_memory", "gate": "exact", "hidden_mult": 8}},
]


def decode_speed(memory, doc_id: str | None, prompt: str, tokens: int = 64, repeats: int = 5) -> float:
    """Median decode tokens/s for ``tokens`` new tokens (greedy, KV cache)."""
    from lift_memory.config import GenerationConfig
    from lift_memory.generate import generate_ids

    eng = memory.engine
    ids = list(eng.base.prefix_ids) + eng.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    rates = []
    with eng.use(doc_id):
        for _ in range(repeats):
            started = time.perf_counter()
            n = sum(1 for _ in generate_ids(eng.adapter.model, ids, GenerationConfig(max_new_tokens=tokens), ()))
            rates.append(n / (time.perf_counter() - started))
    return statistics.median(rates)


def run_row(row: dict, steps: int, text: str, held_out: str) -> dict:
    from lift_memory import LiftMemory, MemoryConfig
    from lift_memory.config import RetrievalConfig, TasksConfig, TrainConfig
    from lift_memory.eval.niah.haystack import EXAMPLE_NEEDLES
    from lift_memory.eval.niah.scoring import keyword_score
    from lift_memory.eval.probe import kl_from_base

    config = MemoryConfig(
        adapter=row["adapter"],
        train=TrainConfig(max_steps=steps, plateau_patience=None),
        retrieval=RetrievalConfig(enabled=False),
        tasks=TasksConfig(generator="none"),  # adapters compared on the same segments and windows
    )
    with tempfile.TemporaryDirectory() as root:
        memory = LiftMemory(config, root=root, progress=False)
        record = memory.memorize(text, doc_id="haystack")
        recall = [
            keyword_score(memory.complete(n.prefix, "haystack", max_new_tokens=20), n.keywords) for n in EXAMPLE_NEEDLES
        ]
        base_rate = decode_speed(memory, None, EXAMPLE_NEEDLES[0].prefix)
        adapted_rate = decode_speed(memory, "haystack", EXAMPLE_NEEDLES[0].prefix)
        return {
            "benchmark": "gated_memory",
            "row": row["name"],
            "adapter": row["adapter"],
            "steps": record.train.steps,
            "learning_rate": memory.engine.train_config.learning_rate,
            "needle_recall": round(sum(recall) / len(recall), 3),
            "perplexity": round(memory.perplexity(text, "haystack"), 3),
            "kl_heldout": round(kl_from_base(memory, held_out, "haystack"), 4),
            "trainable_parameters": record.adapter["parameters"],
            "train_tokens_per_second": record.train.tokens_per_second,
            "decode_tokens_per_second": round(adapted_rate, 1),
            "decode_relative_to_base": round(adapted_rate / base_rate, 3),
        }


def decode_overhead_larger_model(gate: str, tokens: int = 32) -> dict:
    """Decode overhead on a randomly initialized Llama of realistic width (1024 hidden, 8 layers, 16 heads,
    GQA 8), where per-token compute, not per-operation overhead, dominates."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from lift_memory.adapters import attach
    from lift_memory.config import GatedMemoryAdapterConfig, GenerationConfig
    from lift_memory.generate import generate_ids

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=1024,
        intermediate_size=2816,
        num_hidden_layers=8,
        num_attention_heads=16,
        num_key_value_heads=8,
        max_position_embeddings=2048,
    )
    model = LlamaForCausalLM(config).eval()
    adapter = attach(model, GatedMemoryAdapterConfig(gate=gate))
    with torch.no_grad():
        for layer in adapter.layers:
            layer.scale.fill_(0.5)  # the memory takes part, as after training
    prompt = list(range(1, 257))

    def rate(context) -> float:
        rates = []
        with context:
            for _ in range(3):
                started = time.perf_counter()
                n = sum(1 for _ in generate_ids(model, prompt, GenerationConfig(max_new_tokens=tokens), ()))
                rates.append(n / (time.perf_counter() - started))
        return statistics.median(rates)

    base, adapted = rate(adapter.disabled()), rate(torch.no_grad())
    return {
        "benchmark": "gated_memory_decode_larger_model",
        "gate": gate,
        "model": "random Llama 1024x8 (GQA 16/8), fp32, CPU",
        "base_tokens_per_second": round(base, 2),
        "adapted_tokens_per_second": round(adapted, 2),
        "decode_relative_to_base": round(adapted / base, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rows", help="comma-separated row names (default: all)")
    args = parser.parse_args()

    from lift_memory.builtin import _stdlib_docstrings
    from lift_memory.eval.niah.haystack import EXAMPLE_NEEDLES, build_haystack, corpus_texts, insert_needle
    from lift_memory.models import load_model

    tok = load_model("builtin:tiny", progress=False).tokenizer
    text = build_haystack(tok, 8192, corpus_texts())
    for needle, depth in zip(EXAMPLE_NEEDLES, (0.25, 0.5, 0.75), strict=True):
        text, _ = insert_needle(text, needle.text, depth, tok)
    held_out = "\n\n".join(_stdlib_docstrings()[-40:])  # text the document does not contain
    wanted = set(args.rows.split(",")) if args.rows else None
    for row in ROWS:
        if wanted is None or row["name"] in wanted:
            print(json.dumps(run_row(row, args.steps, text, held_out)), flush=True)
    for gate in ("paper", "exact"):
        print(json.dumps(decode_overhead_larger_model(gate)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
