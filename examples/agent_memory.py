"""An agent's long-term memory: hand over a document, keep answering while it is memorized, and see what
every call cost.

    python examples/agent_memory.py                     # builtin:tiny, a built-in sample, a temporary folder
    python examples/agent_memory.py --model smollm2-135m-instruct --window 512 --max-steps 30

The flow: memorize in the background (the call returns once the document is stored and indexed) -> ask at once
(answered through retrieval; the answer says the adapter is not ready) -> follow the job -> ask again once the
adapter is ready -> read the recall self-check and the usage figures of each call.
Runs offline on builtin:tiny (built on first use); its answers are no judge of quality.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

from lift_memory import LiftMemory, LiftMemoryError, MemoryConfig
from lift_memory.config import ModelConfig, TrainConfig

FACT = "The spare key of the boathouse is kept under the blue heron statue."
QUESTION = "Where is the spare key of the boathouse kept?"


def sample_document(memory: LiftMemory, tokens: int) -> str:
    """Held-out Python documentation, longer than the window, with one made-up fact in the middle."""
    from lift_memory.eval.niah.haystack import build_haystack, corpus_texts, insert_needle

    tokenizer = memory.engine.tokenizer
    return insert_needle(build_haystack(tokenizer, tokens, corpus_texts()), FACT, 0.5, tokenizer)[0]


def cost(usage) -> str:
    memory = "" if usage.peak_memory_mb is None else f", peak {usage.peak_memory_mb:.0f} MB ({usage.memory_kind})"
    return (
        f"{usage.tokens_trained} tokens trained, {usage.tokens_read} read, {usage.tokens_generated} generated, "
        f"{usage.seconds:.2f} s{memory}"
    )


def show(label: str, answer) -> None:
    print(f"{label}: {answer.text.strip()!r}")
    print(f"  route {answer.route}, adapter {answer.adapter}, evidence {[s.doc_id for s in answer.snippets]}")
    for note in answer.notes:
        print(f"  note: {note}")
    print(f"  cost: {cost(answer.usage)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="memory folder (default: a temporary one)")
    parser.add_argument("--model", default="builtin:tiny")
    parser.add_argument("--window", type=int, help="cap the model's context window (tokens)")
    parser.add_argument("--tokens", type=int, default=1500, help="length of the sample document")
    parser.add_argument("--max-steps", type=int, default=40, help="training budget in optimizer steps")
    args = parser.parse_args()

    config = MemoryConfig(
        model=ModelConfig(name=args.model, context_window=args.window), train=TrainConfig(max_steps=args.max_steps)
    )
    with LiftMemory(config, root=args.root or tempfile.mkdtemp(prefix="agent-"), progress=False) as memory:
        try:
            started = time.perf_counter()
            record = memory.memorize(sample_document(memory, args.tokens), doc_id="notes", background=True)
            print(f"handed over {record.n_tokens} tokens in {time.perf_counter() - started:.1f} s: {record.reason}")
            show("asked at once", memory.ask(QUESTION, "notes", max_new_tokens=24))

            while (job := memory.job("notes")) is not None and job.active:
                print(f"  job: {job.describe()}")
                time.sleep(1.0)
            print(f"job: {memory.job('notes').describe()}")

            record = memory.get("notes")
            print(f"memorized: {record.reason}; cost: {cost(record.usage)}")
            if record.self_check is not None:
                print(f"recall self-check: {record.self_check.score:.2f} on {record.self_check.probes} held-out probes")
            show("asked again", memory.ask(QUESTION, "notes", max_new_tokens=24))
        except LiftMemoryError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
