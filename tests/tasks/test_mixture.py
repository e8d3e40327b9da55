from __future__ import annotations

import random
import re

from lift_test_helpers import CHAT_TEMPLATE, TEXT, make_tokenizer

from lift_memory.config import TrainConfig
from lift_memory.prompt import render
from lift_memory.segment import Segmenter, tokenize
from lift_memory.tasks.formats import TaskRenderer, excerpt
from lift_memory.tasks.lm import lm_examples
from lift_memory.tasks.mixture import TaskMixture, window_tasks
from lift_memory.train.loop import Trainer
from lift_memory.types import Task


def test_loss_falls_on_the_answer_only():
    tok = make_tokenizer()
    renderer = TaskRenderer(tok, (0,), 1)
    ex = renderer.example(Task("recall", "Fill in: A stitch in ____ saves nine.", "time", 0, 4))
    answer = tok.decode(list(ex.input_ids[ex.loss_start :]), skip_special_tokens=True)
    assert answer.strip() == "time" and ex.input_ids[-1] == 1 and ex.input_ids[0] == 0
    assert tok.decode(list(ex.input_ids[: ex.loss_start])).endswith("saves nine.\nAnswer:")


def test_chat_templates_render_tasks_as_turns():
    tok = make_tokenizer()
    tok.chat_template = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
    ex = TaskRenderer(tok, (0,), 1).example(Task("qa", "Who?", "Ada", 0, 3))
    assert tok.decode(list(ex.input_ids[: ex.loss_start])).endswith("<|assistant|>")
    assert tok.decode(list(ex.input_ids[ex.loss_start :]), skip_special_tokens=True) == "Ada"


def test_contextualized_variants_are_resampled_every_epoch():
    tok = make_tokenizer()
    doc = tokenize(TEXT, tok)
    seg = Segmenter(length=48, overlap=16, window=12)
    lm, _ = lm_examples(doc, seg, tok, (0,))
    tasks = [Task("recall", f"Fill in {i}", "nine", 0, 4) for i in range(8)]
    windows = window_tasks(seg.windows(doc, tok), TEXT)
    mixture = TaskMixture(
        lm, lambda: tasks, TaskRenderer(tok, (0,), 1), doc, windows=windows, contextualize=0.5, context_tokens=40
    )
    rng = random.Random(0)
    first, second = mixture.epoch(0, rng), mixture.epoch(1, rng)
    ctx1 = [e for e in first if e.task.endswith("+ctx")]
    ctx2 = [e for e in second if e.task.endswith("+ctx")]
    assert len(ctx1) == round(0.5 * (len(tasks) + len(windows))) and {e.task for e in ctx1} <= {
        "recall+ctx",
        "window+ctx",
    }
    assert [e.input_ids for e in ctx1] != [e.input_ids for e in ctx2]  # new excerpts, new picks
    assert len([e for e in first if e.task == "recall"]) == 8 and len(first) - len(ctx1) == len(lm) + 8
    assert excerpt(doc, 3, 3).count("...") == 1 and excerpt(doc, len(doc), 0) == TEXT


def test_contextualized_tasks_take_their_tasks_weight():
    trainer = Trainer(
        None, [], TrainConfig(learning_rate=1e-3, task_weights={"recall": 0.5, "order+ctx": 0.0}), pad_id=0
    )
    assert trainer.weight("recall+ctx") == 0.5 and trainer.weight("order+ctx") == 0.0 and trainer.weight("qa") == 0.0


def test_retrieved_variants_quote_the_evidence_as_the_router_lays_out_snippets():
    tok = make_tokenizer()
    doc = tokenize(TEXT * 4, tok)
    starts = list(range(0, len(doc.text) - 40, 97))
    tasks = [Task("recall", f"Fill in {i}", "x", s, s + 30) for i, s in enumerate(starts)]
    mixture = TaskMixture(
        [],
        lambda: tasks,
        TaskRenderer(tok, (0,), 1),
        doc,
        contextualize=0.0,
        retrieved=1.0,
        snippet_tokens=24,
        context_tokens=96,
    )
    examples = [e for e in mixture.epoch(0, random.Random(0)) if e.task == "recall+rag"]
    assert len(examples) == len(tasks)  # every evidence span fits in one 24-token passage
    with_ends = 0
    for example in examples:
        prompt = tok.decode(list(example.input_ids[1 : example.loss_start]))
        task = tasks[int(re.search(r"Fill in (\d+)\nAnswer:$", prompt).group(1))]
        assert "[1] " in prompt and doc.text[task.evidence_start : task.evidence_end] in prompt
        markers = [prompt.index(f"[{n}] ") for n in range(1, prompt.count("] ") + 1) if f"[{n}] " in prompt]
        assert markers == sorted(markers)
        with_ends += not prompt.startswith("[1] ")
    assert 0 < with_ends < len(tasks)  # about half also show the document's head and tail, as hybrid does


def test_chat_tasks_are_prompted_exactly_as_questions_are_at_test_time():
    tok = make_tokenizer()
    tok.chat_template = CHAT_TEMPLATE
    task = Task("question", "What is the vault code?", "The vault code is VX-7731.", 0, 10)
    for context in ("", "[1] The vault code is VX-7731."):
        example = TaskRenderer(tok, (0,), 1).example(task, context)
        assert list(example.input_ids[: example.loss_start]) == render(tok, context, task.prompt, (0,))
        assert tok.decode(list(example.input_ids[example.loss_start :]), skip_special_tokens=True) == task.answer
