import json

import numpy as np
import pytest
import tensorflow as tf

from sgan import data
from sgan.config import TrainConfig, preset
from sgan.distributed import Distribution
from sgan.errors import UserError
from sgan.train import build, make_train_step, train

TINY = TrainConfig(iterations=6, batch_size=8, z_dim=16, log_every=1, eval_every=3, checkpoint_every=100)


@pytest.fixture
def tiny(idx_dir):
    dataset = data.load(idx_dir)
    return dataset, data.choose_labeled(dataset.y_train, 20, 10, seed=0)


def test_a_few_steps_lower_the_supervised_loss(tiny):
    dataset, labeled = tiny
    config = TrainConfig(batch_size=20, z_dim=16)
    sgan = build(config, dataset.image_shape, dataset.num_classes)
    step = make_train_step(sgan, config, Distribution())
    x, y = data.scale(dataset.x_train[labeled]), dataset.y_train[labeled]
    unlabeled = data.scale(dataset.x_train[:20])
    losses = [float(step(x, y, unlabeled, tf.constant(t, tf.int64))["supervised"]) for t in range(25)]
    assert np.mean(losses[-5:]) < 0.5 * losses[0], losses


def _weights(sgan):
    return [v.numpy() for v in sgan.variables()]


def test_resume_continues_the_step_counter_and_matches_an_uninterrupted_run(tiny, tmp_path):
    dataset, labeled = tiny
    uninterrupted = train(TINY, dataset, labeled, tmp_path / "a")

    interrupted_dir = tmp_path / "b"
    train(TrainConfig(**{**TINY.to_dict(), "iterations": 3}), dataset, labeled, interrupted_dir)
    assert tf.train.latest_checkpoint(interrupted_dir / "checkpoints").endswith("ckpt-3")
    resumed = train(TINY, dataset, labeled, interrupted_dir)

    assert tf.train.latest_checkpoint(interrupted_dir / "checkpoints").endswith("ckpt-6")
    assert int(resumed.supervised_optimizer.iterations.numpy()) == 6
    history = json.loads((interrupted_dir / "history.json").read_text())
    assert [r["step"] for r in history] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(_weights(uninterrupted), _weights(resumed)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_same_seed_same_weights_other_seed_other_weights(tiny, tmp_path):
    dataset, labeled = tiny
    config = TrainConfig(**{**TINY.to_dict(), "iterations": 2})
    first = _weights(train(config, dataset, labeled, tmp_path / "1"))
    again = _weights(train(config, dataset, labeled, tmp_path / "2"))
    other = _weights(train(TrainConfig(**{**config.to_dict(), "seed": 1}), dataset, labeled, tmp_path / "3"))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.allclose(a, c) for a, c in zip(first, other))


def test_impossible_configs_are_user_errors():
    with pytest.raises(UserError, match="batch_size=0 must be positive"):
        TrainConfig(batch_size=0)
    with pytest.raises(UserError, match="unknown preset 'fast'"):
        preset("fast")
    assert preset("seed", iterations=10, batch_size=None).iterations == 10


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_with_float32_logits_and_weights(tiny, precision):
    # Few small steps: CPUs without bf16/fp16 units emulate them slowly.
    dataset, labeled = tiny
    config = TrainConfig(batch_size=10, z_dim=16, precision=precision)
    sgan = build(config, dataset.image_shape, dataset.num_classes)
    step = make_train_step(sgan, config, Distribution())
    x, y = data.scale(dataset.x_train[labeled[::2]]), dataset.y_train[labeled[::2]]
    losses = [float(step(x, y, data.scale(dataset.x_train[:10]), tf.constant(t, tf.int64))["supervised"])
              for t in range(10)]
    assert np.all(np.isfinite(losses)) and np.mean(losses[-3:]) < 0.7 * losses[0], losses
    assert sgan.discriminator(x).dtype == tf.float32
    assert {v.dtype for v in sgan.discriminator.trainable_variables} == {"float32"}


def test_learning_rate_scaling_warms_up_to_the_worker_count():
    from sgan.train import WarmupToScaled

    schedule = WarmupToScaled(base=1e-3, factor=4, warmup=100)
    rates = [float(schedule(step)) for step in (0, 50, 100, 1000)]
    np.testing.assert_allclose(rates, [1e-3, 2.5e-3, 4e-3, 4e-3], rtol=1e-6)
    sgan = build(TrainConfig(scale_lr=True, warmup_iterations=100, z_dim=16), (28, 28, 1), 10, workers=4)
    optimizer = sgan.supervised_optimizer
    assert float(optimizer.learning_rate) == pytest.approx(1e-3)
    optimizer.iterations.assign(100)
    assert float(optimizer.learning_rate) == pytest.approx(4e-3)
