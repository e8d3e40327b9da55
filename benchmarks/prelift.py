"""Benchmark: per-document LIFT from the plain start vs from a pre-LIFT start, on builtin:tiny.

The pre-LIFT corpus is the standard library's docstrings grouped into documents (a folder of .txt files);
evaluation documents are haystacks of held-out Python documentation (never seen in any training) with a
needle each. For each start and document: steps and seconds until the needle comes back from a bare prompt,
document perplexity after a fixed number of steps, and KL(base || adapted) on unrelated text — for the start
itself and after per-document LIFT.

With ``--model`` (e.g. smollm2-135m-instruct) the same comparison runs on a real model with its window capped:
the pre-LIFT corpus is haystack documents of held-out Python documentation, the evaluation documents are the
held-out question set's (lift_memory.eval.questions), and "recall" is the first probe (every ``--every``
steps) at which the adapter alone answers at least half of a document's questions from a bare prompt
({"benchmark": "prelift.real", ...}).

Prints JSON lines. Usage: python benchmarks/prelift.py [--prelift-steps 400] [--steps 150]
       python benchmarks/prelift.py --model smollm2-135m-instruct [--window 512] [--tokens 1200]
              [--prelift-steps 40] [--steps 40] [--docs 2] [--every 5]
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


class QuestionProbe:
    """Trainer callback: every ``every`` steps, the adapter being trained answers ``doc``'s questions from bare
    prompts; records the first step (and training seconds) at which at least half are right."""

    def __init__(self, memory, doc, every: int) -> None:
        self.memory, self.doc, self.every = memory, doc, every
        self.recalled_at_step: int | None = None
        self.recalled_at_seconds: float | None = None
        self.history: list[tuple[int, float]] = []

    def __call__(self, info) -> bool:
        from lift_memory.eval.probe import bare_completion
        from lift_memory.eval.questions import score

        if info.step % self.every or self.recalled_at_step is not None:
            return False
        said = [bare_completion(self.memory, f.question, 32, question=True) for f in self.doc.facts]
        accuracy = sum(score(a, f) for a, f in zip(said, self.doc.facts, strict=True)) / len(self.doc.facts)
        self.history.append((info.step, round(accuracy, 3)))
        if accuracy >= 0.5:
            self.recalled_at_step, self.recalled_at_seconds = info.step, round(info.seconds, 2)
        return False


def real_evaluate(config, docs, tokens: int, every: int, root: str) -> dict:
    """Per-document LIFT from ``config``'s start on the question set's ``docs``."""
    from lift_memory import LiftMemory
    from lift_memory.eval import questions

    memory = LiftMemory(config, root=root, progress=False)
    start_kl = questions.kl_unrelated(memory, None)
    rows = []
    for doc in docs:
        probe = QuestionProbe(memory, doc, every)
        text = doc.build(memory.engine.tokenizer, tokens)
        record = memory.memorize(text, doc_id=doc.name, train=True, callbacks=[probe])
        rows.append(
            {
                "document": doc.name,
                "steps_to_recall": probe.recalled_at_step,
                "seconds_to_recall": probe.recalled_at_seconds,
                "probes": probe.history,
                "steps": record.train.steps,
                **questions.measure(memory, doc, doc.name, modes=("lift",)),
            }
        )
    memory.close()
    recalled = [r["steps_to_recall"] for r in rows if r["steps_to_recall"] is not None]
    return {
        "documents": rows,
        "recalled": f"{len(recalled)}/{len(rows)}",
        "median_steps_to_recall": statistics.median(recalled) if recalled else None,
        "kl_unrelated_start": round(start_kl, 4),
        "mean_kl_unrelated_after": round(statistics.mean(r["kl"] for r in rows), 4),
    }


def real(args) -> dict:
    """The comparison on a real model (see the module's docstring)."""
    from lift_memory import MemoryConfig
    from lift_memory.config import ModelConfig, TrainConfig
    from lift_memory.eval import questions
    from lift_memory.eval.niah.haystack import build_haystack, corpus_texts
    from lift_memory.models import load_model
    from lift_memory.prelift import prelift

    model = ModelConfig(name=args.model, context_window=args.window)
    tok = load_model(model, progress=False).tokenizer
    texts = corpus_texts()

    def config(steps: int, start: Path | None = None) -> MemoryConfig:
        train = TrainConfig(max_steps=steps, plateau_patience=None, batch_tokens=1024)
        return MemoryConfig(model=model, train=train, start=start)

    docs = questions.DOCUMENTS[: args.docs]
    with tempfile.TemporaryDirectory() as root:
        corpus, start = Path(root) / "corpus", Path(root) / "start"
        corpus.mkdir()
        for i in range(args.corpus_docs):  # held-out documentation, none of it in the evaluation documents
            (corpus / f"doc{i:02d}.txt").write_text(build_haystack(tok, args.tokens, texts[i :: args.corpus_docs]))
        manifest = prelift(corpus, start, config(args.prelift_steps), progress=False)
        plain = real_evaluate(config(args.steps), docs, args.tokens, args.every, f"{root}/plain")
        pre = real_evaluate(config(args.steps, start), docs, args.tokens, args.every, f"{root}/pre")
    head = {"benchmark": "prelift.real", "model": args.model, "window": args.window, "document_tokens": args.tokens}
    return head | comparison(manifest, args.steps, plain, pre)


def comparison(manifest: dict, steps: int, plain: dict, pre: dict) -> dict:
    """The figures both variants report: the pre-LIFT run, both starts, and the ratio of steps to recall."""
    ratio = None
    if plain["median_steps_to_recall"] and pre["median_steps_to_recall"]:
        ratio = round(pre["median_steps_to_recall"] / plain["median_steps_to_recall"], 3)
    return {
        "prelift_steps": manifest["train"]["steps"],
        "prelift_seconds": manifest["train"]["seconds"],
        "corpus_documents": len(manifest["corpus"]["train"]),
        "per_document_steps": steps,
        "plain_start": plain,
        "prelift_start": pre,
        "steps_to_recall_ratio": ratio,
        "target": "ratio <= 0.5 at no higher KL on unrelated text",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prelift-steps", type=int, default=400)
    parser.add_argument("--steps", type=int, default=150, help="per-document steps")
    parser.add_argument("--tokens", type=int, default=None, help="evaluation document length (2048; real: 1200)")
    parser.add_argument("--model", help="run the comparison on this real model and the question set")
    parser.add_argument("--window", type=int, default=512, help="context window cap (with --model)")
    parser.add_argument("--docs", type=int, default=2, help="question-set documents (with --model)")
    parser.add_argument("--corpus-docs", type=int, default=4, help="pre-LIFT corpus documents (with --model)")
    parser.add_argument("--every", type=int, default=5, help="probe every this many steps (with --model)")
    args = parser.parse_args()
    if args.model is not None:
        args.tokens = args.tokens or 1200
        print(json.dumps(real(args)), flush=True)
        return
    args.tokens = args.tokens or 2048

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
    head = {"benchmark": "prelift", "adapter": "lora (builtin:tiny default)"}
    print(json.dumps(head | comparison(manifest, args.steps, plain, pre)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
