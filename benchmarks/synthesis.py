"""Benchmark: synthesized tasks on builtin:tiny.

Prints JSON lines:
  {"benchmark": "synthesis_mixture", ...}   segments only vs segments + extractive tasks, at equal wall time:
                                            recall on held-out fill-in-the-blank prompts, needle recall from a
                                            bare prompt, document perplexity
  {"benchmark": "synthesis_streaming", ...} a served QA writer with network latency (simulated): time to the
                                            first training step and total time, streaming vs
                                            generate-everything-then-train

Usage: python benchmarks/synthesis.py [--seconds 25] [--latency 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class LatentWriter:
    """A stand-in for a served model (the only fake: the network boundary). After ``latency`` seconds it
    answers a QA prompt with one pair whose evidence is the first sentence after the excerpt's marker."""

    model_name = "latent-writer"

    def __init__(self, latency: float) -> None:
        self.latency = latency

    async def ainvoke(self, prompt: str, **kwargs):
        from lift_memory.tasks.llm import MARKER

        await asyncio.sleep(self.latency)
        part = prompt.split(MARKER, 1)[1].split("</excerpt>")[0].strip()
        sentence = part.split(". ")[0].strip()
        words = sentence.split()
        return json.dumps(
            [
                {
                    "question": f"What follows '{' '.join(words[:4])}'?",
                    "answer": " ".join(words[4:12]) or sentence,
                    "evidence": sentence,
                }
            ]
        )


def mixture(seconds: float) -> dict:
    from lift_memory import LiftMemory, MemoryConfig
    from lift_memory.config import RetrievalConfig, TasksConfig, TrainConfig
    from lift_memory.eval.niah.haystack import Needle, build_haystack, corpus_texts, insert_needle
    from lift_memory.eval.niah.scoring import keyword_score
    from lift_memory.eval.probe import task_accuracy
    from lift_memory.tasks.extractive import ExtractiveGenerator, recall_tasks

    results = {}
    with tempfile.TemporaryDirectory() as root:
        probe = LiftMemory(root=f"{root}/probe", progress=False)
        needle = Needle()
        tok = probe.engine.tokenizer
        text, _ = insert_needle(build_haystack(tok, 8192, corpus_texts()), needle.text, 0.5, tok)
        held_out = recall_tasks(text)[::4]
        excluding = ExtractiveGenerator(exclude=[t.prompt for t in held_out])
        for name, generator in (("segments_only", None), ("with_tasks", excluding)):
            config = MemoryConfig(
                train=TrainConfig(max_steps=None, max_seconds=seconds, plateau_patience=None),
                tasks=TasksConfig(generator="none"),
                retrieval=RetrievalConfig(enabled=False),
            )
            memory = LiftMemory(config, root=f"{root}/{name}", generator=generator, progress=False)
            record = memory.memorize(text, doc_id="doc", train=True)
            results[name] = {
                "steps": record.train.steps,
                "held_out_recall": task_accuracy(memory, held_out, "doc"),
                "needle_recall": keyword_score(
                    memory.complete(needle.prefix, "doc", max_new_tokens=20), needle.keywords
                ),
                "perplexity": round(memory.perplexity(text, "doc"), 3),
                "tasks": record.tasks,
            }
    return {
        "benchmark": "synthesis_mixture",
        "document_tokens": 8192,
        "train_seconds_each": seconds,
        "held_out_prompts": len(held_out),
        **results,
    }


def streaming(latency: float, steps: int) -> dict:
    from lift_memory import LiftMemory, MemoryConfig
    from lift_memory.config import RetrievalConfig, TasksConfig, TrainConfig
    from lift_memory.eval.niah.haystack import build_haystack, corpus_texts
    from lift_memory.tasks.llm import ChatModelGenerator

    out = {}
    with tempfile.TemporaryDirectory() as root:
        tok = LiftMemory(root=f"{root}/probe", progress=False).engine.tokenizer
        text = build_haystack(tok, 4096, corpus_texts())
        for mode in ("streaming", "generate_then_train"):
            writer = ChatModelGenerator(LatentWriter(latency), unit_chars=600, encoding=None, fallback=tok)
            config = MemoryConfig(
                train=TrainConfig(max_steps=steps, plateau_patience=None),
                tasks=TasksConfig(generator="none", concurrency=4),
                retrieval=RetrievalConfig(enabled=False),
            )
            memory = LiftMemory(config, root=f"{root}/{mode}", generator=writer, progress=False)
            _ = memory.engine  # model loading is not what this measures
            first: dict[str, float] = {}

            def mark(info, first=first) -> None:
                first.setdefault("t", time.perf_counter())

            started = time.perf_counter()
            if mode == "generate_then_train":  # everything written (and cached) before training starts
                memory.synthesize(text).wait()
            record = memory.memorize(text, doc_id="doc", train=True, callbacks=[mark])
            synthesis = record.extra["synthesis"]
            out[mode] = {
                "seconds_to_first_step": round(first["t"] - started, 2),
                "total_seconds": round(time.perf_counter() - started, 2),
                "qa_tasks": record.tasks.get("qa", 0),
                "units": synthesis["units"],
                "generation_seconds": synthesis["seconds"],
            }
    return {"benchmark": "synthesis_streaming", "writer_latency_s": latency, "concurrency": 4, "steps": steps, **out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    print(json.dumps(mixture(args.seconds)), flush=True)
    print(json.dumps(streaming(args.latency, args.steps)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
