"""The subcommands that run experiments: niah (the needle-in-a-haystack grid), prelift, and the demo."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lift_memory.cli.common import config_from_args, emit, open_memory
from lift_memory.errors import LiftMemoryError

REAL_MODEL = "smollm2-135m-instruct"
"""The packaged real model the demo's second part runs on."""


def run_niah(args: argparse.Namespace, preset: str | None, out: str) -> dict:
    from lift_memory.eval.niah.grid import resolve_config, run_grid
    from lift_memory.eval.niah.report import summary, write_report

    needles = None
    if getattr(args, "needle", None):
        text, prefix, question, keywords = args.needle
        needles = [{"text": text, "prefix": prefix, "question": question, "keywords": keywords.split(",")}]
    config = resolve_config(
        preset,
        lengths=getattr(args, "lengths", None),
        depths=getattr(args, "depths", None),
        methods=getattr(args, "methods", None),
        style=getattr(args, "style", None),
        haystack_dir=getattr(args, "haystack", None),
        needles=needles,
        model=args.model,
        window=getattr(args, "window", None),
        max_steps=getattr(args, "max_steps", None),
        max_epochs=getattr(args, "max_epochs", None),
        k=getattr(args, "k", None),
    )
    memory = None
    if args.root:  # the cells' memories go to --root instead of <out>/memory
        from lift_memory.config import MemoryConfig, ModelConfig
        from lift_memory.memory import LiftMemory

        settings = MemoryConfig(
            model=ModelConfig(name=config.model, context_window=config.window),
            train=config.train(),
        )
        memory = LiftMemory(settings, root=args.root, progress=False)
    rows = run_grid(config, out, memory=memory, progress=not args.quiet)
    return {"out": out, "results": f"{out}/results.jsonl", **write_report(rows, out), "table": summary(rows)}


def cmd_prelift(args: argparse.Namespace) -> None:
    from lift_memory import settings
    from lift_memory.config import TrainConfig
    from lift_memory.prelift import prelift
    from lift_memory.settings import default_root

    config = config_from_args(args).model_copy(update={"start": None})  # a starting point is trained from scratch
    train = {**config.train.model_dump(), "max_seconds": args.max_seconds, "plateau_patience": None}
    config = config.model_copy(update={"train": TrainConfig.model_validate(train)})
    root = Path(args.root or default_root()).expanduser()
    if args.root:  # a starting point for that memory folder: what it remembers, as LiftMemory would open it
        config = settings.reconcile(config, settings.load(root), root)
    args.out = args.out or str(root / "prelift")
    manifest = prelift(
        args.corpus,
        args.out,
        config,
        held_out=args.held_out,
        checkpoint_every=args.checkpoint_every,
        resume=not args.no_resume,
        progress=not args.quiet,
    )
    t = manifest["train"]
    human = (
        f"starting point written to {args.out} ({t['steps']} steps, {t['seconds']:.0f} s, "
        f"resumed from step {manifest['resumed_from_step']}); held out: {', '.join(manifest['corpus']['held_out'])}\n"
        f"use it with: lift-memory memorize FILE --start {args.out}"
    )
    emit(args, manifest, human)


def cmd_niah(args: argparse.Namespace) -> None:
    report = run_niah(args, args.preset, args.out)
    images = ", ".join(report["images"]) or "none (pip install 'lift-memory[plots]')"
    human = f"{report['table']}\nreport: {report['summary']}\nheatmaps: {images}"
    emit(args, report, human)


def cmd_demo(args: argparse.Namespace) -> None:
    from lift_memory.eval.probe import run_demo

    report = run_demo(
        open_memory(args, root=args.root or Path(args.out) / "memory"), tokens=args.tokens, depth=args.depth
    )
    recalled = report["first_recall_seconds"]
    lines = [
        f"memorized a {report['document_tokens']}-token haystack with a needle at {report['depth']:.0%} depth",
        f"training: {report['train_seconds']:.1f} s, {report['train_steps']} steps, "
        f"{report['tokens_per_second']:.0f} tokens/s (stopped: {report['stop_reason']})",
        "needle first recalled from a bare prompt after: "
        + (f"{recalled:.1f} s of training" if recalled is not None else "not recalled"),
        f"document perplexity: {report['perplexity_before']:.2f} -> {report['perplexity_after']:.2f}",
        f"prompt: {report['prompt']!r}",
        f"  before: {report['completion_before']!r}  (recall {report['recall_before']:.0%})",
        f"  after:  {report['completion_after']!r}  (recall {report['recall_after']:.0%})",
    ]
    if not args.json:
        print("\n".join(lines), flush=True)
    if not args.no_grid:
        if not args.json:
            print("\nnext: a small needle-in-a-haystack grid, icl / lift / rag / hybrid on every cell", flush=True)
        report["niah"] = run_niah(args, "demo", args.out)
        if not args.json:
            niah = report["niah"]
            images = ", ".join(niah["images"]) or "none (pip install 'lift-memory[plots]')"
            print(f"\n{niah['table']}\nreport: {niah['summary']}\nheatmaps: {images}")
    if not args.no_real:
        report["real_model"] = real_model_demo(args)
    if args.json:
        print(json.dumps(report, indent=2, default=str))


def real_model_demo(args: argparse.Namespace) -> dict:
    """The demo's real-model part: a document longer than the capped window, memorized into the packaged
    SmolLM2, and one question answered by every route."""
    from lift_memory.config import MemoryConfig, ModelConfig, TrainConfig
    from lift_memory.eval.probe import compare_routes
    from lift_memory.eval.questions import DOCUMENTS
    from lift_memory.memory import LiftMemory
    from lift_memory.model_files import packaged_file

    try:
        packaged_file(REAL_MODEL)
    except LiftMemoryError as exc:
        if not args.json:
            print(f"\nskipping the real-model part: {exc}", flush=True)
        return {"skipped": str(exc)}
    if not args.json:
        print(
            f"\nnext: a real model, {REAL_MODEL}, with its window capped at {args.real_window} tokens: a "
            f"{args.real_tokens}-token document, every route answers one question",
            flush=True,
        )
    config = MemoryConfig(
        model=ModelConfig(name=REAL_MODEL, context_window=args.real_window),
        train=TrainConfig(max_steps=args.real_steps, batch_tokens=1024),
    )
    memory = LiftMemory(config, root=Path(args.out) / "memory-real", progress=not args.quiet)
    doc = DOCUMENTS[0]
    fact = doc.facts[len(doc.facts) // 2]  # the fact nearest the middle: outside the window's head and tail
    report = compare_routes(memory, doc.build(memory.engine.tokenizer, args.real_tokens), fact.question)
    if not args.json:
        print(
            f"memorized {report['document_tokens']} tokens in {report['train_seconds']:.0f} s "
            f"({report['train_steps']} steps); the document says: {fact.sentence!r}\nquestion: {fact.question!r}"
        )
        for mode, a in report["answers"].items():
            shown = "" if a["coverage"] is None else f", prompt shows {a['coverage']:.0%} of the document"
            print(f"  {mode:<7} ({a['route']}{shown}): {a['text']!r}")
    return report
