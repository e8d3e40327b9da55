from __future__ import annotations

import math
import random

import pytest
import torch

from lift_memory.adapters import attach
from lift_memory.config import LoraAdapterConfig, TrainConfig
from lift_memory.errors import ConfigError
from lift_memory.models import load_model
from lift_memory.train.collate import IGNORE, collate, plan_batches
from lift_memory.train.loop import Trainer
from lift_memory.train.losses import task_losses
from lift_memory.types import TrainingExample


def _examples(n=24):
    rng = random.Random(0)
    out = []
    for i in range(n):
        length = rng.choice([6, 9, 30, 40])
        ids = tuple(rng.randrange(3, 300) for _ in range(length))
        out.append(TrainingExample("segment" if length > 20 else "window", (0, *ids), loss_start=1 + i % 3))
    return out


def _fresh(model_dir, seed=0):
    base = load_model(str(model_dir))
    return base, attach(base.model, LoraAdapterConfig(r=4, train_embeddings=True), seed=seed)


def test_plan_batches_respects_the_token_budget_and_uses_every_example_once():
    lengths = [random.Random(i).randrange(1, 50) for i in range(200)]
    batches = plan_batches(lengths, 120, random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(200))
    for b in batches:
        assert len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 120


def test_collate_pads_and_masks_labels():
    exs = [TrainingExample("a", (0, 5, 6, 7), loss_start=2), TrainingExample("b", (0, 8), loss_start=0)]
    batch = collate(exs, pad_id=2, task_index={"a": 0, "b": 1})
    assert batch.input_ids.tolist() == [[0, 5, 6, 7], [0, 8, 2, 2]]
    assert batch.labels.tolist() == [[IGNORE, IGNORE, 6, 7], [IGNORE, 8, IGNORE, IGNORE]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch.tasks.tolist() == [0, 1] and batch.n_tokens == 6
    same_length = collate(exs[:1], pad_id=2, task_index={"a": 0})
    assert same_length.attention_mask is None  # no padding: the fast causal attention path


def test_task_loss_is_the_weighted_mean_of_per_task_means():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11)
    labels = torch.randint(0, 11, (3, 5))
    labels[2, 3:] = IGNORE
    tasks = torch.tensor([0, 0, 1])
    loss, means, counts = task_losses(logits, labels, tasks, torch.tensor([1.0, 3.0]))
    token = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), reduction="none"
    )
    token = token.view(3, 4)
    mean0 = token[:2].mean()
    mean1 = token[2, :2].mean()  # row 2 keeps targets at positions 1 and 2
    assert counts.tolist() == [8, 2]
    torch.testing.assert_close(means, torch.stack([mean0, mean1]))
    torch.testing.assert_close(loss, (mean0 + 3 * mean1) / 4)


def test_training_is_deterministic_for_a_seed(tiny_model_dir):
    config = TrainConfig(learning_rate=1e-3, max_steps=4, batch_tokens=128, plateau_patience=None, seed=3)
    states = []
    for _ in range(2):
        _, adapter = _fresh(tiny_model_dir)
        Trainer(adapter.model, adapter.parameters(), config, pad_id=2, progress=False).fit(_examples())
        states.append(adapter.state_dict())
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert any(not torch.equal(states[0][k], adapter._initial[k]) for k in states[0])  # it did train


def test_only_adapter_parameters_change(tiny_model_dir):
    base, adapter = _fresh(tiny_model_dir)
    before = {
        k: v.clone() for k, v in base.model.state_dict().items() if "lora" not in k and "modules_to_save" not in k
    }
    Trainer(
        adapter.model,
        adapter.parameters(),
        TrainConfig(learning_rate=1e-3, max_steps=3, batch_tokens=128),
        pad_id=2,
        progress=False,
    ).fit(_examples())
    after = base.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(
    ("budget", "reason"),
    [({"max_steps": 2}, "max_steps"), ({"max_steps": None, "max_tokens": 50}, "max_tokens")],
)
def test_budgets_stop_training(tiny_model_dir, budget, reason):
    _, adapter = _fresh(tiny_model_dir)
    config = TrainConfig(learning_rate=1e-3, batch_tokens=128, plateau_patience=None, **budget)
    stats = Trainer(adapter.model, adapter.parameters(), config, pad_id=2, progress=False).fit(_examples())
    assert stats.stop_reason == reason
    if reason == "max_steps":
        assert stats.steps == 2
    else:
        assert stats.tokens >= 50 and stats.steps <= 2


def test_plateau_and_callbacks_stop_training(tiny_model_dir):
    _, adapter = _fresh(tiny_model_dir)
    seen = []
    config = TrainConfig(
        learning_rate=1e-3, max_steps=50, batch_tokens=128, plateau_patience=1, plateau_delta=10.0, warmup_steps=0
    )
    stats = Trainer(adapter.model, adapter.parameters(), config, pad_id=2, progress=False).fit(_examples())
    assert stats.stop_reason == "plateau" and stats.steps < 50  # delta=10 means nothing counts as progress

    def stop_at_three(info):
        seen.append((info.step, info.loss, info.learning_rate, info.tokens_per_second))
        return info.step == 3

    config = TrainConfig(learning_rate=1e-3, max_steps=50, batch_tokens=128, plateau_patience=None)
    stats = Trainer(
        adapter.model, adapter.parameters(), config, pad_id=2, callbacks=[stop_at_three], progress=False
    ).fit(_examples())
    assert stats.stop_reason == "callback" and stats.steps == 3
    assert [s[0] for s in seen] == [1, 2, 3] and all(s[3] > 0 for s in seen)


