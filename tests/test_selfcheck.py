"""The recall self-check: held-out wording, keyword scoring, stored with the memory."""

from __future__ import annotations

from lift_test_helpers import HashEmbedder

from lift_memory import LiftMemory, selfcheck
from lift_memory.tasks.extractive import ExtractiveGenerator

FACTS = (
    " ".join(
        f"The locker code of team {name} is {code}. Team {name} meets on floor {floor}."
        for name, code, floor in [("Amber", "A-4411", 3), ("Birch", "B-9023", 5), ("Cedar", "C-1187", 2)]
    )
    + " The archive opened in 1998. The chief archivist is Marie Dubois."
)


def test_probes_are_worded_unlike_any_training_task_and_ask_for_what_the_question_lacks():
    import asyncio

    found = selfcheck.probes(FACTS, 8)
    tasks = asyncio.run(ExtractiveGenerator().agenerate(FACTS, (0, len(FACTS)), 0))
    prompts = {t.prompt for t in tasks}
    assert len(found) >= 3 and not prompts & {p.question for p in found}
    for probe in found:
        assert probe.question.startswith(selfcheck.PREFIX) and probe.keyword.lower() not in probe.question.lower()
    assert {p.keyword for p in selfcheck.probes(FACTS, 8)} >= {"4411", "9023", "1187", "Marie Dubois"}
    assert selfcheck.probes(FACTS, 2, seed=1) == selfcheck.probes(FACTS, 2, seed=1)


def test_cloze_probes_fill_up_where_few_sentences_can_be_asked_about():
    text = "Every visitor who enters the harbour office signs the ledger with ink number 4471. " + (
        "On the second floor the old clerk keeps the stamp for permit 9902 in a tin box. "
    )
    found = selfcheck.probes(text, 8)
    clozes = [p for p in found if p.question.startswith(selfcheck.CLOZE)]
    assert {p.keyword for p in clozes} == {"4471", "9902"}
    for probe in clozes:
        assert probe.keyword not in probe.question and probe.question.endswith('..."')


def test_the_score_is_the_keyword_score_of_bare_prompt_answers(tmp_path, tiny_model_dir, fast_config, monkeypatch):
    memory = LiftMemory(fast_config, root=tmp_path, model=str(tiny_model_dir), embedder=HashEmbedder(), progress=False)
    found = [selfcheck.Probe("What is the code?", "A-4411"), selfcheck.Probe("Who leads?", "Marie Dubois")]
    replies = iter(["The code is a-4411.", "Nobody."])
    tok = memory.engine.tokenizer
    monkeypatch.setattr(
        "lift_memory.generate.generate_ids", lambda *a, **k: tok(next(replies), add_special_tokens=False)["input_ids"]
    )
    result = selfcheck.check(memory.engine, found)
    assert (result.score, result.probes) == (0.5, 2)
    assert selfcheck.check(memory.engine, []) is None


def test_memorize_stores_the_self_check_and_list_shows_it(tmp_path, tiny_model_dir, fast_config, capsys):
    from lift_memory.cli import main

    memory = LiftMemory(fast_config, root=tmp_path, model=str(tiny_model_dir), embedder=HashEmbedder(), progress=False)
    record = memory.memorize(FACTS, doc_id="teams", train=True)
    check = record.self_check
    assert check is not None and check.probes >= 3 and 0.0 <= check.score <= 1.0 and check.seconds > 0
    assert memory.get("teams").self_check == check and memory.engine.self_check("teams") == check.score
    assert memory.memorize("Short.", doc_id="short").self_check is None  # untrained: nothing to check
    memory.close()
    assert main(["list", "--root", str(tmp_path), "--quiet"]) == 0
    assert f"self-check {check.score:.2f}" in capsys.readouterr().out
