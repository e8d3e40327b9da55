"""Incremental re-memorizing: a changed document continues from its previous adapter, on what the edit touches
and a replay sample of the rest; only changed chunks are embedded again; versions count up."""

from __future__ import annotations

import pytest
from lift_test_helpers import HashEmbedder

from lift_memory import LiftMemory
from lift_memory.config import TrainConfig
from lift_memory.edits import diff, scaled_budget

DOC = " ".join(f"Fact {i}: the code of room {i} is {1000 + 7 * i}." for i in range(60))
EDITED = DOC.replace("the code of room 30 is 1210.", "the code of room 30 is 4242.")


def test_diff_finds_the_changed_sentences_and_samples_the_rest_the_same_way_every_time():
    edit = diff(DOC, EDITED, replay=0.1, seed=3)
    assert [EDITED[a:b].strip() for a, b in edit.changed] == ["Fact 30: the code of room 30 is 4242."]
    assert 0 < edit.fraction < 0.02
    start = EDITED.index("Fact 30")
    assert edit.touches(start - 10, start + 5) and not edit.touches(0, 20)
    kept = [edit.keeps(i, i + 40) for i in range(0, 2000, 40)]
    assert kept == [diff(DOC, EDITED, replay=0.1, seed=3).keeps(i, i + 40) for i in range(0, 2000, 40)]
    assert 0 < sum(kept) < len(kept)  # the touched span and a sample, not everything
    deleted = diff(DOC, DOC.replace("Fact 5: the code of room 5 is 1035. ", ""))
    ((at, end),) = deleted.changed
    assert at == end and deleted.fraction == 0 and deleted.touches(at - 3, at + 3)
    assert diff(DOC, DOC).changed == ()


def test_budgets_scale_with_the_share_of_examples_and_never_exceed_the_full_run():
    config = TrainConfig(max_steps=400, max_tokens=10_000, max_seconds=100.0)
    scaled = scaled_budget(config, 0.05)
    assert (scaled.max_steps, scaled.max_tokens, scaled.max_seconds) == (20, 500, 5.0)
    assert scaled_budget(TrainConfig(max_steps=3), 0.01).max_steps == 3


class CountingEmbedder(HashEmbedder):
    def __init__(self) -> None:
        self.embedded: list[str] = []

    def embed_documents(self, texts):
        self.embedded += list(texts)
        return super().embed_documents(texts)


@pytest.fixture
def memory(tmp_path, tiny_model_dir, fast_config):
    train = fast_config.train.model_copy(update={"max_steps": 40})
    config = fast_config.model_copy(update={"train": train})
    return LiftMemory(config, root=tmp_path, model=str(tiny_model_dir), embedder=CountingEmbedder(), progress=False)


def _first_loss(memory, text, **kw):
    losses = []
    record = memory.memorize(text, doc_id="rooms", train=True, callbacks=[lambda info: losses.append(info.loss)], **kw)
    return record, losses[0]


def test_a_small_edit_continues_from_the_previous_adapter_on_a_fraction_of_the_budget(memory):
    first, first_loss = _first_loss(memory, DOC)
    n_chunks = len(memory.retriever.store.chunks("default", "rooms"))
    memory.retrieval.embedder().embedded.clear()
    second, second_loss = _first_loss(memory, EDITED, replace=True)
    assert (first.version, second.version) == (1, 2)
    assert second.extra["incremental"]["from_version"] == 1 and "re-trained" in second.reason
    assert second.train.steps < first.train.steps / 2  # the budget scaled with the examples kept
    assert second_loss < first_loss  # it started from the trained adapter, not from the identity
    embedded = memory.retrieval.embedder().embedded
    assert 0 < len(embedded) < n_chunks and all("4242" in t or "room 30" in t or "room 29" in t for t in embedded)
    assert memory.retrieve("the code of room 30 is 4242")[0].text.count("4242") == 1


def test_a_large_edit_or_incremental_off_trains_from_scratch(memory, tmp_path, tiny_model_dir, fast_config):
    memory.memorize(DOC, doc_id="rooms", train=True)
    rewritten = memory.memorize(DOC.replace("code", "key").replace("room", "hall"), doc_id="rooms", replace=True)
    assert rewritten.version == 2 and rewritten.extra["incremental"] is None and rewritten.train.steps == 40
    off = fast_config.model_copy(update={"train": fast_config.train.model_copy(update={"incremental": 0.0})})
    plain = LiftMemory(off, root=tmp_path / "off", model=str(tiny_model_dir), embedder=HashEmbedder(), progress=False)
    plain.memorize(DOC, doc_id="rooms", train=True)
    assert plain.memorize(EDITED, doc_id="rooms", replace=True, train=True).extra["incremental"] is None


def test_in_the_background_the_previous_version_answers_until_the_new_one_is_ready(memory):
    memory.memorize(DOC, doc_id="rooms", train=True)
    old_file = memory.bank.manifest("rooms").adapter_file
    pending = memory.memorize(EDITED, doc_id="rooms", replace=True, background=True)
    assert pending.version == 2 and pending.extra["stale"] and pending.trained and "answers until" in pending.reason
    answer = memory.ask("the code of room 30 is", "rooms")
    assert answer.adapter == "rooms"  # the previous version's adapter, not none at all
    if memory.job("rooms").active:
        assert any("earlier version" in note for note in answer.notes)
    assert memory.wait("rooms", timeout=120)
    ready = memory.get("rooms")
    assert ready.version == 2 and not ready.extra["stale"] and ready.extra["incremental"]["from_version"] == 1
    assert memory.bank.manifest("rooms").adapter_file != old_file and "in the background" in ready.reason


def test_a_job_that_died_while_the_previous_version_answered_reads_as_failed_not_ready(memory):
    import json
    import threading

    memory.memorize(DOC, doc_id="rooms", train=True)
    started, release = threading.Event(), threading.Event()

    def hold(info):
        started.set()
        assert release.wait(30)

    memory.memorize(EDITED, doc_id="rooms", replace=True, background=True, callbacks=[hold])
    assert started.wait(30)
    threading.Timer(0.2, release.set).start()
    memory.cancel("rooms", timeout=30)  # the stale manifest stays, as a death mid-training leaves it
    assert memory.get("rooms").extra["stale"]
    path = memory.root / "jobs" / "rooms.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "state": "training", "error": None, "pid": 2**22 + 1}))
    job = memory.job("rooms")  # the previous version's adapter is not this version's: not ready
    assert job.state == "failed" and "interrupted" in job.error
