"""``lift-memory``: the command line. Each subcommand calls one public function and prints its result.

Conventions: ``--help`` everywhere; ``--json`` prints machine-readable output on stdout; progress and
messages go to stderr. Exit codes: 0 success, 1 a lift_memory error (one line on stderr), 2 bad usage,
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

from lift_memory.errors import LiftMemoryError, first_line
from lift_memory.router import MODES

REAL_MODEL = "smollm2-135m-instruct"
"""The packaged real model the demo's second part runs on."""


def _config(args: argparse.Namespace):
    """The MemoryConfig the flags describe: ``--config FILE`` (JSON or TOML), then each flag given on top. Only
    what is given counts as set, so a memory folder's remembered settings fill in the rest."""
    from lift_memory.config import MemoryConfig

    data: dict[str, Any] = _config_file(args.config) if getattr(args, "config", None) else {}

    def put(section: str, field: str, value: Any) -> None:
        if value is not None:
            data.setdefault(section, {})[field] = value

    put("model", "name", args.model)
    put("model", "context_window", getattr(args, "window", None))
    put("train", "max_steps", getattr(args, "max_steps", None))
    if getattr(args, "adapter", None):
        gate = {"gate": args.gate} if args.adapter == "gated_memory" and getattr(args, "gate", None) else {}
        data["adapter"] = {**data.get("adapter", {}), "kind": args.adapter, **gate}
    if getattr(args, "start", None):
        data["start"] = args.start
    return MemoryConfig.model_validate(data)


def _toml():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib


def _config_file(path: str) -> dict[str, Any]:
    text_path = Path(path)
    try:
        raw = text_path.read_bytes()
    except OSError as exc:
        raise LiftMemoryError(f"cannot read --config {path!r}: {exc.strerror}") from exc
    try:
        data = _toml().loads(raw.decode("utf-8")) if text_path.suffix == ".toml" else json.loads(raw)
    except ValueError as exc:
        raise LiftMemoryError(f"--config {path!r} is not valid {text_path.suffix[1:] or 'JSON'}: {exc}") from exc
    if not isinstance(data, dict):
        raise LiftMemoryError(f"--config {path!r} must hold an object of MemoryConfig fields")
    return data


def _memory(args: argparse.Namespace, root: str | Path | None = None):
    from lift_memory.memory import LiftMemory

    return LiftMemory(_config(args), root=root or args.root, progress=not args.quiet)


def _emit(args: argparse.Namespace, data: Any, human: str) -> None:
    print(json.dumps(data, indent=2, default=str) if args.json else human)


def _cmd_memorize(args: argparse.Namespace) -> None:
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LiftMemoryError(f"cannot read {args.file!r}: {exc.strerror}") from exc
    memory = _memory(args)
    memory.detached = args.detached
    if args.background and not args.detached:
        record = _detach(args, memory, data)
    else:
        record = memory.memorize(
            data, doc_id=args.id, title=args.title or path.name, replace=args.replace, namespace=args.namespace,
            background=args.background,
        )  # fmt: skip
    _emit(args, record.to_dict(), f"{record.doc_id}\t{record.n_tokens} tokens\t{record.reason}")
    if args.detached:  # the detached process: trains, with the index released for other processes
        memory.wait()


def _detach(args: argparse.Namespace, memory, data: bytes):
    """``memorize --background``: the same command in a process of its own, which stores and indexes the document,
    then trains it; returns the record once the job is queued (or the document is stored, if it needs none)."""
    from lift_memory.ids import default_doc_id, document_text

    doc_id = args.id or default_doc_id(document_text(data))
    log = memory.root / "jobs" / f"{doc_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-c", "import sys; from lift_memory.cli import main; sys.exit(main())"]
    with log.open("ab") as out:
        child = subprocess.Popen(
            [*command, *args.argv, "--detached"], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True,
        )  # fmt: skip
    while child.poll() is None:
        job = memory.job(doc_id)
        if job is not None and job.pid == child.pid:
            break
        time.sleep(0.2)
    else:
        if child.returncode:
            lines = log.read_text(errors="replace").strip().splitlines() or [f"exit code {child.returncode}"]
            raise LiftMemoryError(lines[-1].removeprefix("lift-memory: error: "))
    return memory.get(doc_id)


