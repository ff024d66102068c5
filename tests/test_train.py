import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from sgan import data
from sgan.config import TrainConfig, preset
from sgan.distributed.horovod import Distribution
from sgan.errors import UserError
from sgan.training.train import build, make_train_step, train

TINY = TrainConfig(iterations=6, batch_size=8, z_dim=16, log_every=1, eval_every=3, checkpoint_every=100)
# The improved preset's algorithm and model at a tiny size: feature matching, MLP, noise, EMA, balanced batches.
# No decay: the resume test stops early by shortening `iterations`, which would move the decay's start.
TINY_IMPROVED = preset("improved", iterations=6, batch_size=10, z_dim=16, validation=30, log_every=1, eval_every=3,
                       checkpoint_every=100, decay_from=1.0)


@pytest.fixture
def tiny(idx_dir):
    dataset = data.load(idx_dir)
    return dataset, data.choose_labeled(dataset.y_train, 20, 10, seed=0)


@pytest.mark.parametrize("preset_name", ["seed", "improved"])
def test_a_few_steps_lower_the_supervised_loss(tiny, preset_name):
    dataset, labeled = tiny
    config = preset(preset_name, batch_size=20, z_dim=16, learning_rate=1e-3)
    sgan = build(config, dataset.image_shape, dataset.num_classes)
    step = make_train_step(sgan, config, Distribution())
    x, y = data.scale(dataset.x_train[labeled]), dataset.y_train[labeled]
    unlabeled = data.scale(dataset.x_train[:20])
    losses = [float(step(x, y, unlabeled, tf.constant(t, tf.int64))["supervised"]) for t in range(25)]
    assert np.mean(losses[-5:]) < 0.5 * losses[0], losses


def _weights(sgan):
    return [v.numpy() for v in sgan.variables()]


@pytest.mark.parametrize("config", [TINY, TINY_IMPROVED, dataclasses.replace(
    TINY_IMPROVED, pseudo_label_mask="adaptive", distribution_alignment=True), dataclasses.replace(
    TINY_IMPROVED, augment="randaugment", flip_targets=True, ema_warmup=True, unsupervised_rampup=4)],
    ids=["seed", "improved", "adaptive", "photo-levers"])
