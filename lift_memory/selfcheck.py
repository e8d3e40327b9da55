"""The recall self-check: after training, the adapter answers questions about its document from a bare prompt.

Probes are questions about sentences of the document, worded so that no training task has the same prompt:
the question task's question ("What is the X?") asked as "According to the document, what is the X?". Its
answer must contain the sentence's salient span (a number, a name, a quoted string: what the sentence's recall
task blanks out), which the question itself does not contain. Where too few sentences can be asked about, cloze
probes fill up: the sentence's words up to its salient span, to be continued ("According to the document, how
does this sentence go on?"). They resemble the trained "continue from here" windows in form, with another
wording and another cut (right before the span). No fact is withheld from training: the probes
measure whether the adapter answers a question it was never asked in training, as a user's question will be.
Scoring is the needle-in-a-haystack harness's keyword scorer.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from lift_memory.types import SelfCheck

PREFIX = "According to the document, "
CLOZE = "According to the document, how does this sentence go on? "


@dataclass(frozen=True, slots=True)
class Probe:
    question: str
    keyword: str


def probes(text: str, n: int, seed: int = 0) -> list[Probe]:
    """Up to ``n`` probes about ``text``, the same for the same text and seed: question probes first, then
    cloze probes for sentences no question probe covers."""
    from lift_memory.tasks.extractive import masked_span, question_tasks, recall_tasks

    recalls = {(t.evidence_start, t.evidence_end): masked_span(t) for t in recall_tasks(text)}
    questions, asked = [], set()
    for task in question_tasks(text):
        where = (task.evidence_start, task.evidence_end)
        keyword = recalls.get(where)
        if keyword and keyword.lower() not in task.prompt.lower():
            questions.append(Probe(PREFIX + task.prompt[:1].lower() + task.prompt[1:], keyword.strip('"')))
            asked.add(where)
    clozes = []
    for (start, end), keyword in recalls.items():
        sentence = text[start:end]
        head = " ".join(sentence[: sentence.find(keyword)].split()) if keyword else ""
        if (start, end) not in asked and len(head.split()) >= 4:
            clozes.append(Probe(f'{CLOZE}"{head} ..."', keyword.strip('"')))
    rng = random.Random(seed)
    chosen = rng.sample(questions, min(n, len(questions)))
    return chosen + rng.sample(clozes, min(n - len(chosen), len(clozes)))


def check(engine, found: list[Probe], max_new_tokens: int = 32) -> SelfCheck | None:
    """Score ``found`` with the adapter now in ``engine``'s slot; None without probes."""
    from lift_memory.config import GenerationConfig
    from lift_memory.eval.niah.scoring import keyword_score
    from lift_memory.generate import generate_ids
    from lift_memory.prompt import render

    if not found:
        return None
    started, hits = time.perf_counter(), 0.0
    model, tok = engine.adapter.model, engine.tokenizer
    was_training = model.training
    model.eval()
    try:
        for probe in found:
            ids = render(tok, "", probe.question, engine.base.prefix_ids)
            reply = generate_ids(model, ids, GenerationConfig(max_new_tokens=max_new_tokens), engine.base.eos_ids)
            hits += keyword_score(tok.decode(list(reply), skip_special_tokens=True), [probe.keyword])
    finally:
        model.train(was_training)
    return SelfCheck(round(hits / len(found), 3), len(found), round(time.perf_counter() - started, 3))
