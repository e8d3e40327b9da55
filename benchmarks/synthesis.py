"""Benchmark: synthesized tasks and training objectives, on builtin:tiny and on a real model.

Prints JSON lines:
  {"benchmark": "synthesis_objectives", ...} with --model: one line per training objective, at equal wall time,
                                            on the held-out question set (lift_memory.eval.questions) with the
                                            window capped: accuracy of the adapter alone (lift) and of hybrid,
                                            KL on unrelated text, in-context answers kept; and a line for icl
                                            with the whole document in the window (the ceiling)
  {"benchmark": "synthesis_mixture", ...}   segments only vs segments + extractive tasks, at equal wall time:
                                            recall on held-out fill-in-the-blank prompts, needle recall from a
                                            bare prompt, document perplexity
  {"benchmark": "synthesis_streaming", ...} a served QA writer with network latency (simulated): time to the
                                            first training step and total time, streaming vs
                                            generate-everything-then-train

Objectives: ``segments`` (segments and sentence windows only), ``tasks`` (plus the offline extractive tasks:
the default), ``distill`` (plus context distillation of every task), ``self_qa`` (segments plus QA pairs
written by the base model itself, generated before training; their generation time is reported apart).

Usage: python benchmarks/synthesis.py [--seconds 25] [--latency 0.5]
       python benchmarks/synthesis.py --model smollm2-135m-instruct [--window 512] [--tokens 1200]
              [--train-seconds 120] [--objectives segments,tasks,distill] [--docs 3]
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


def objective_config(name: str, model: str, window: int, seconds: float):
    """The memory settings of one training objective, trained for ``seconds``."""
    from lift_memory import MemoryConfig
    from lift_memory.config import ModelConfig, TasksConfig, TrainConfig
    from lift_memory.tasks.distill import TASK

    weights = dict(TrainConfig().task_weights)
    if name == "distill":
        weights[TASK] = 1.0
    train = TrainConfig(
        max_steps=None, max_seconds=seconds, plateau_patience=None, batch_tokens=1024, task_weights=weights
    )
    tasks = TasksConfig(generator="none" if name in ("segments", "self_qa") else "extractive")
    return MemoryConfig(model=ModelConfig(name=model, context_window=window), train=train, tasks=tasks)


def run_objective(name, doc, text, model, window, seconds, writer, root) -> dict:
    """Memorize ``text`` with objective ``name`` and measure the adapter on ``doc``'s questions."""
    from lift_memory import LiftMemory
    from lift_memory.eval import questions

    memory = LiftMemory(
        objective_config(name, model, window, seconds),
        root=f"{root}-{doc.name}",
        generator=writer if name == "self_qa" else None,
        progress=False,
    )
    generation = 0.0
    if name == "self_qa":
        started = time.perf_counter()
        memory.synthesize(text).wait()
        generation = time.perf_counter() - started
    record = memory.memorize(text, doc_id=doc.name, train=True)
    out = {
        "steps": record.train.steps,
        **questions.measure(memory, doc, doc.name),
        "generation_seconds": generation,
        "examples": record.train.examples_by_task,
    }
    memory.close()
    return out


def objectives(model: str, window: int, tokens: int, seconds: float, names: list[str], n_docs: int) -> list[dict]:
    """Each objective on the question set at equal training time, and icl with the whole document shown."""
    from lift_memory import LiftMemory, MemoryConfig
    from lift_memory.config import ModelConfig
    from lift_memory.eval import questions
    from lift_memory.tasks.llm import LocalModelGenerator

    docs = questions.DOCUMENTS[:n_docs]
    rows = []
    with tempfile.TemporaryDirectory() as root:
        whole = LiftMemory(MemoryConfig(model=ModelConfig(name=model)), root=f"{root}/icl", progress=False)
        texts = {d.name: d.build(whole.engine.tokenizer, tokens) for d in docs}
        for doc in docs:
            whole.memorize(texts[doc.name], doc_id=doc.name, train=False)
        icl = [questions.accuracy(whole, d, d.name, "icl") for d in docs]
        rows.append(
            {
                "benchmark": "synthesis_objectives",
                "model": model,
                "objective": "icl_whole_document",
                "window": whole.engine.base.context_window,
                "accuracy": round(sum(icl) / len(icl), 3),
            }
        )
        whole.close()
        writer = None
        if "self_qa" in names:  # the base model writes QA pairs, before training (its time is reported apart)
            from lift_memory.models import load_model

            base = load_model(ModelConfig(name=model), progress=False)
            writer = LocalModelGenerator(base.model, base.tokenizer, max_new_tokens=192)
        for name in names:
            per_doc = [
                run_objective(name, doc, texts[doc.name], model, window, seconds, writer, f"{root}/{name}")
                for doc in docs
            ]
            mean = lambda key, per_doc=per_doc: round(sum(d[key] for d in per_doc) / len(per_doc), 3)  # noqa: E731
            rows.append(
                {
                    "benchmark": "synthesis_objectives",
                    "model": model,
                    "objective": name,
                    "window": window,
                    "document_tokens": tokens,
                    "train_seconds_each": seconds,
                    "documents": len(docs),
                    "steps": [d["steps"] for d in per_doc],
                    "lift_accuracy": mean("lift"),
                    "hybrid_accuracy": mean("hybrid"),
                    "kl_unrelated": mean("kl"),
                    "in_context_kept": mean("in_context"),
                    "generation_seconds": mean("generation_seconds"),
                    "examples": per_doc[0]["examples"],
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--model", default=None, help="compare training objectives on this model instead")
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--tokens", type=int, default=1200)
    parser.add_argument("--train-seconds", type=float, default=120.0)
    parser.add_argument("--objectives", default="segments,tasks,distill")
    parser.add_argument("--docs", type=int, default=3)
    args = parser.parse_args()
    if args.model is not None:
        names = args.objectives.split(",")
        rows = objectives(args.model, args.window, args.tokens, args.train_seconds, names, args.docs)
        print(json.dumps(rows[0]), flush=True)
        return
    print(json.dumps(mixture(args.seconds)), flush=True)
    print(json.dumps(streaming(args.latency, args.steps)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
