"""The needle-in-a-haystack grid: lengths x depths x methods, through the public ``LiftMemory`` API.

For every cell (haystack length in tokens, needle depth) the runner builds the haystack, inserts the
needle(s), memorizes the document once (adapter and retrieval index), then asks it with each method —
``icl``, ``lift``, ``rag``, ``hybrid``, the router's routes — and scores the answers. For ``rag`` and
``hybrid`` it also records whether retrieval found the needle (hit@k), which tells retrieval misses from
reading misses. Each result is a JSON line appended to ``results.jsonl`` as soon as it exists; a rerun with
the same configuration skips what is already there.

Two prompt styles: ``completion`` (base and tiny models: the needle's prefix, to be continued) and
``question`` (instruct models: the needle's question).
"""

from __future__ import annotations

import hashlib
import json
import resource
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lift_memory.errors import ConfigError
from lift_memory.eval.niah.haystack import Needle, build_haystack, corpus_texts, insert_needle
from lift_memory.eval.niah.scoring import keyword_score
from lift_memory.router import ROUTES, Route

METHODS = ROUTES
PRESETS: dict[str, dict[str, Any]] = {
    "demo": {"lengths": [512, 2048, 8192], "depths": [0.1, 0.5, 0.9], "max_steps": 250},
    "standard": {
        "lengths": [1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072],
        "depths": [i / 10 for i in range(11)],
    },
}


class NeedleSpec(BaseModel):
    """A needle as configured (see :class:`~lift_memory.eval.niah.haystack.Needle`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    """The sentence hidden in the haystack."""
    prefix: str
    """Its beginning: the prompt in completion mode."""
    question: str
    """The question in question mode."""
    keywords: tuple[str, ...]
    """What a correct answer contains."""

    def needle(self) -> Needle:
        return Needle(self.text, self.prefix, self.question, self.keywords)


class NIAHConfig(BaseModel):
    """One grid run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lengths: list[int] = Field(default_factory=lambda: list(PRESETS["standard"]["lengths"]))
    """Haystack lengths in the model's own tokens."""
    depths: list[float] = Field(default_factory=lambda: list(PRESETS["standard"]["depths"]))
    """Needle depths as fractions of the haystack (0 = start, 1 = end)."""
    methods: list[Route] = Field(default_factory=lambda: list(METHODS))
    """Which methods answer in each cell."""
    style: Literal["completion", "question"] = "completion"
    """``completion``: prompt with the needle's prefix; ``question``: ask its question."""
    needles: list[NeedleSpec] = Field(default_factory=lambda: [NeedleSpec(**Needle().__dict__)])
    """One needle, or several (spread evenly from the cell's depth towards the end)."""
    haystack_dir: str | None = None
    """Folder of .txt files for the haystack (default: Python documentation held out from builtin:tiny)."""
    model: str = "builtin:tiny"
    """Base model: ``builtin:tiny``, a packaged model (``smollm2-135m-instruct``), a ``.gguf`` file, a folder or a
    hub id."""
    window: int | None = Field(default=None, ge=32)
    """Cap on the model's context window in tokens (None: the model's own). Haystacks longer than the window
    are LIFT's setting: a short-context model and a long input."""
    max_steps: int = Field(default=300, ge=1)
    """Training budget per cell (optimizer steps)."""
    max_epochs: float | None = Field(default=None, gt=0)
    """Training budget per cell in passes over its examples (None: steps alone). With a generous ``max_steps``
    this is the fair budget across lengths: a long haystack gets proportionally more steps."""
    k: int = Field(default=5, ge=1)
    """Snippets retrieved for rag and hybrid; hit@k uses the same k."""
    max_new_tokens: int = Field(default=24, ge=1)
    """Generation budget per answer."""

    @field_validator("depths")
    @classmethod
    def _fractions(cls, depths: list[float]) -> list[float]:
        bad = [d for d in depths if not 0.0 <= d <= 1.0]
        if bad:
            raise ValueError(f"depths are fractions in [0, 1], got {bad}; write 0.5 for 50 %")
        return depths

    def train(self):
        """The training settings of every cell."""
        from lift_memory.config import TrainConfig

        return TrainConfig(max_steps=self.max_steps, max_epochs=self.max_epochs)

    def run_id(self) -> str:
        """Identifies what a cell's result depends on — everything but the grid's axes — so results of another
        configuration are never mixed in, while a grid widened by lengths, depths or methods reuses its cells."""
        unset = {"max_epochs"} if self.max_epochs is None else set()  # runs from before the field keep their id
        settings = self.model_dump_json(exclude={"lengths", "depths", "methods", *unset})
        return hashlib.sha256(settings.encode()).hexdigest()[:12]


