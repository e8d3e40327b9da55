"""``lift-memory``: the command line. Each subcommand calls one public function and prints its result.

Conventions: ``--help`` everywhere; ``--json`` prints machine-readable output on stdout; progress and
messages go to stderr. Exit codes: 0 success, 1 a lift_memory error (one line on stderr), 2 bad usage,
130 interrupted.

The subcommands live in ``commands`` (over a memory folder) and ``experiments`` (niah, prelift, demo); what they
share (settings from flags, the memory they open, printing) in ``common``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from lift_memory.cli import commands, experiments
from lift_memory.cli.common import COUNT, EPOCHS, FRACTION, csv_list, number
from lift_memory.errors import LiftMemoryError, first_line
from lift_memory.router import MODES


def build_parser() -> argparse.ArgumentParser:
    from lift_memory import __version__

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", help="memory directory (default: $LIFT_MEMORY_HOME or the user data dir)")
    common.add_argument(
        "--model",
        help="base model: builtin:tiny (default), smollm2-135m-instruct (packaged), a .gguf file, a folder or a hub id",
    )
    common.add_argument("--window", type=number(int, 32), help="cap the model's context window (tokens)")
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
    p.add_argument("--max-steps", type=COUNT, help="training step budget (default 400)")
    p.add_argument("--max-epochs", type=EPOCHS, help="training budget in passes over the document (default: none)")
    p.add_argument("--config", metavar="FILE", help="MemoryConfig fields as JSON or TOML; flags override it")
    p.add_argument(
        "--background", action="store_true", help="return once stored and indexed; train in a detached process"
    )
    p.add_argument("--detached", action="store_true", help=argparse.SUPPRESS)  # that process
    p.set_defaults(func=commands.cmd_memorize)

    p = sub.add_parser("jobs", parents=[common], help="background training jobs and their states")
    p.set_defaults(func=commands.cmd_jobs)
    p = sub.add_parser("cancel", parents=[common], help="stop a document's background training job")
    p.add_argument("doc_id")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for it to stop (default 60)")
    p.set_defaults(func=commands.cmd_cancel)

    p = sub.add_parser("ask", parents=[common], help="answer a question from memory")
    p.add_argument("doc_id", help="document to answer from; '*' for any document of the namespace")
    p.add_argument("question")
    p.add_argument("--mode", default="auto", choices=MODES, help="route")
    p.add_argument("--namespace", help="retrieval namespace (default: 'default')")
    p.add_argument("--k", type=COUNT, default=None, help="snippets to retrieve")
    p.add_argument("--max-new-tokens", type=COUNT, default=None, help="generation budget")
    p.set_defaults(func=commands.cmd_ask)

    p = sub.add_parser("search", parents=[common], help="hybrid retrieval over memorized documents")
    p.add_argument("query")
    p.add_argument("--doc", action="append", help="only this document (repeatable)")
    p.add_argument("--namespace", help="retrieval namespace (default: 'default')")
    p.add_argument("--k", type=COUNT, default=None, help="how many hits")
    p.set_defaults(func=commands.cmd_search)

    p = sub.add_parser(
        "rebuild",
        parents=[common],
        help="re-create the retrieval index (Chroma, chunk logs, BM25) from the stored documents",
    )
    p.set_defaults(func=commands.cmd_rebuild)

    p = sub.add_parser("list", parents=[common], help="list memorized documents")
    p.set_defaults(func=commands.cmd_list)

    p = sub.add_parser("forget", parents=[common], help="delete a memorized document")
    p.add_argument("doc_id")
    p.set_defaults(func=commands.cmd_forget)

    p = sub.add_parser(
        "config",
        parents=[common],
        help="show a memory folder's settings, or the schema of every setting",
        description="Print the configuration a memory folder runs with: what it remembers, flags on top, "
        "defaults for the rest. Give the same fields to `memorize --config FILE` (JSON or TOML).",
        epilog=commands.config_fields(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--schema", action="store_true", help="print the JSON schema of every setting, with descriptions")
    p.set_defaults(func=commands.cmd_config)

    p = sub.add_parser("export", parents=[common], help="write a document's LoRA adapter as a PEFT folder")
    p.add_argument("doc_id")
    p.add_argument("out", help="the folder to write (adapter_config.json, adapter_model.safetensors)")
    p.add_argument("--overwrite", action="store_true", help="replace the folder if it exists")
    p.set_defaults(func=commands.cmd_export)

    p = sub.add_parser("demo", parents=[common], help="memorize a haystack, show recall, run a small NIAH grid")
    p.add_argument("--tokens", type=number(int, 64), default=8192, help="haystack length in tokens (default 8192)")
    p.add_argument("--depth", type=FRACTION, default=0.5, help="needle depth as a fraction (default 0.5)")
    p.add_argument("--out", default="niah-demo", help="where the grid's report goes (default ./niah-demo)")
    p.add_argument("--no-grid", action="store_true", help="skip the needle-in-a-haystack grid")
    p.add_argument("--no-real", action="store_true", help="skip the real-model part (SmolLM2, every route)")
    p.add_argument(
        "--real-window", type=number(int, 32), default=1024, help="window cap for the real model (default 1024)"
    )
    p.add_argument(
        "--real-tokens", type=number(int, 64), default=2048, help="document length for the real model (default 2048)"
    )
    p.add_argument("--real-steps", type=COUNT, default=20, help="training steps (1024 tokens each) for the real model")
    p.set_defaults(func=experiments.cmd_demo)

    p = sub.add_parser("prelift", parents=[common], help="train a starting point for LIFT on a corpus of .txt files")
    p.add_argument("corpus", help="folder of .txt files")
    p.add_argument("--out", help="where the starting point goes (default: <root>/prelift)")
    p.add_argument("--adapter", choices=["lora", "gated_memory"], help="adapter kind (default: lora, or the folder's)")
    p.add_argument("--gate", choices=["paper", "exact"], help="Gated Memory's gate (default: exact)")
    p.add_argument("--max-steps", type=COUNT, default=500, help="step budget (default 500)")
    p.add_argument("--max-seconds", type=number(float, 1e-3), default=None, help="time budget")
    p.add_argument("--held-out", type=FRACTION, default=0.2, help="fraction of files never trained on (default 0.2)")
    p.add_argument("--checkpoint-every", type=COUNT, default=50, help="steps between checkpoints")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    p.set_defaults(func=experiments.cmd_prelift)

    p = sub.add_parser("niah", parents=[common], help="needle-in-a-haystack grid: icl, lift, rag, hybrid, heatmaps")
    p.add_argument("--preset", choices=["demo", "standard"], help="grid preset (default: standard, 1k-128k tokens)")
    p.add_argument("--lengths", type=csv_list(number(int, 64)), help="haystack lengths in tokens, e.g. 1024,4096")
    p.add_argument("--depths", type=csv_list(FRACTION), help="needle depths as fractions, e.g. 0,0.5,1")
    p.add_argument("--methods", type=csv_list(str), help="subset of icl,lift,rag,hybrid")
    p.add_argument("--style", choices=["completion", "question"], help="prompt with the prefix or the question")
    p.add_argument("--haystack", help="folder of .txt files (default: held-out Python documentation)")
    p.add_argument(
        "--needle", nargs=4, metavar=("TEXT", "PREFIX", "QUESTION", "KEYWORDS"), help="custom needle (keywords: a,b)"
    )
    p.add_argument("--max-steps", type=COUNT, help="training budget per cell")
    p.add_argument("--max-epochs", type=EPOCHS, help="training budget per cell in passes over its examples")
    p.add_argument("--k", type=COUNT, help="snippets for rag and hybrid")
    p.add_argument("--out", default="niah-report", help="output directory (default ./niah-report); reruns resume")
    p.set_defaults(func=experiments.cmd_niah)
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