def test_zero_weight_tasks_are_not_trained(tiny_model_dir):
    _, adapter = _fresh(tiny_model_dir)
    config = TrainConfig(
        learning_rate=1e-3, max_steps=3, batch_tokens=128, task_weights={"segment": 1.0, "window": 0.0}
    )
    stats = Trainer(adapter.model, adapter.parameters(), config, pad_id=2, progress=False).fit(_examples())
    assert set(stats.examples_by_task) == {"segment"}


def test_learning_rate_defaults_depend_on_the_model(tiny_model_dir):
    assert TrainConfig().resolved(builtin=True).learning_rate == 4e-3
    assert TrainConfig().resolved(builtin=False).learning_rate == 3e-4
    assert TrainConfig().resolved(builtin=False, params=135_000_000).learning_rate == 2e-3
    assert TrainConfig().resolved(builtin=False, params=8_000_000_000).learning_rate == 3e-4
    assert TrainConfig(learning_rate=1e-5).resolved(builtin=True).learning_rate == 1e-5
    _, adapter = _fresh(tiny_model_dir)
    with pytest.raises(ConfigError, match="learning_rate is None"):
        Trainer(adapter.model, adapter.parameters(), TrainConfig(), pad_id=2, progress=False).fit(_examples())


def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(tiny_model_dir):
    config = TrainConfig(learning_rate=1e-3, max_steps=8, batch_tokens=128, plateau_patience=None, seed=5)
    _, straight = _fresh(tiny_model_dir)
    Trainer(straight.model, straight.parameters(), config, pad_id=2, progress=False).fit(_examples())

    saved = []
    _, first = _fresh(tiny_model_dir)
    half = config.model_copy(update={"max_steps": 4})
    Trainer(first.model, first.parameters(), half, pad_id=2, progress=False).fit(
        _examples(), checkpoint_every=3, on_checkpoint=saved.append
    )
    assert [c.step for c in saved] == [3, 4]  # every 3 steps, and where it stopped
    _, resumed = _fresh(tiny_model_dir)  # a new process: fresh model, state from the checkpoint
    stats = Trainer(resumed.model, resumed.parameters(), config, pad_id=2, progress=False).fit(
        _examples(), resume=saved[-1]
    )
    assert stats.steps == 8 and stats.stop_reason == "max_steps"
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "settings",
    [
        {"micro_batch_tokens": 64, "checkpoint_activations": "never"},
        {"micro_batch_tokens": 32, "checkpoint_activations": "auto"},  # the 41-token examples alone exceed it
        {"micro_batch_tokens": 64, "checkpoint_activations": "always"},
    ],
)
def test_micro_batches_and_checkpointing_train_exactly_like_one_pass(tiny_model_dir, settings):
    # Same loss and the same update, up to float rounding: gradient accumulation scales each micro-batch by
    # the whole mini-batch's token counts, checkpointing only recomputes, sliced logits only split the loss.
    base = TrainConfig(learning_rate=1e-3, max_steps=3, batch_tokens=256, plateau_patience=None, warmup_steps=0)
    runs = []
    for config in (base.model_copy(update={"micro_batch_tokens": None}), base.model_copy(update=settings)):
        _, adapter = _fresh(tiny_model_dir)
        stats = Trainer(adapter.model, adapter.parameters(), config, pad_id=2, progress=False).fit(_examples())
        runs.append((stats, adapter.state_dict()))
    (one, state_one), (split, state_split) = runs
    assert split.tokens == one.tokens and split.final_loss == pytest.approx(one.final_loss, rel=1e-4)
    assert all(torch.allclose(state_one[k], state_split[k], atol=1e-6) for k in state_one)
    assert any(not torch.equal(state_one[k], adapter._initial[k]) for k in state_one)


def test_an_epoch_budget_stops_after_that_many_passes(tiny_model_dir):
    examples, runs = _examples(), {}
    for epochs in (2.0, 0.5):
        config = TrainConfig(
            learning_rate=1e-3, max_steps=None, max_epochs=epochs, batch_tokens=128, plateau_patience=None
        )
        _, adapter = _fresh(tiny_model_dir)
        runs[epochs] = Trainer(adapter.model, adapter.parameters(), config, pad_id=2, progress=False).fit(examples)
    assert all(r.stop_reason == "max_epochs" for r in runs.values())
    assert sum(runs[2.0].examples_by_task.values()) == 2 * len(examples)  # every example twice
    batches = runs[2.0].steps // 2
    assert runs[0.5].steps == math.ceil(batches / 2)  # a fraction counts the epoch's batches


def test_an_epoch_budget_is_a_budget_for_the_grid_and_the_cli():
    from lift_memory.cli import build_parser
    from lift_memory.eval.niah.grid import NIAHConfig

    assert NIAHConfig(max_epochs=3).train().max_epochs == 3 and NIAHConfig().train().max_epochs is None
    assert NIAHConfig(max_epochs=3).run_id() != NIAHConfig().run_id()
    assert TrainConfig(max_steps=None, max_epochs=1).max_epochs == 1
    with pytest.raises(ValueError, match="max_epochs"):
        TrainConfig(max_steps=None)
    args = build_parser().parse_args(["memorize", "f.txt", "--max-epochs", "2.5"])
    assert args.max_epochs == 2.5