def needle_depths(depth: float, n: int) -> list[float]:
    """Depths of ``n`` needles: the first at ``depth``, the others evenly between it and the end."""
    return [depth + i * (1.0 - depth) / n for i in range(n)]


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def load_results(path: Path, run_id: str | None = None) -> list[dict[str, Any]]:
    """Result lines of ``path`` (of one run when ``run_id`` is given); unreadable lines are skipped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by an interrupted run: its cell is simply run again
        if run_id is None or row.get("run") == run_id:
            rows.append(row)
    return rows


def _ends_mid_line(path: Path) -> bool:
    with path.open("rb") as fh:
        if fh.seek(0, 2) == 0:
            return False
        fh.seek(-1, 2)
        return fh.read(1) != b"\n"


def run_grid(
    config: NIAHConfig,
    out: str | Path,
    *,
    memory=None,
    judge: Callable[[str, str, Needle], float] | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run every cell of ``config`` not already in ``out/results.jsonl``; return the rows of its cells.

    Args:
        config: the grid.
        out: output directory (results, memory, report).
        memory: a ``LiftMemory`` to use (default: one under ``out/memory`` with ``config.model``).
        judge: optional scorer ``judge(prompt, answer, needle) -> [0, 1]`` used instead of keywords
            (see :class:`~lift_memory.eval.niah.scoring.LLMJudge`).
        progress: show a progress bar with the estimated time left.
    """
    from lift_memory import LiftMemory, MemoryConfig
    from lift_memory.config import ModelConfig
    from lift_memory.progress import bar as progress_bar

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run_id = config.run_id()
    (out / "config.json").write_text(json.dumps({"run": run_id, **config.model_dump()}, indent=2))
    results = out / "results.jsonl"
    done = {(r["length"], r["depth"], r["method"]) for r in load_results(results, run_id)}
    if memory is None:
        model = ModelConfig(name=config.model, context_window=config.window)
        settings = MemoryConfig(model=model, train=config.train())
        memory = LiftMemory(settings, root=out / "memory", progress=False)
    texts = corpus_texts(config.haystack_dir)
    needles = [n.needle() for n in config.needles]
    cells = [(length, depth) for length in config.lengths for depth in config.depths]
    todo = sum(1 for c in cells for m in config.methods if (*c, m) not in done)
    bar = progress_bar(progress, total=todo, desc="needle in a haystack", unit="answer")
    with results.open("a", encoding="utf-8") as sink:
        if _ends_mid_line(results):
            sink.write("\n")  # an interrupted run left half a line: start ours on a fresh one
        for length, depth in cells:
            methods = [m for m in config.methods if (length, depth, m) not in done]
            if not methods:
                continue
            for row in _cell(memory, config, texts, needles, length, depth, methods, judge):
                sink.write(json.dumps({"run": run_id, **row}) + "\n")
                sink.flush()
                bar.update()
    bar.close()
    wanted = {(length, depth, method) for length, depth in cells for method in config.methods}
    return [r for r in load_results(results, run_id) if (r["length"], r["depth"], r["method"]) in wanted]


def _cell(memory, config: NIAHConfig, texts, needles, length, depth, methods, judge) -> Iterator[dict[str, Any]]:
    tok = memory.engine.tokenizer
    text = build_haystack(tok, length, texts)
    for needle, d in zip(needles, needle_depths(depth, len(needles)), strict=True):
        text, _ = insert_needle(text, needle.text, d, tok)
    doc_id = f"niah-{length}-{round(depth * 1000):04d}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    # Only lift and hybrid read the adapter: a cell without them trains nothing (and a document that fits
    # the window is still read whole by icl and rag).
    needs_adapter = any(m in ("lift", "hybrid") for m in methods)
    started = time.perf_counter()
    record = memory.memorize(text, doc_id=doc_id, replace=True, train=needs_adapter)
    memorize_seconds = round(time.perf_counter() - started, 2)
    for method in methods:
        prompts = [n.prefix if config.style == "completion" else n.question for n in needles]
        answers, scores, hits, ranks = [], [], [], []
        route = None
        started = time.perf_counter()
        for needle, prompt in zip(needles, prompts, strict=True):
            answer = memory.ask(prompt, doc_id, mode=method, k=config.k, max_new_tokens=config.max_new_tokens)
            route = answer.route
            answers.append(answer.text)
            score = judge(prompt, answer.text, needle) if judge else keyword_score(answer.text, needle.keywords)
            scores.append(round(float(score), 4))
            if method in ("rag", "hybrid"):
                found = memory.retrieve(prompt, [doc_id], k=config.k)
                rank = next((i for i, s in enumerate(found, 1) if needle.text in s.text), None)
                hits.append(rank is not None)
                ranks.append(rank)
        yield {
            "length": length,
            "depth": depth,
            "method": method,
            "doc_tokens": record.n_tokens,
            "window": memory.engine.base.context_window,
            "needles": len(needles),
            "score": round(sum(scores) / len(scores), 4),
            "scores": scores,
            "answers": answers,
            "route": route,
            "hit_at_k": (sum(hits) / len(hits)) if hits else None,
            "retrieval_ranks": ranks or None,
            "trained": record.trained,
            "train_steps": record.train.steps if record.train else 0,
            "memorize_seconds": memorize_seconds,
            "answer_seconds": round(time.perf_counter() - started, 3),
            "peak_rss_mb": _peak_rss_mb(),
        }


def resolve_config(preset: str | None = None, **overrides: Any) -> NIAHConfig:
    """A :class:`NIAHConfig` from a preset (``demo``, ``standard``) with ``overrides`` (those not None)."""
    base: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; available: {sorted(PRESETS)}")
        base = dict(PRESETS[preset])
    base.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return NIAHConfig(**base)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid niah configuration: {problems}") from exc
