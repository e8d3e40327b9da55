from __future__ import annotations

import json
import struct

import pytest
from lift_test_helpers import TEXT, HashEmbedder, make_tokenizer

from lift_memory import LiftMemory
from lift_memory.errors import ConfigError
from lift_memory.eval.niah.grid import NIAHConfig, needle_depths, resolve_config, run_grid
from lift_memory.eval.niah.haystack import DEFAULT_NEEDLE, build_haystack, corpus_texts, insert_needle
from lift_memory.eval.niah.report import grid_of, summary, write_report
from lift_memory.eval.niah.scoring import LLMJudge, keyword_score
from lift_memory.segment import sentence_starts, tokenize


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


@pytest.mark.parametrize("n_tokens", [50, 333, 2000])
def test_haystacks_have_the_requested_length_in_tokens(tok, n_tokens):
    text = build_haystack(tok, n_tokens, [TEXT])
    assert abs(len(tokenize(text, tok)) - n_tokens) <= 2  # repeated or cut; seams may merge a token


@pytest.mark.parametrize("depth", [0.0, 0.1, 0.25, 0.5, 0.75, 1.0])
def test_needles_go_to_the_sentence_start_nearest_the_depth_in_tokens(tok, depth):
    haystack = build_haystack(tok, 1500, [TEXT])
    text, at = insert_needle(haystack, DEFAULT_NEEDLE, depth, tok)
    assert text[at : at + len(DEFAULT_NEEDLE)] == DEFAULT_NEEDLE
    assert " ".join(text.replace(DEFAULT_NEEDLE, "").split()) == " ".join(haystack.split())  # nothing else moved
    assert at in sentence_starts(text) or text[:at].rstrip() == haystack.rstrip()  # or appended at the very end
    doc = tokenize(haystack, tok)
    starts = [doc.token_at(c) for c in sentence_starts(haystack)] + [len(doc)]
    before = len(tokenize(haystack[: min(at, len(haystack))], tok)) if at else 0
    best = min(abs(s - depth * len(doc)) for s in starts)
    assert abs(before - depth * len(doc)) <= best + 2  # no sentence start is closer to the requested depth


def test_depths_are_fractions_not_percent(tok):
    with pytest.raises(ConfigError, match="fraction"):
        insert_needle("A. B.", "N.", 50, tok)
    with pytest.raises(ConfigError, match="fractions"):
        resolve_config(depths=[50])
    assert needle_depths(0.5, 1) == [0.5] and needle_depths(0.4, 3) == pytest.approx([0.4, 0.6, 0.8])


def test_haystack_folders(tmp_path):
    (tmp_path / "b.txt").write_text("Second file.")
    (tmp_path / "a.txt").write_text("First file.")
    assert corpus_texts(tmp_path) == ["First file.", "Second file."]
    with pytest.raises(ConfigError, match="no non-empty"):
        corpus_texts(tmp_path / "empty")