def _cmd_jobs(args: argparse.Namespace) -> None:
    jobs = _memory(args).jobs()
    rows = [f"{j.doc_id}\t{j.describe()}\t{j.finished or j.queued}" for j in jobs]
    _emit(args, [j.to_dict() for j in jobs], "\n".join(rows) if rows else "no background jobs")


def _cmd_cancel(args: argparse.Namespace) -> None:
    job = _memory(args).cancel(args.doc_id, timeout=args.timeout)
    if job is None:
        raise LiftMemoryError(f"{args.doc_id!r} has no background job")
    _emit(args, job.to_dict(), f"{job.doc_id}\t{job.describe()}")


def _cmd_ask(args: argparse.Namespace) -> None:
    doc_id = None if args.doc_id == "*" else args.doc_id
    answer = _memory(args).ask(
        args.question, doc_id, mode=args.mode, namespace=args.namespace, k=args.k, max_new_tokens=args.max_new_tokens
    )
    sources = [f"  [{i}] {s.doc_id} chars {s.char_start}-{s.char_end}" for i, s in enumerate(answer.snippets, 1)]
    human = "\n".join([answer.text.strip(), f"(route: {answer.route}, adapter: {answer.adapter})", *sources])
    _emit(args, answer.to_dict(), human)


def _cmd_search(args: argparse.Namespace) -> None:
    hits = _memory(args).retrieve(args.query, args.doc, namespace=args.namespace, k=args.k)
    rows = [f"{h.doc_id}\t{h.char_start}-{h.char_end}\t{h.score:.4f}\t{h.text[:80]!r}" for h in hits]
    _emit(args, [h.to_dict() for h in hits], "\n".join(rows) if rows else "no hits")


def _cmd_rebuild(args: argparse.Namespace) -> None:
    counts = _memory(args).rebuild_index()
    _emit(args, counts, "\n".join(f"{ns}\t{n} chunks" for ns, n in counts.items()) or "nothing to rebuild")


def _cmd_list(args: argparse.Namespace) -> None:
    memory = _memory(args)
    records = memory.list()
    for message in memory.damaged().values():  # on stderr: stdout stays the list (and valid JSON)
        print(f"lift-memory: warning: {message}", file=sys.stderr)
    jobs = {j.doc_id: j for j in memory.jobs() if j.active or j.state == "failed"}
    rows = [
        f"{r.doc_id}\t{r.n_tokens} tokens\t{r.title or ''}\t{r.created}"
        + (f"\tself-check {r.self_check.score:.2f}" if r.self_check else "")
        + (f"\tjob {jobs[r.doc_id].describe()}" if r.doc_id in jobs else "")
        for r in records
    ]
    listed = [{**r.to_dict(), "job": jobs[r.doc_id].to_dict() if r.doc_id in jobs else None} for r in records]
    _emit(args, listed, "\n".join(rows) if rows else "no memories yet")


def _cmd_forget(args: argparse.Namespace) -> None:
    _memory(args).forget(args.doc_id)
    _emit(args, {"forgotten": args.doc_id}, f"forgot {args.doc_id}")


def _cmd_config(args: argparse.Namespace) -> None:
    from lift_memory.config import MemoryConfig

    if args.schema:
        print(json.dumps(MemoryConfig.model_json_schema(), indent=2))
        return
    memory = _memory(args)
    config = memory.config.model_dump(mode="json")
    _emit(args, config, f"# {memory.root}\n" + json.dumps(config, indent=2))


