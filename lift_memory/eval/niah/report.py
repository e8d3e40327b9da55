"""NIAH results -> the familiar pictures and a table.

One heatmap per method (needle depth down, haystack length across, score as colour, the number in each cell),
one figure with all methods side by side, and a markdown summary with the mean score per method, per length,
and hit@k for the retrieval methods. matplotlib is imported only here, and only when plotting.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lift_memory.router import ROUTES

METHOD_ORDER = ROUTES


def grid_of(rows: Sequence[dict[str, Any]], method: str) -> tuple[list[int], list[float], list[list[float | None]]]:
    """(lengths, depths, scores[depth][length]) of one method; None where no result exists."""
    lengths = sorted({r["length"] for r in rows})
    depths = sorted({r["depth"] for r in rows})
    cell = {(r["length"], r["depth"]): r["score"] for r in rows if r["method"] == method}
    return lengths, depths, [[cell.get((length, d)) for length in lengths] for d in depths]


def _methods(rows: Sequence[dict[str, Any]]) -> list[str]:
    present = {r["method"] for r in rows}
    return [m for m in METHOD_ORDER if m in present]


def _draw(ax, rows, method: str, *, ylabel: bool = True):
    import numpy as np

    lengths, depths, grid = grid_of(rows, method)
    values = np.array([[np.nan if v is None else v for v in row] for row in grid], dtype=float)
    image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="RdYlGn", aspect="auto")
    ax.set_xticks(range(len(lengths)), [f"{n // 1024}k" if n >= 1024 else str(n) for n in lengths])
    ax.set_yticks(range(len(depths)), [f"{d:.0%}" for d in depths])
    ax.set_xlabel("haystack length (tokens)")
    if ylabel:
        ax.set_ylabel("needle depth")
    mean = np.nanmean(values) if np.isfinite(values).any() else float("nan")
    ax.set_title(f"{method}  (mean {mean:.2f})")
    for i in range(len(depths)):
        for j in range(len(lengths)):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=8)
    return image


def plot(rows: Sequence[dict[str, Any]], out: str | Path) -> list[Path]:
    """Write ``heatmap_<method>.png`` for each method and ``heatmaps.png`` with all of them; return the paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    methods = _methods(rows)
    for method in methods:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        fig.colorbar(_draw(ax, rows, method), ax=ax, label="score")
        fig.tight_layout()
        path = out / f"heatmap_{method}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    if methods:
        fig, axes = plt.subplots(
            1, len(methods), figsize=(3.6 * len(methods) + 1, 3.8), squeeze=False, layout="constrained"
        )
        for i, (ax, method) in enumerate(zip(axes[0], methods, strict=True)):
            image = _draw(ax, rows, method, ylabel=i == 0)
        fig.colorbar(image, ax=list(axes[0]), label="score", shrink=0.9)
        path = out / "heatmaps.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def summary(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown report: mean score per method overall and per length, and hit@k for retrieval."""
    methods = _methods(rows)
    lengths = sorted({r["length"] for r in rows})
    by = defaultdict(list)
    hits = defaultdict(list)
    for r in rows:
        by[(r["method"], r["length"])].append(r["score"])
        by[(r["method"], None)].append(r["score"])
        if r.get("hit_at_k") is not None:
            hits[r["method"]].append(r["hit_at_k"])

    def mean(values: list[float]) -> str:
        return f"{sum(values) / len(values):.2f}" if values else "–"

    header = ["method", "mean", *(f"{n} tok" for n in lengths), "hit@k"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in methods:
        cells = [m, mean(by[(m, None)]), *(mean(by[(m, n)]) for n in lengths), mean(hits[m])]
        lines.append("| " + " | ".join(cells) + " |")
    cells = {(r["method"], r["length"], r["depth"]): r["score"] for r in rows}
    if {"hybrid", "lift", "rag"} <= set(methods):
        keys = {(n, d) for (_, n, d) in cells}
        ok = sum(
            cells.get(("hybrid", n, d), 0) >= max(cells.get(("lift", n, d), 0), cells.get(("rag", n, d), 0))
            for n, d in keys
        )
        lines += ["", f"hybrid ≥ max(lift, rag) in {ok} of {len(keys)} cells."]
    n_cells = len({(r["length"], r["depth"]) for r in rows})
    lines += ["", f"{n_cells} cells, {len(rows)} results. Score: fraction of the needle's keywords in the answer."]
    return "\n".join(lines) + "\n"


def write_report(rows: Sequence[dict[str, Any]], out: str | Path) -> dict[str, Any]:
    """Plots and ``summary.md`` under ``out``; returns their paths. Without matplotlib (the ``plots`` extra) it
    warns once and writes the summary alone."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        images = plot(rows, out)
    except ImportError:
        warnings.warn(
            "the heatmaps need matplotlib: pip install 'lift-memory[plots]'; writing the summary only",
            RuntimeWarning,
            stacklevel=2,
        )
        images = []
    (out / "summary.md").write_text("# Needle in a haystack\n\n" + summary(rows), encoding="utf-8")
    return {"summary": str(out / "summary.md"), "images": [str(p) for p in images]}