def test_scoring():
    assert keyword_score("Eat a SANDWICH in  dolores\npark", ["sandwich", "Dolores Park"]) == 1.0
    assert keyword_score("a sandwich", ["sandwich", "Dolores Park"]) == 0.5
    assert keyword_score("nothing", []) == 1.0

    class Chat:
        def __init__(self, reply):
            self.reply = reply

        def invoke(self, prompt):
            assert "sandwich" in prompt
            return type("Message", (), {"content": self.reply})()

    from lift_memory.eval.niah.haystack import Needle

    assert LLMJudge(Chat("Score: 0.75"))("p", "a", Needle()) == 0.75
    judge = LLMJudge(Chat("I cannot tell."))
    assert judge("p", "a", Needle()) == 0.0 and judge.unparsed == 1


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_grid_runs_resumes_and_reports(tmp_path, tiny_model_dir, fast_config):
    memory = LiftMemory(
        fast_config, root=tmp_path / "mem", model=str(tiny_model_dir), embedder=HashEmbedder(), progress=False
    )
    config = NIAHConfig(lengths=[200, 400], depths=[0.2, 0.8], model=str(tiny_model_dir), max_new_tokens=4)
    rows = run_grid(config, tmp_path / "out", memory=memory, progress=False)
    assert len(rows) == 2 * 2 * 4
    assert {r["method"] for r in rows} == {"icl", "lift", "rag", "hybrid"}
    assert all(0.0 <= r["score"] <= 1.0 and r["answer_seconds"] >= 0 and r["peak_rss_mb"] > 0 for r in rows)
    assert all(r["hit_at_k"] is not None for r in rows if r["method"] in ("rag", "hybrid"))
    assert all(r["route"] == r["method"] for r in rows)

    # Resumable: a rerun finds everything done and adds nothing; a cut-off line is simply redone.
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    (tmp_path / "out" / "results.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])
    again = run_grid(config, tmp_path / "out", memory=memory, progress=False)
    assert len(again) == len(rows)
    keys = [(r["length"], r["depth"], r["method"]) for r in again]
    assert len(set(keys)) == len(keys)

    report = write_report(again, tmp_path / "out")
    images = sorted(report["images"])
    assert [p.rsplit("/", 1)[-1] for p in images] == [
        "heatmap_hybrid.png",
        "heatmap_icl.png",
        "heatmap_lift.png",
        "heatmap_rag.png",
        "heatmaps.png",
    ]
    for path in images:
        width, height = _png_size(tmp_path / "out" / path.rsplit("/", 1)[-1])
        assert width > 100 and height > 100
    lengths, depths, grid = grid_of(again, "lift")
    assert (lengths, depths) == ([200, 400], [0.2, 0.8]) and all(v is not None for row in grid for v in row)
    table = (tmp_path / "out" / "summary.md").read_text()
    assert "| hybrid |" in table and "4 cells, 16 results" in table
    assert json.loads((tmp_path / "out" / "config.json").read_text())["run"] == config.run_id()


def test_summary_counts_cells_where_hybrid_wins():
    rows = [
        {"length": 1, "depth": 0.5, "method": m, "score": s, "hit_at_k": None}
        for m, s in [("lift", 0.5), ("rag", 1.0), ("hybrid", 1.0), ("icl", 0.0)]
    ]
    assert "hybrid ≥ max(lift, rag) in 1 of 1 cells" in summary(rows)


def test_a_cell_trains_only_when_a_method_reads_the_adapter(tmp_path, tiny_model_dir, fast_config):
    small = fast_config.model_copy(update={"model": fast_config.model.model_copy(update={"context_window": 128})})
    memory = LiftMemory(
        small, root=tmp_path / "mem", model=str(tiny_model_dir), embedder=HashEmbedder(), progress=False
    )
    config = NIAHConfig(
        lengths=[400], depths=[0.5], methods=["icl", "rag"], model=str(tiny_model_dir), max_new_tokens=4
    )
    rows = run_grid(config, tmp_path / "out", memory=memory, progress=False)
    assert rows and all(r["doc_tokens"] > 128 for r in rows)  # longer than the window, yet:
    assert all(not r["trained"] and r["train_steps"] == 0 for r in rows)
    config = config.model_copy(update={"methods": ["lift"]})
    (row,) = run_grid(config, tmp_path / "out", memory=memory, progress=False)
    assert row["trained"] and row["train_steps"] > 0


def test_the_window_cap_reaches_the_model(tmp_path, tiny_model_dir):
    config = NIAHConfig(lengths=[300], depths=[0.5], methods=["icl"], model=str(tiny_model_dir), window=96)
    (row,) = run_grid(config, tmp_path / "out", progress=False)
    assert row["window"] == 96 and row["doc_tokens"] >= 290 and not row["trained"]


def test_a_widened_grid_runs_only_its_new_cells(tmp_path, tiny_model_dir, fast_config):
    memory = LiftMemory(
        fast_config, root=tmp_path / "mem", model=str(tiny_model_dir), embedder=HashEmbedder(), progress=False
    )
    narrow = NIAHConfig(lengths=[200], depths=[0.5], methods=["icl"], model=str(tiny_model_dir), max_new_tokens=4)
    (first,) = run_grid(narrow, tmp_path / "out", memory=memory, progress=False)
    wide = narrow.model_copy(update={"lengths": [200, 300], "methods": ["icl", "rag"]})
    assert wide.run_id() == narrow.run_id() != narrow.model_copy(update={"max_steps": 7}).run_id()
    rows = run_grid(wide, tmp_path / "out", memory=memory, progress=False)
    assert sorted((r["length"], r["method"]) for r in rows) == [(200, "icl"), (200, "rag"), (300, "icl"), (300, "rag")]
    assert first in rows  # reused as it was, not run again
    assert run_grid(narrow, tmp_path / "out", memory=memory, progress=False) == [first]  # only its own cells