def _config_fields() -> str:
    """Every configurable field with its docstring, for ``lift-memory config --help``."""
    from pydantic import BaseModel

    from lift_memory.config import MemoryConfig

    lines = ["fields (section.field: description):"]

    def walk(cls: type[BaseModel], prefix: str) -> None:
        for name, field in cls.model_fields.items():
            kind = field.annotation
            members = [m for m in get_args(kind) if isinstance(m, type) and issubclass(m, BaseModel)]
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                walk(kind, f"{prefix}{name}.")
            elif members:  # a union discriminated by ``kind``: each member's fields
                for member in members:
                    walk(member, f"{prefix}{name}[{member.model_fields['kind'].default}].")
            else:
                about = " ".join((field.description or "").split())
                lines.append(f"  {prefix}{name} = {field.default!r}: {about}")

    walk(MemoryConfig, "")
    return "\n".join(lines)


def _cmd_export(args: argparse.Namespace) -> None:
    folder = _memory(args).export(args.doc_id, args.out, overwrite=args.overwrite)
    hint = f"serve it with: vllm serve <base model> --enable-lora --lora-modules {args.doc_id}={folder}"
    _emit(args, {"doc_id": args.doc_id, "folder": str(folder)}, f"wrote {folder} (PEFT format)\n{hint}")


def _csv(kind):
    return lambda text: [kind(x) for x in text.split(",") if x.strip()]


_KIND_NAMES = {int: "an integer", float: "a number"}


