"""Context distillation: the loss, the teacher (the base model reading a passage), and training toward it."""

from __future__ import annotations

import random

import pytest
import torch
from lift_test_helpers import TEXT

from lift_memory import LiftMemory
from lift_memory.adapters import attach
from lift_memory.config import LoraAdapterConfig, RetrievalConfig, TrainConfig
from lift_memory.models import load_model
from lift_memory.segment import tokenize
from lift_memory.tasks.distill import TASK, Teacher
from lift_memory.tasks.formats import TaskRenderer
from lift_memory.train.collate import IGNORE, Soft, collate
from lift_memory.train.loop import Trainer
from lift_memory.train.losses import next_token_targets, task_sums
from lift_memory.types import SoftTargets, Task, TrainingExample


def _setup(model_dir):
    base = load_model(str(model_dir))
    adapter = attach(base.model, LoraAdapterConfig(r=4, train_embeddings=True), seed=0)
    doc = tokenize(TEXT, base.tokenizer)
    renderer = TaskRenderer(base.tokenizer, base.prefix_ids, base.eos_id)
    return base, adapter, doc, renderer


def _task(doc) -> Task:
    """A question whose evidence is a sentence in the middle of the document."""
    start = doc.text.index(". ", len(doc.text) // 2) + 2
    end = doc.text.index(".", start) + 1
    return Task("question", "What does the document say here?", doc.text[start:end], start, end)


def test_a_one_token_teacher_is_cross_entropy():
    torch.manual_seed(0)
    logits, labels = torch.randn(3, 6, 11), torch.randint(0, 11, (3, 6))
    labels[2, 4:] = IGNORE
    targets, tasks = next_token_targets(labels), torch.tensor([0, 1, 1])
    labelled = targets != IGNORE
    soft = Soft(targets.clamp(min=0)[..., None], torch.zeros(3, 6, 1), labelled)  # all mass on the token
    hard, counts = task_sums(logits, targets, tasks, 2)
    distilled, same_counts = task_sums(logits, targets, tasks, 2, soft)
    assert torch.allclose(hard, distilled) and torch.equal(counts, same_counts)


def test_the_distill_loss_is_kl_to_the_teacher():
    torch.manual_seed(1)
    logits, teacher = torch.randn(2, 5, 7), torch.log_softmax(torch.randn(2, 5, 7), -1)
    labels = torch.randint(0, 7, (2, 5))
    targets, tasks = next_token_targets(labels), torch.tensor([0, 0])
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[0, 1:4] = True  # row 0 distilled at three positions, row 1 plain cross-entropy
    ids = torch.arange(7).expand(2, 5, 7)  # k = V: the top-k is the whole distribution
    sums, _ = task_sums(logits, targets, tasks, 1, Soft(ids, teacher, mask))
    kl = torch.nn.functional.kl_div(torch.log_softmax(logits, -1), teacher, log_target=True, reduction="none")
    ce = torch.nn.functional.cross_entropy(logits[1, :4], targets[1, :4], reduction="sum")
    expected = kl.sum(-1)[0, 1:4].sum() + torch.nn.functional.cross_entropy(logits[0, 0:1], targets[0, 0:1]) + ce
    assert sums[0].item() == pytest.approx(expected.item(), rel=1e-5)


def test_the_teacher_is_the_base_model_reading_the_passage(tiny_model_dir):
    base, adapter, doc, renderer = _setup(tiny_model_dir)
    task = _task(doc)
    teacher = Teacher(adapter.model, adapter.disabled, renderer, doc, context_tokens=40, top_k=4)
    passage = teacher.passage(task)
    assert task.answer in passage and base.tokenizer(passage, add_special_tokens=False)["input_ids"].__len__() <= 41

    mode = adapter.model.training
    first = teacher.example(task)
    student = renderer.example(task)
    assert first.task == TASK and first.input_ids == student.input_ids and first.loss_start == student.loss_start
    n = len(student) - student.loss_start
    assert first.soft.ids.shape == (n, 4) and torch.allclose(first.soft.logp.exp().sum(-1), torch.ones(n))

    with torch.no_grad():  # a trained adapter must not change what the teacher says
        for p in adapter.parameters():
            p.add_(torch.randn_like(p))
    again = teacher.example(task)
    assert torch.equal(first.soft.ids, again.soft.ids) and torch.allclose(first.soft.logp, again.soft.logp)

    read = renderer.example(task, passage)
    with adapter.disabled(), torch.no_grad():
        logits = base.model(input_ids=torch.tensor([read.input_ids])).logits[0, read.loss_start - 1 : -1]
    assert torch.equal(logits.topk(4, -1).indices, first.soft.ids)
    assert adapter.model.training is mode  # the teacher left the mode as it found it

    long = Task("question", "Everything?", doc.text, 0, len(doc.text))
    assert teacher.passage(long) is None and teacher.example(long) is None


def test_training_on_distill_examples_moves_the_student_toward_the_teacher(tiny_model_dir):
    base, adapter, doc, renderer = _setup(tiny_model_dir)
    teacher = Teacher(adapter.model, adapter.disabled, renderer, doc, context_tokens=48, top_k=8)
    sentences = list(dict.fromkeys(s for s in doc.text.split(". ") if 20 < len(s) < 60))[:6]
    tasks = [
        Task("question", f"What comes next after {s[:12]}?", s, doc.text.index(s), doc.text.index(s) + len(s))
        for s in sentences
    ]
    examples = [e for e in map(teacher.example, tasks) if e is not None]
    assert len(examples) == len(tasks)

    def kl() -> float:
        batch = collate(examples, base.tokenizer.pad_token_id or 0, {TASK: 0})
        with torch.no_grad():
            logits = adapter.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
            sums, counts = task_sums(logits, next_token_targets(batch.labels), batch.tasks, 1, batch.soft)
        return (sums / counts).item()

    before = kl()
    config = TrainConfig(
        learning_rate=1e-2, max_steps=30, plateau_patience=None, task_weights={TASK: 1.0}, warmup_steps=0
    )
    Trainer(adapter.model, adapter.parameters(), config, pad_id=0, progress=False).fit(examples)
    assert kl() < 0.2 * before


@pytest.mark.parametrize(
    "settings", [{"micro_batch_tokens": 48}, {"micro_batch_tokens": 16, "checkpoint_activations": "auto"}]
)
def test_distill_targets_train_the_same_in_micro_batches_and_slices(tiny_model_dir, settings):
    rng = random.Random(0)
    gen = torch.Generator().manual_seed(0)
    examples = []
    for i in range(8):
        ids = (0, *(rng.randrange(3, 300) for _ in range(rng.choice([10, 24]))))
        start = 4 + i % 3
        n = len(ids) - start
        soft = SoftTargets(
            torch.randint(3, 300, (n, 5), generator=gen), torch.log_softmax(torch.randn(n, 5, generator=gen), -1)
        )
        examples.append(TrainingExample(TASK if i % 2 else "segment", ids, start, soft if i % 2 else None))
    base = TrainConfig(learning_rate=1e-3, max_steps=3, batch_tokens=128, plateau_patience=None, warmup_steps=0)
    states = []
    for config in (base.model_copy(update={"micro_batch_tokens": None}), base.model_copy(update=settings)):
        _, adapter, _, _ = _setup(tiny_model_dir)
        config = config.model_copy(update={"task_weights": {TASK: 1.0, "segment": 1.0}})
        stats = Trainer(adapter.model, adapter.parameters(), config, pad_id=2, progress=False).fit(examples)
        states.append((stats.final_loss, adapter.state_dict()))
    (one, a), (split, b) = states
    assert split == pytest.approx(one, rel=1e-4)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_memorize_adds_distill_examples_only_when_the_task_weighs_something(tiny_model_dir, fast_config, tmp_path):
    weights = dict(TrainConfig().task_weights)
    counts = {}
    for weight in (0.0, 1.0):
        train = fast_config.train.model_copy(update={"task_weights": weights | {TASK: weight}})
        config = fast_config.model_copy(update={"train": train, "retrieval": RetrievalConfig(enabled=False)})
        memory = LiftMemory(config, root=tmp_path / str(weight), model=str(tiny_model_dir), progress=False)
        record = memory.memorize(TEXT, doc_id="doc", train=True)
        counts[weight] = record.train.examples_by_task.get(TASK, 0)
        memory.close()
    assert counts[0.0] == 0 and counts[1.0] > 0
