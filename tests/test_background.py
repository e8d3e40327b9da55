"""memorize(background=True): stored and indexed at once, trained by the process's one worker, visible as a job."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
import torch
from lift_test_helpers import HashEmbedder

from lift_memory import LiftMemory
from lift_memory.errors import ConfigError
from lift_memory.jobs import WORKER

TEXT = " ".join(f"Proverb {i}: the river {i} remembers the stone number {i * 7}." for i in range(60))


@pytest.fixture
def memory(tmp_path, tiny_model_dir, fast_config):
    config = fast_config.model_copy(update={"train": fast_config.train.model_copy(update={"max_steps": 6})})
    yield LiftMemory(config, root=tmp_path / "mem", model=str(tiny_model_dir), embedder=HashEmbedder(), progress=False)
    WORKER.wait(timeout=60)


def _logits(memory, doc_id):
    with memory.engine.use(doc_id), torch.no_grad():
        return memory.engine.adapter.model(input_ids=torch.tensor([[0, 5, 9, 33]])).logits


def _gate():
    """A training callback that holds the worker at its first step until released."""
    started, release = threading.Event(), threading.Event()

    def hold(info):
        started.set()
        assert release.wait(30)

    return hold, started, release


def test_answers_at_once_then_with_the_adapter_once_it_is_ready(memory):
    hold, started, release = _gate()
    record = memory.memorize(TEXT, doc_id="river", background=True, callbacks=[hold])
    assert not record.trained and record.indexed and "background" in record.reason
    assert started.wait(30)
    job = memory.job("river")
    assert job.state == "training" and job.active and job.max_steps == 6
    answer = memory.ask("the river 3 remembers", "river")  # while it trains: no adapter, and it says so
    assert answer.adapter is None and any("not ready" in n and "training" in n for n in answer.notes)
    with pytest.raises(ConfigError, match="no adapter yet"):
        memory.ask("the river 3 remembers", "river", mode="lift")
    release.set()
    assert memory.wait("river", timeout=60)
    job, record = memory.job("river"), memory.get("river")
    assert job.state == "ready" and job.step == 6 and job.finished
    assert record.trained and record.train.steps == 6 and "in the background" in record.reason
    answer = memory.ask("the river 3 remembers", "river", mode="lift")  # no restart needed
    assert answer.adapter == "river"


def test_the_background_memory_is_what_a_foreground_memorize_stores(memory):
    memory.memorize(TEXT, doc_id="bg", background=True)
    assert memory.wait("bg", timeout=60)
    assert not torch.equal(_logits(memory, "bg"), _logits(memory, None))  # the adapter is on, and trained
    calls = []
    again = memory.memorize(TEXT, doc_id="bg", callbacks=[calls.append])  # same settings: a no-op
    assert again.trained and calls == [] and again.train == memory.get("bg").train
    again = memory.memorize(TEXT, doc_id="bg", background=True)  # nor does it queue another job
    assert again.trained and memory.job("bg").state == "ready"


def test_jobs_run_one_at_a_time_in_order(memory):
    seen, hold, started, release = [], *_gate()
    memory.memorize(TEXT, doc_id="first", background=True, callbacks=[hold, lambda i: seen.append(("first", i.step))])
    memory.memorize(
        TEXT.upper(), doc_id="second", background=True, callbacks=[lambda i: seen.append(("second", i.step))]
    )
    assert started.wait(30) and memory.job("second").state == "queued"
    release.set()
    assert memory.wait(timeout=60)
    assert [d for d, _ in seen] == ["first"] * 6 + ["second"] * 6
    assert {j.doc_id: j.state for j in memory.jobs()} == {"first": "ready", "second": "ready"}


def test_cancel_stops_the_job_and_keeps_the_document(memory):
    hold, started, release = _gate()
    memory.memorize(TEXT, doc_id="stop", background=True, callbacks=[hold])
    assert started.wait(30)
    threading.Timer(0.2, release.set).start()
    job = memory.cancel("stop", timeout=30)
    assert job.state == "cancelled" and not job.active
    record = memory.get("stop")
    assert not record.trained and record.indexed
    assert memory.ask("the river 3 remembers", "stop").route in ("icl", "rag")


def test_a_new_write_or_forget_supersedes_a_running_job(memory):
    hold, started, release = _gate()
    memory.memorize(TEXT, doc_id="doc", background=True, callbacks=[hold])
    assert started.wait(30)
    threading.Timer(0.2, release.set).start()
    record = memory.memorize(TEXT + " One more.", doc_id="doc", replace=True)  # waits for the job to stop
    assert record.trained and memory.job("doc").state == "cancelled"
    memory.forget("doc")
    assert memory.job("doc") is None


def test_a_job_left_by_a_dead_process_reads_as_failed_and_the_document_still_answers(memory):
    hold, started, release = _gate()
    memory.memorize(TEXT, doc_id="orphan", background=True, callbacks=[hold])
    assert started.wait(30)
    threading.Timer(0.2, release.set).start()
    memory.cancel("orphan", timeout=30)  # leaves the document untrained, as a death mid-training does
    path = memory.root / "jobs" / "orphan.json"
    dead = {**json.loads(path.read_text()), "state": "training", "error": None, "pid": 2**22 + 12345}
    path.write_text(json.dumps(dead))  # a pid that is not running
    reopened = LiftMemory(memory.config, root=memory.root, embedder=HashEmbedder(), progress=False)
    job = reopened.job("orphan")
    assert job.state == "failed" and "interrupted" in job.error
    assert reopened.ask("the river 3 remembers", "orphan").text is not None
    # Died after storing the adapter, before writing "ready": the stored adapter says it is ready.
    reopened.memorize(TEXT, doc_id="orphan", replace=True, train=True)
    path.write_text(json.dumps(dead))
    assert reopened.job("orphan").state == "ready"


def test_training_errors_fail_the_job_cleanly(memory):
    def boom(info):
        raise RuntimeError("out of memory\nsecond line")

    memory.memorize(TEXT, doc_id="bad", background=True, callbacks=[boom])
    assert memory.wait("bad", timeout=60)
    job = memory.job("bad")
    assert job.state == "failed" and job.error == "RuntimeError: out of memory"
    assert not memory.get("bad").trained


async def test_amemorize_returns_once_stored(memory):
    record = await memory.amemorize(TEXT, "async", background=True)
    assert not record.trained and memory.job("async").active
    assert memory.wait("async", timeout=60) and memory.get("async").trained


def test_background_needs_training_and_short_documents_need_none(memory):
    with pytest.raises(ConfigError, match="train=False"):
        memory.memorize(TEXT, background=True, train=False)
    record = memory.memorize("A short note.", doc_id="short", background=True)  # fits the window: read in context
    assert not record.trained and "fits the context window" in record.reason and memory.job("short") is None


def test_the_worker_survives_a_raising_job(caplog):
    ran = threading.Event()
    WORKER.submit(("x", "a"), lambda hook: (_ for _ in ()).throw(ValueError("escaped")))
    WORKER.submit(("x", "b"), lambda hook: ran.set())
    assert ran.wait(10) and "escaped" in caplog.text


@pytest.mark.slow
def test_the_cli_trains_in_a_detached_process_that_jobs_follows_and_cancel_stops(tmp_path, tiny_model_dir, capsys):
    from lift_memory.cli import main

    base = ["--root", str(tmp_path / "mem"), "--model", str(tiny_model_dir), "--quiet", "--json"]
    config = tmp_path / "memory.toml"
    config.write_text("[segment]\nlength = 64\nwindow = 16\n\n[train]\nbatch_tokens = 512\nplateau_patience = 5000\n")
    doc = tmp_path / "proverbs.txt"
    doc.write_text(TEXT)

    def cli(*args):
        code = main([*args, *base])
        out, err = capsys.readouterr()
        assert code == 0, err
        return json.loads(out)

    record = cli("memorize", str(doc), "--id", "long", "--background", "--max-steps", "5000", "--config", str(config))
    assert not record["trained"] and record["indexed"]  # returned before training
    deadline = time.monotonic() + 60
    while (job := cli("jobs")[0])["state"] != "training" or job["step"] < 1:
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    assert job["doc_id"] == "long" and job["pid"] != os.getpid()
    answer = cli("ask", "long", "the river 3 remembers")  # the detached process left the index free
    assert answer["adapter"] is None and any("not ready" in n for n in answer["notes"])
    assert cli("list")[0]["job"]["state"] == "training"
    job = cli("cancel", "long", "--timeout", "60")
    assert job["state"] == "cancelled" and job["error"] == "cancelled on request"

    cli("memorize", str(doc), "--id", "short", "--background", "--max-steps", "3", "--config", str(config))
    deadline = time.monotonic() + 120
    while (job := next(j for j in cli("jobs") if j["doc_id"] == "short"))["state"] != "ready":
        assert job["state"] in ("queued", "training") and time.monotonic() < deadline, job
        time.sleep(0.5)
    assert cli("ask", "short", "the river 3 remembers", "--mode", "lift")["adapter"] == "short"
    assert (tmp_path / "mem" / "jobs" / "short.log").exists()


def test_jobs_wait_for_the_machines_training_turn_and_can_be_cancelled_while_waiting(memory):
    from filelock import FileLock

    from lift_memory.files import cache_dir

    other_process = FileLock(str(cache_dir() / "training.lock"))  # another process's job is training
    other_process.acquire()
    try:
        memory.memorize(TEXT, doc_id="waits", background=True)
        time.sleep(1.5)
        assert memory.job("waits").state == "queued"
        memory.memorize(TEXT.upper(), doc_id="gives-up", background=True)
        assert memory.cancel("gives-up", timeout=0.1).active  # queued behind "waits": not stopped yet
    finally:
        other_process.release()
    assert memory.wait(timeout=60)
    assert memory.job("waits").state == "ready" and memory.job("gives-up").state == "cancelled"
