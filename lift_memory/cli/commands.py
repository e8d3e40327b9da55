"""The subcommands over a memory folder: memorize, jobs, cancel, ask, search, rebuild, list, forget, config, export."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import get_args

from lift_memory.cli.common import emit, open_memory
from lift_memory.errors import LiftMemoryError


def cmd_memorize(args: argparse.Namespace) -> None:
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LiftMemoryError(f"cannot read {args.file!r}: {exc.strerror}") from exc
    memory = open_memory(args)
    memory.detached = args.detached
    if args.background and not args.detached:
        record = _detach(args, memory, data)
    else:
        record = memory.memorize(
            data, doc_id=args.id, title=args.title or path.name, replace=args.replace, namespace=args.namespace,
            background=args.background,
        )  # fmt: skip
    emit(args, record.to_dict(), f"{record.doc_id}\t{record.n_tokens} tokens\t{record.reason}")
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


def cmd_jobs(args: argparse.Namespace) -> None:
    jobs = open_memory(args).jobs()
    rows = [f"{j.doc_id}\t{j.describe()}\t{j.finished or j.queued}" for j in jobs]
    emit(args, [j.to_dict() for j in jobs], "\n".join(rows) if rows else "no background jobs")


def cmd_cancel(args: argparse.Namespace) -> None:
    job = open_memory(args).cancel(args.doc_id, timeout=args.timeout)
    if job is None:
        raise LiftMemoryError(f"{args.doc_id!r} has no background job")
    emit(args, job.to_dict(), f"{job.doc_id}\t{job.describe()}")


def cmd_ask(args: argparse.Namespace) -> None:
    doc_id = None if args.doc_id == "*" else args.doc_id
    answer = open_memory(args).ask(
        args.question, doc_id, mode=args.mode, namespace=args.namespace, k=args.k, max_new_tokens=args.max_new_tokens
    )
    sources = [f"  [{i}] {s.doc_id} chars {s.char_start}-{s.char_end}" for i, s in enumerate(answer.snippets, 1)]
    human = "\n".join([answer.text.strip(), f"(route: {answer.route}, adapter: {answer.adapter})", *sources])
    emit(args, answer.to_dict(), human)


def cmd_search(args: argparse.Namespace) -> None:
    hits = open_memory(args).retrieve(args.query, args.doc, namespace=args.namespace, k=args.k)
    rows = [f"{h.doc_id}\t{h.char_start}-{h.char_end}\t{h.score:.4f}\t{h.text[:80]!r}" for h in hits]
    emit(args, [h.to_dict() for h in hits], "\n".join(rows) if rows else "no hits")


def cmd_rebuild(args: argparse.Namespace) -> None:
    counts = open_memory(args).rebuild_index()
    emit(args, counts, "\n".join(f"{ns}\t{n} chunks" for ns, n in counts.items()) or "nothing to rebuild")


def cmd_list(args: argparse.Namespace) -> None:
    memory = open_memory(args)
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
    emit(args, listed, "\n".join(rows) if rows else "no memories yet")


def cmd_forget(args: argparse.Namespace) -> None:
    open_memory(args).forget(args.doc_id)
    emit(args, {"forgotten": args.doc_id}, f"forgot {args.doc_id}")


def cmd_config(args: argparse.Namespace) -> None:
    from lift_memory.config import MemoryConfig

    if args.schema:
        print(json.dumps(MemoryConfig.model_json_schema(), indent=2))
        return
    memory = open_memory(args)
    config = memory.config.model_dump(mode="json")
    emit(args, config, f"# {memory.root}\n" + json.dumps(config, indent=2))


def config_fields() -> str:
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


def cmd_export(args: argparse.Namespace) -> None:
    folder = open_memory(args).export(args.doc_id, args.out, overwrite=args.overwrite)
    hint = f"serve it with: vllm serve <base model> --enable-lora --lora-modules {args.doc_id}={folder}"
    emit(args, {"doc_id": args.doc_id, "folder": str(folder)}, f"wrote {folder} (PEFT format)\n{hint}")