def _number(kind, low: float, high: float | None = None):
    """An argparse type: ``kind`` within [low, high], else a usage error (exit 2) that names the range."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {_KIND_NAMES[kind]}") from None
        if value < low or (high is not None and value > high):
            allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"{text} is out of range: must be {allowed}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


_COUNT = _number(int, 1)
_FRACTION = _number(float, 0.0, 1.0)


def _run_niah(args: argparse.Namespace, preset: str | None, out: str) -> dict:
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
        k=getattr(args, "k", None),
    )
    memory = None
    if args.root:  # the cells' memories go to --root instead of <out>/memory
        from lift_memory.config import MemoryConfig, ModelConfig, TrainConfig
        from lift_memory.memory import LiftMemory

        settings = MemoryConfig(
            model=ModelConfig(name=config.model, context_window=config.window),
            train=TrainConfig(max_steps=config.max_steps),
        )
        memory = LiftMemory(settings, root=args.root, progress=False)
    rows = run_grid(config, out, memory=memory, progress=not args.quiet)
    return {"out": out, "results": f"{out}/results.jsonl", **write_report(rows, out), "table": summary(rows)}


def _cmd_prelift(args: argparse.Namespace) -> None:
    from lift_memory import settings
    from lift_memory.config import TrainConfig
    from lift_memory.memory import default_root
    from lift_memory.prelift import prelift

    config = _config(args).model_copy(update={"start": None})  # a starting point is trained from scratch
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
    _emit(args, manifest, human)


def _cmd_niah(args: argparse.Namespace) -> None:
    report = _run_niah(args, args.preset, args.out)
    images = ", ".join(report["images"]) or "none (pip install 'lift-memory[plots]')"
    human = f"{report['table']}\nreport: {report['summary']}\nheatmaps: {images}"
    _emit(args, report, human)


def _cmd_demo(args: argparse.Namespace) -> None:
    from lift_memory.eval.probe import run_demo

    report = run_demo(_memory(args, root=args.root or Path(args.out) / "memory"), tokens=args.tokens, depth=args.depth)
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
        report["niah"] = _run_niah(args, "demo", args.out)
        if not args.json:
            niah = report["niah"]
            images = ", ".join(niah["images"]) or "none (pip install 'lift-memory[plots]')"
            print(f"\n{niah['table']}\nreport: {niah['summary']}\nheatmaps: {images}")
    if not args.no_real:
        report["real_model"] = _real_model_demo(args)
    if args.json:
        print(json.dumps(report, indent=2, default=str))


def _real_model_demo(args: argparse.Namespace) -> dict:
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


def build_parser() -> argparse.ArgumentParser:
    from lift_memory import __version__

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", help="memory directory (default: $LIFT_MEMORY_HOME or the user data dir)")
    common.add_argument(
        "--model",
        help="base model: builtin:tiny (default), smollm2-135m-instruct (packaged), a .gguf file, a folder or a hub id",
    )
    common.add_argument("--window", type=_number(int, 32), help="cap the model's context window (tokens)")
    common.add_argument("--json", action="store_true", help="print JSON on stdout")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    common.add_argument("--start", help="a pre-LIFT starting point (the folder `lift-memory prelift` wrote)")

    parser = argparse.ArgumentParser(
        prog="lift-memory", description="Memorize long documents into a model's parameters (LIFT) and ask them."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("memorize", parents=[common], help="fine-tune an adapter on a text file")
    p.add_argument("file", help="UTF-8 text file")
    p.add_argument("--id", help="doc_id to store it under (default: derived from the content)")
    p.add_argument("--title", help="title kept in the record (default: the file name)")
    p.add_argument("--replace", action="store_true", help="replace a different document stored under --id")
    p.add_argument("--namespace", help="retrieval namespace (default: 'default')")
    p.add_argument("--adapter", choices=["lora", "gated_memory"], help="adapter kind (default: lora)")
    p.add_argument("--gate", choices=["paper", "exact"], help="Gated Memory's gate (with --adapter gated_memory)")
    p.add_argument("--max-steps", type=_COUNT, help="training step budget (default 400)")
    p.add_argument("--config", metavar="FILE", help="MemoryConfig fields as JSON or TOML; flags override it")
    p.add_argument(
        "--background", action="store_true", help="return once stored and indexed; train in a detached process"
    )
    p.add_argument("--detached", action="store_true", help=argparse.SUPPRESS)  # that process
    p.set_defaults(func=_cmd_memorize)

    p = sub.add_parser("jobs", parents=[common], help="background training jobs and their states")
    p.set_defaults(func=_cmd_jobs)
    p = sub.add_parser("cancel", parents=[common], help="stop a document's background training job")
    p.add_argument("doc_id")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for it to stop (default 60)")
    p.set_defaults(func=_cmd_cancel)

    p = sub.add_parser("ask", parents=[common], help="answer a question from memory")
    p.add_argument("doc_id", help="document to answer from; '*' for any document of the namespace")
    p.add_argument("question")
    p.add_argument("--mode", default="auto", choices=MODES, help="route")
    p.add_argument("--namespace", help="retrieval namespace (default: 'default')")
    p.add_argument("--k", type=_COUNT, default=None, help="snippets to retrieve")
    p.add_argument("--max-new-tokens", type=_COUNT, default=None, help="generation budget")
    p.set_defaults(func=_cmd_ask)

    p = sub.add_parser("search", parents=[common], help="hybrid retrieval over memorized documents")
    p.add_argument("query")
    p.add_argument("--doc", action="append", help="only this document (repeatable)")
    p.add_argument("--namespace", help="retrieval namespace (default: 'default')")
    p.add_argument("--k", type=_COUNT, default=None, help="how many hits")
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser(
        "rebuild",
        parents=[common],
        help="re-create the retrieval index (Chroma, chunk logs, BM25) from the stored documents",
    )
    p.set_defaults(func=_cmd_rebuild)

    p = sub.add_parser("list", parents=[common], help="list memorized documents")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("forget", parents=[common], help="delete a memorized document")
    p.add_argument("doc_id")
    p.set_defaults(func=_cmd_forget)

    p = sub.add_parser(
        "config",
        parents=[common],
        help="show a memory folder's settings, or the schema of every setting",
        description="Print the configuration a memory folder runs with: what it remembers, flags on top, "
        "defaults for the rest. Give the same fields to `memorize --config FILE` (JSON or TOML).",
        epilog=_config_fields(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--schema", action="store_true", help="print the JSON schema of every setting, with descriptions")
    p.set_defaults(func=_cmd_config)

    p = sub.add_parser("export", parents=[common], help="write a document's LoRA adapter as a PEFT folder")
    p.add_argument("doc_id")
    p.add_argument("out", help="the folder to write (adapter_config.json, adapter_model.safetensors)")
    p.add_argument("--overwrite", action="store_true", help="replace the folder if it exists")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("demo", parents=[common], help="memorize a haystack, show recall, run a small NIAH grid")
    p.add_argument("--tokens", type=_number(int, 64), default=8192, help="haystack length in tokens (default 8192)")
    p.add_argument("--depth", type=_FRACTION, default=0.5, help="needle depth as a fraction (default 0.5)")
    p.add_argument("--out", default="niah-demo", help="where the grid's report goes (default ./niah-demo)")
    p.add_argument("--no-grid", action="store_true", help="skip the needle-in-a-haystack grid")
    p.add_argument("--no-real", action="store_true", help="skip the real-model part (SmolLM2, every route)")
    p.add_argument(
        "--real-window", type=_number(int, 32), default=1024, help="window cap for the real model (default 1024)"
    )
    p.add_argument(
        "--real-tokens", type=_number(int, 64), default=2048, help="document length for the real model (default 2048)"
    )
    p.add_argument("--real-steps", type=_COUNT, default=20, help="training steps (1024 tokens each) for the real model")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("prelift", parents=[common], help="train a starting point for LIFT on a corpus of .txt files")
    p.add_argument("corpus", help="folder of .txt files")
    p.add_argument("--out", help="where the starting point goes (default: <root>/prelift)")
    p.add_argument("--adapter", choices=["lora", "gated_memory"], help="adapter kind (default: lora, or the folder's)")
    p.add_argument("--gate", choices=["paper", "exact"], help="Gated Memory's gate (default: exact)")
    p.add_argument("--max-steps", type=_COUNT, default=500, help="step budget (default 500)")
    p.add_argument("--max-seconds", type=_number(float, 1e-3), default=None, help="time budget")
    p.add_argument("--held-out", type=_FRACTION, default=0.2, help="fraction of files never trained on (default 0.2)")
    p.add_argument("--checkpoint-every", type=_COUNT, default=50, help="steps between checkpoints")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    p.set_defaults(func=_cmd_prelift)

    p = sub.add_parser("niah", parents=[common], help="needle-in-a-haystack grid: icl, lift, rag, hybrid, heatmaps")
    p.add_argument("--preset", choices=["demo", "standard"], help="grid preset (default: standard, 1k-128k tokens)")
    p.add_argument("--lengths", type=_csv(_number(int, 64)), help="haystack lengths in tokens, e.g. 1024,4096")
    p.add_argument("--depths", type=_csv(_FRACTION), help="needle depths as fractions, e.g. 0,0.5,1")
    p.add_argument("--methods", type=_csv(str), help="subset of icl,lift,rag,hybrid")
    p.add_argument("--style", choices=["completion", "question"], help="prompt with the prefix or the question")
    p.add_argument("--haystack", help="folder of .txt files (default: held-out Python documentation)")
    p.add_argument(
        "--needle", nargs=4, metavar=("TEXT", "PREFIX", "QUESTION", "KEYWORDS"), help="custom needle (keywords: a,b)"
    )
    p.add_argument("--max-steps", type=_COUNT, help="training budget per cell")
    p.add_argument("--k", type=_COUNT, help="snippets for rag and hybrid")
    p.add_argument("--out", default="niah-report", help="output directory (default ./niah-report); reruns resume")
    p.set_defaults(func=_cmd_niah)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args.func(args)
    except LiftMemoryError as exc:
        print(f"lift-memory: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as other Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # what the library did not foresee still gets one line, never a traceback
        print(f"lift-memory: error: {type(exc).__name__}: {first_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lift-memory: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
