"""A writer process for the fault tests: memorize or forget one document, then print one result line.

    python fault_worker.py ROOT MODEL_DIR memorize DOC_ID TEXT_FILE [--replace] [--steps N] [--stall-at WHERE]
    python fault_worker.py ROOT MODEL_DIR forget DOC_ID

``--port P`` indexes into a Chroma server on 127.0.0.1:P (several processes may share it); ``--no-index`` turns
retrieval off.

It prints ``TRAINING`` after the first training step, and ``INDEXING`` when the index is about to change:
with ``--stall-at embed`` when the chunks are embedded (before any change), with ``--stall-at log`` after Chroma
changed and before the chunk log is written (the index half-changed). It then waits 60 s there, so a test can
kill it at that moment. The last
line is ``OK <record json>`` or ``ERR <error type>: <message>``. ``--wait-file F`` makes it wait for F to exist
before writing, so that two workers start their writes together.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # lift_test_helpers

from lift_test_helpers import HashEmbedder

from lift_memory import LiftMemory
from lift_memory.config import GenerationConfig, MemoryConfig, RetrievalConfig, SegmentConfig, TrainConfig
from lift_memory.errors import LiftMemoryError


def stall(*_args, **_kwargs) -> None:
    print("INDEXING", flush=True)
    time.sleep(60)


class StallingEmbedder(HashEmbedder):
    def embed_documents(self, texts):
        stall()
        return super().embed_documents(texts)


def stall_before_the_chunk_log() -> None:
    from lift_memory.retrieval.chunklog import ChunkLog

    write_log = ChunkLog.set

    def stalled(self, *args, **kwargs):
        stall()
        return write_log(self, *args, **kwargs)

    ChunkLog.set = stalled


def config(steps: int, lock_timeout: float, port: int | None = None, index: bool = True) -> MemoryConfig:
    host = None if port is None else "127.0.0.1"
    return MemoryConfig(
        lock_timeout=lock_timeout,
        retrieval=RetrievalConfig(enabled=index, host=host, port=port or 8000),
        segment=SegmentConfig(length=64, window=16),
        generation=GenerationConfig(max_new_tokens=8),
        train=TrainConfig(max_steps=steps, batch_tokens=512, plateau_patience=None, warmup_steps=1),
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("model")
    parser.add_argument("action", choices=["memorize", "forget"])
    parser.add_argument("doc_id")
    parser.add_argument("text_file", nargs="?")
    parser.add_argument("--replace", action="store_true")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--stall-at", choices=["embed", "log"])
    parser.add_argument("--lock-timeout", type=float, default=30.0)
    parser.add_argument("--wait-file")
    parser.add_argument("--port", type=int)
    parser.add_argument("--no-index", action="store_true")
    args = parser.parse_args()
    memory = LiftMemory(
        config(args.steps, args.lock_timeout, args.port, not args.no_index),
        root=args.root,
        model=args.model,
        embedder=StallingEmbedder() if args.stall_at == "embed" else HashEmbedder(),
        progress=False,
    )
    memory.engine  # noqa: B018 -- load the model before the start signal, so racing writes overlap
    if args.stall_at == "log":
        stall_before_the_chunk_log()
    print("READY", flush=True)
    if args.wait_file:
        while not Path(args.wait_file).exists():
            time.sleep(0.01)
    announced = []

    def on_step(info) -> None:
        if not announced:
            announced.append(True)
            print("TRAINING", flush=True)

    try:
        if args.action == "forget":
            memory.forget(args.doc_id)
            print("OK {}", flush=True)
        else:
            text = Path(args.text_file).read_text(encoding="utf-8")
            record = memory.memorize(text, doc_id=args.doc_id, replace=args.replace, callbacks=[on_step])
            print("OK " + json.dumps(record.to_dict(), default=str), flush=True)
    except LiftMemoryError as exc:
        print(f"ERR {type(exc).__name__}: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
