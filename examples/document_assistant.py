"""A document assistant: memorize a text file, then answer questions about it with sources.

    python examples/document_assistant.py handbook.txt            # interactive: one question per line
    python examples/document_assistant.py handbook.txt -q "..."   # answer and exit (repeatable)

Without a file it memorizes a sample: held-out Python documentation with one made-up fact in the middle.
Runs offline on builtin:tiny (built on first use); pass --model for any Hugging Face causal LM.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from lift_memory import LiftMemory, LiftMemoryError, MemoryConfig
from lift_memory.config import TrainConfig


def sample_document(memory: LiftMemory) -> str:
    from lift_memory.eval.niah.haystack import build_haystack, corpus_texts, insert_needle

    fact = "The secret password of the archive is violet-7."
    haystack = build_haystack(memory.engine.tokenizer, 3000, corpus_texts())
    return insert_needle(haystack, fact, 0.5, memory.engine.tokenizer)[0]


def show(answer) -> None:
    print(answer.text.strip() or "(no answer)")
    print(f"  route: {answer.route}; adapter: {answer.adapter}; {answer.timings['total']:.2f} s")
    for i, s in enumerate(answer.snippets, 1):
        print(f"  [{i}] {s.doc_id} chars {s.char_start}-{s.char_end}: {s.text[:70]!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", help="UTF-8 text file (default: a built-in sample)")
    parser.add_argument("-q", "--question", action="append", help="answer this and exit (repeatable)")
    parser.add_argument("--root", help="memory directory (default: a temporary one)")
    parser.add_argument("--model", default="builtin:tiny")
    parser.add_argument("--max-steps", type=int, default=200, help="training budget in optimizer steps")
    args = parser.parse_args()

    root = args.root or tempfile.mkdtemp(prefix="assistant-")
    memory = LiftMemory(MemoryConfig(train=TrainConfig(max_steps=args.max_steps)), root=root, model=args.model)
    try:
        text = Path(args.file).read_text(encoding="utf-8") if args.file else sample_document(memory)
        record = memory.memorize(text, doc_id="document", title=args.file or "sample")
    except (OSError, LiftMemoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"memorized {record.n_tokens} tokens: {record.reason}")
    questions = args.question or (line.strip() for line in sys.stdin if line.strip())
    if not args.question:
        print(
            "ask a question (Ctrl-D to quit); base models continue text, e.g. 'The secret password of the archive is'"
        )
    for question in questions:
        try:
            show(memory.ask(question, "document", max_new_tokens=24))
        except LiftMemoryError as exc:
            print(f"error: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
