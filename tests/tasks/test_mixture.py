from __future__ import annotations

import random

from lift_test_helpers import TEXT, make_tokenizer

from lift_memory.config import TrainConfig
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