def test_resume_continues_the_step_counter_and_matches_an_uninterrupted_run(tiny, tmp_path, config):
    dataset, labeled = tiny
    uninterrupted = train(config, dataset, labeled, tmp_path / "a")

    interrupted_dir = tmp_path / "b"
    train(TrainConfig(**{**config.to_dict(), "iterations": 3}), dataset, labeled, interrupted_dir)
    assert tf.train.latest_checkpoint(interrupted_dir / "checkpoints").endswith("ckpt-3")
    resumed = train(config, dataset, labeled, interrupted_dir)

    assert tf.train.latest_checkpoint(interrupted_dir / "checkpoints").endswith("ckpt-6")
    assert int(resumed.optimizers["generator"].iterations.numpy()) == 6
    history = json.loads((interrupted_dir / "history.json").read_text())
    assert [r["step"] for r in history] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in history if "validation_accuracy" in r] == ([3, 6] if config.validation else [])
    if config.pseudo_label_weight:  # what the unlabeled images' pseudo-labels teach, at every step and evaluation
        assert all(0 <= r["pseudo_label_rate"] <= 1 and 0 < r["pseudo_label_confidence"] <= 1 for r in history)
        assert [r["step"] for r in history if "validation_pseudo_label_rate" in r] == [3, 6]
    assert all(r["seconds"] >= 0 for r in history) and history[-1]["seconds"] >= history[0]["seconds"]
    for a, b in zip(_weights(uninterrupted), _weights(resumed)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_time_budget_sets_the_count_once_and_makes_the_run_that_count_would(tiny, tmp_path, monkeypatch):
    from sgan.training import budget

    monkeypatch.setattr(budget, "SKIP", 10)  # a shorter timing than a real run's, for a budget of seconds
    monkeypatch.setattr(budget, "WINDOW", 40)
    dataset, labeled = tiny
    config = TrainConfig(**{**TINY_IMPROVED.to_dict(), "iterations": 100_000, "decay_from": 0.5, "time_budget": 8.0,
                            "log_every": 10, "eval_every": 50, "checkpoint_every": 100_000})
    budgeted = train(config, dataset, labeled, tmp_path / "a")
    count = json.loads((tmp_path / "a" / "config.json").read_text())["iterations"]
    history = json.loads((tmp_path / "a" / "history.json").read_text())
    assert 100 <= count < 100_000 and count % 50 == 0  # at least twice the 50 timed: the decay starts after them
    assert history[-1]["step"] == count and history[-1]["seconds"] < 2 * config.time_budget

    # The count is the run's: asked again with a higher bound, the finished run stays as it is.
    train(TrainConfig(**{**config.to_dict(), "iterations": 200_000}), dataset, labeled, tmp_path / "a")
    assert json.loads((tmp_path / "a" / "config.json").read_text())["iterations"] == count
    assert json.loads((tmp_path / "a" / "history.json").read_text()) == history

    fixed = train(TrainConfig(**{**config.to_dict(), "iterations": count, "time_budget": 0.0}), dataset, labeled,
                  tmp_path / "b")
    for a, b in zip(_weights(budgeted), _weights(fixed)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_warm_start_begins_from_the_saved_generator_and_averaged_discriminator(tiny, tmp_path):
    dataset, labeled = tiny
    first = train(TINY_IMPROVED, dataset, labeled, tmp_path / "a")
    still = TrainConfig(**{**TINY_IMPROVED.to_dict(), "iterations": 1, "learning_rate": 1e-12,
                           "warm_start": str(tmp_path / "a")})
    warmed = train(still, dataset, labeled, tmp_path / "b")
    scratch = train(TrainConfig(**{**still.to_dict(), "warm_start": ""}), dataset, labeled, tmp_path / "c")
    for saved, model, other in ((first.generator, warmed.generator, scratch.generator),
                                (first.classifier, warmed.discriminator, scratch.discriminator)):
        for a, b in zip(saved.trainable_weights, model.trainable_weights):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
        assert any(not np.allclose(a.numpy(), c.numpy()) for a, c in zip(saved.trainable_weights,
                                                                        other.trainable_weights))

def test_without_the_gan_term_the_generator_is_untouched_and_the_classifier_still_learns(tiny):
    """The ablation that measures what the GAN adds (benchmarks/accuracy.py --set gan=false)."""
    dataset, labeled = tiny
    config = preset("improved", batch_size=20, z_dim=16, learning_rate=1e-3, gan=False)
    sgan = build(config, dataset.image_shape, dataset.num_classes)
    generator = [w.copy() for w in sgan.generator.get_weights()]
    step = make_train_step(sgan, config, Distribution())
    x, y = data.scale(dataset.x_train[labeled]), dataset.y_train[labeled]
    unlabeled = data.scale(dataset.x_train[:20])
    losses = [step(x, y, unlabeled, tf.constant(t, tf.int64)) for t in range(25)]
    assert np.mean([float(r["supervised"]) for r in losses[-5:]]) < 0.5 * float(losses[0]["supervised"])
    assert all(float(r["unsupervised"]) == float(r["generator"]) == 0 for r in losses)
    for before, after in zip(generator, sgan.generator.get_weights()):
        np.testing.assert_array_equal(before, after)
    with pytest.raises(UserError, match="gan=False needs algorithm='feature_matching'"):
        preset("seed", gan=False)


def test_a_ramped_real_fake_term_is_silent_at_the_first_step_and_the_averaged_d_warms_up(tiny):
    """unsupervised_rampup: at step 0 the discriminator learns as if the real/fake term were off; ema_warmup: the
    first average keeps a tenth of the initial weights (decay (1 + 0) / (10 + 0)), not 99.9%."""
    dataset, labeled = tiny
    x, y = data.scale(dataset.x_train[labeled]), dataset.y_train[labeled]
    unlabeled = data.scale(dataset.x_train[:20])
    base = dict(batch_size=20, z_dim=16, learning_rate=1e-3)
    ramped, off = (build(c, dataset.image_shape, dataset.num_classes) for c in (
        preset("improved", unsupervised_rampup=10, ema_warmup=True, **base),
        preset("improved", unsupervised_weight=0.0, **base)))
    initial = [w.copy() for w in ramped.discriminator.get_weights()]
    for sgan, config in ((ramped, preset("improved", unsupervised_rampup=10, ema_warmup=True, **base)),
                         (off, preset("improved", unsupervised_weight=0.0, **base))):
        make_train_step(sgan, config, Distribution())(x, y, unlabeled, tf.constant(0, tf.int64))
    for a, b in zip(ramped.discriminator.get_weights(), off.discriminator.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    moved = 0
    for start, now, average, variable in zip(initial, ramped.discriminator.get_weights(),
                                             ramped.averaged_discriminator.get_weights(), ramped.discriminator.weights):
        if "float" in variable.dtype and not np.allclose(start, now):
            np.testing.assert_allclose(average, 0.1 * start + 0.9 * now, rtol=1e-4, atol=1e-6)
            moved += 1
    assert moved > 3

    step = make_train_step(ramped, preset("improved", unsupervised_rampup=10, ema_warmup=True, **base), Distribution())
    weights = ramped.discriminator.get_weights()
    step(x, y, unlabeled, tf.constant(5, tf.int64))  # half way up the ramp: the term moves D differently
    make_train_step(off, preset("improved", unsupervised_weight=0.0, **base), Distribution())(
        x, y, unlabeled, tf.constant(5, tf.int64))
    assert any(not np.allclose(a, b, atol=1e-6) for a, b in zip(ramped.discriminator.get_weights(),
                                                               off.discriminator.get_weights()))
    assert any(not np.allclose(a, b) for a, b in zip(weights, ramped.discriminator.get_weights()))


def test_flipped_targets_average_the_probabilities_of_an_image_and_its_mirror():
    from sgan.training.train import mirrored_mean

    a, b = tf.constant([[2.0, 0.0, -1.0]]), tf.constant([[0.0, 1.0, 0.0]])
    np.testing.assert_allclose(tf.nn.softmax(mirrored_mean(a, b)).numpy(),
                               (tf.nn.softmax(a).numpy() + tf.nn.softmax(b).numpy()) / 2, rtol=1e-6)


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
    with pytest.raises(UserError, match="architecture='resnet' must be one of conv, mlp, wn-conv"):
        preset("improved", architecture="resnet")
    with pytest.raises(UserError, match="ema_decay=1.0 must be in"):
        preset("improved", ema_decay=1.0)
    with pytest.raises(UserError, match="time_budget and unsupervised_weight must be >= 0"):
        preset("improved", unsupervised_weight=-0.5)
    with pytest.raises(UserError, match="pseudo_label_weight needs algorithm='feature_matching'"):
        preset("seed", pseudo_label_weight=1.0)
    with pytest.raises(UserError, match="pseudo_label_threshold=0.0 must be in"):
        preset("improved", pseudo_label_threshold=0.0)


def test_improved_preset_averages_the_discriminator_it_exports(tiny, tmp_path):
    dataset, labeled = tiny
    sgan = train(TINY_IMPROVED, dataset, labeled, tmp_path)
    assert sgan.classifier is sgan.averaged_discriminator
    averaged = [v.numpy() for v in sgan.averaged_discriminator.trainable_variables]
    raw = [v.numpy() for v in sgan.discriminator.trainable_variables]
    assert any(not np.allclose(a, r) for a, r in zip(averaged, raw))
    import keras

    saved = keras.models.load_model(tmp_path / "discriminator.keras")
    for a, s in zip(averaged, [v.numpy() for v in saved.trainable_variables]):
        np.testing.assert_array_equal(a, s)


@pytest.mark.parametrize("preset_name, precision", [("seed", "bf16"), ("seed", "fp16"), ("improved", "fp16")])
def test_mixed_precision_trains_with_float32_logits_and_weights(tiny, preset_name, precision):
    """fp16 is what `auto` picks on a GPU, for the default preset too. Few small steps: CPUs without bf16/fp16
    units emulate them slowly."""
    dataset, labeled = tiny
    config = (TrainConfig(batch_size=10, z_dim=16, precision=precision) if preset_name == "seed"
              else dataclasses.replace(TINY_IMPROVED, precision=precision))
    sgan = build(config, dataset.image_shape, dataset.num_classes)
    step = make_train_step(sgan, config, Distribution())
    x, y = data.scale(dataset.x_train[labeled[::2]]), dataset.y_train[labeled[::2]]
    losses = [float(step(x, y, data.scale(dataset.x_train[:10]), tf.constant(t, tf.int64))["supervised"])
              for t in range(10)]
    assert np.all(np.isfinite(losses)) and np.mean(losses[-3:]) < 0.7 * losses[0], losses
    assert sgan.discriminator(x).dtype == tf.float32
    assert {v.dtype for v in sgan.discriminator.trainable_variables} == {"float32"}


def test_learning_rate_warms_up_to_the_worker_count_and_decays_to_zero():
    from sgan.training.train import LearningRate

    schedule = LearningRate(base=1e-3, factor=4, warmup=100, decay_from=1000, total=2000)
    rates = [float(schedule(step)) for step in (0, 50, 100, 1000, 1500, 2000)]
    np.testing.assert_allclose(rates, [1e-3, 2.5e-3, 4e-3, 4e-3, 2e-3, 0.0], rtol=1e-6, atol=1e-12)
    sgan = build(TrainConfig(scale_lr=True, warmup_iterations=100, z_dim=16), (28, 28, 1), 10, workers=4)
    optimizer = sgan.optimizers["supervised"]
    assert float(optimizer.learning_rate) == pytest.approx(1e-3)
    optimizer.iterations.assign(100)
    assert float(optimizer.learning_rate) == pytest.approx(4e-3)


def test_time_to_accuracy_is_the_first_evaluation_at_each_milestone():
    from sgan.evaluation.evaluate import time_to_accuracy

    history = [{"step": 1, "seconds": 5.0}, {"step": 2, "seconds": 10.0, "validation_accuracy": 0.951},
               {"step": 3, "seconds": 20.0, "validation_accuracy": 0.94},
               {"step": 4, "seconds": 30.0, "validation_accuracy": 0.98}]
    assert time_to_accuracy(history) == {"95": 10.0, "97": 30.0, "98": 30.0, "99": None}
    assert time_to_accuracy([]) == {"95": None, "97": None, "98": None, "99": None}


def test_the_baseline_trains_as_many_steps_as_the_sgan_up_to_its_cap(tiny, monkeypatch, capsys):
    from sgan.evaluation import baseline

    dataset, labeled = tiny
    monkeypatch.setattr(baseline, "STEPS", 4)
    for iterations, steps in ((3, 3), (9, 4)):
        baseline.train_baseline(TrainConfig(iterations=iterations, batch_size=8, z_dim=16), dataset, labeled)
        assert f"| {steps}/{steps} [" in capsys.readouterr().err  # the progress bar's count

