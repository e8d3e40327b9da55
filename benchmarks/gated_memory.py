"""Benchmark: LoRA vs Gated Memory (paper gate, exact gate), on builtin:tiny and on a real model.

One runner, one row per adapter configuration. On an 8k-token haystack with three needles, each row trains
for the same number of steps and reports: needle recall from a bare prompt, document perplexity,
preservation = KL(base || adapted) on text that is not in the document (standard-library docstrings; lower is
better), trainable parameters, training tokens/s, and decode tokens/s relative to the base model.

With ``--model`` (e.g. smollm2-135m-instruct) the rows train at equal wall time instead, on the held-out
question set (lift_memory.eval.questions) with the window capped, with the default task mixture, and report
question accuracy (lift, hybrid), KL on unrelated text, in-context answers kept and decode speed relative to
the base model ({"benchmark": "gated_memory.real", ...}).

Prints one JSON line per row. Usage: python benchmarks/gated_memory.py [--steps 300]
       python benchmarks/gated_memory.py --model smollm2-135m-instruct [--window 512] [--tokens 1200]
              [--train-seconds 150] [--docs 2] [--rows lora,gated-paper,gated-exact,gated-exact-lr1e-2]
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
    {"name": "gated-exact-lr1e-2", "adapter": {"kind": "gated_memory", "gate": "exact"}, "learning_rate": 1e-2},
    {"name": "gated-exact-light", "adapter": {"kind": "gated_memory", "gate": "exact", "log_mass_init": 0.0}},
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
        train=TrainConfig(learning_rate=row.get("learning_rate"), max_steps=steps, plateau_patience=None),
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


def real_row(row: dict, model: str, window: int, tokens: int, seconds: float, n_docs: int) -> dict:
    """``row``'s adapter on the question set's first ``n_docs`` documents, trained ``seconds`` each."""
    from lift_memory import LiftMemory, MemoryConfig
    from lift_memory.config import ModelConfig, TrainConfig
    from lift_memory.eval import questions

    train = TrainConfig(
        learning_rate=row.get("learning_rate"),
        max_steps=None,
        max_seconds=seconds,
        plateau_patience=None,
        batch_tokens=1024,
    )
    config = MemoryConfig(model=ModelConfig(name=model, context_window=window), adapter=row["adapter"], train=train)
    per_doc, decode = [], None
    for doc in questions.DOCUMENTS[:n_docs]:
        with tempfile.TemporaryDirectory() as root:
            memory = LiftMemory(config, root=root, progress=False)
            record = memory.memorize(doc.build(memory.engine.tokenizer, tokens), doc_id=doc.name, train=True)
            per_doc.append({"steps": record.train.steps, **questions.measure(memory, doc, doc.name)})
            if decode is None:  # the same adapter layout for every document: measured once
                prompt = doc.facts[0].question
                base = decode_speed(memory, None, prompt, tokens=48, repeats=3)
                decode = decode_speed(memory, doc.name, prompt, tokens=48, repeats=3) / base
            learning_rate = memory.engine.train_config.learning_rate
            memory.close()
    mean = lambda key: round(sum(d[key] for d in per_doc) / len(per_doc), 3)  # noqa: E731
    return {
        "benchmark": "gated_memory.real",
        "model": model,
        "row": row["name"],
        "adapter": row["adapter"],
        "learning_rate": learning_rate,
        "window": window,
        "document_tokens": tokens,
        "train_seconds_each": seconds,
        "documents": len(per_doc),
        "steps": [d["steps"] for d in per_doc],
        "lift_accuracy": mean("lift"),
        "hybrid_accuracy": mean("hybrid"),
        "kl_unrelated": mean("kl"),
        "in_context_kept": mean("in_context"),
        "decode_relative_to_base": round(decode, 3),
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
    parser.add_argument("--model", help="compare on this real model and the question set instead")
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--tokens", type=int, default=1200)
    parser.add_argument("--train-seconds", type=float, default=150.0)
    parser.add_argument("--docs", type=int, default=2)
    args = parser.parse_args()
    wanted = set(args.rows.split(",")) if args.rows else None
    if args.model is not None:
        names = wanted or {"lora", "gated-paper", "gated-exact", "gated-exact-lr1e-2"}
        for row in ROWS:
            if row["name"] in names:
                line = real_row(row, args.model, args.window, args.tokens, args.train_seconds, args.docs)
                print(json.dumps(line), flush=True)
        return

    from lift_memory.builtin import _stdlib_docstrings
    from lift_memory.eval.niah.haystack import EXAMPLE_NEEDLES, build_haystack, corpus_texts, insert_needle
    from lift_memory.models import load_model

    tok = load_model("builtin:tiny", progress=False).tokenizer
    text = build_haystack(tok, 8192, corpus_texts())
    for needle, depth in zip(EXAMPLE_NEEDLES, (0.25, 0.5, 0.75), strict=True):
        text, _ = insert_needle(text, needle.text, depth, tok)
    held_out = "\n\n".join(_stdlib_docstrings()[-40:])  # text the document does not contain
    for row in ROWS:
        if wanted is None or row["name"] in wanted:
            print(json.dumps(run_row(row, args.steps, text, held_out)), flush=True)
    for gate in ("paper", "exact"):
        print(json.dumps(decode_overhead_larger_model(gate)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
