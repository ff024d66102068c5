"""SGAN training: one loop, one step function that reads like the algorithm.

Each iteration makes three Adam updates, as in the reference SGAN:
  1. supervised:   the discriminator's softmax head learns the labeled batch (cross-entropy);
  2. unsupervised: its real/fake head D(x) learns real unlabeled images as real, generated ones as fake;
  3. generator:    the generator learns to make D call its images real (non-saturating loss).

Data parallel: every worker takes its slice of one global batch (labeled images, unlabeled images and
noise alike), and each update averages gradients across workers, so N workers with batch b make the
same update as one worker with batch N*b (up to BatchNorm's per-worker batch statistics).
"""

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from sgan import atomic, data, distributed, precision
from sgan.config import TrainConfig
from sgan.evaluate import accuracy, load_history
from sgan.losses import generator_loss, supervised_loss, unsupervised_loss
from sgan.models import build_discriminator, build_generator

LABELED_STREAM, UNLABELED_STREAM = 0, 1


@dataclass
class SGAN:
    generator: keras.Model
    discriminator: keras.Model
    supervised_optimizer: keras.optimizers.Optimizer
    unsupervised_optimizer: keras.optimizers.Optimizer
    generator_optimizer: keras.optimizers.Optimizer

    def optimizers(self):
        return [self.supervised_optimizer, self.unsupervised_optimizer, self.generator_optimizer]

    def variables(self) -> list:
        """Everything a checkpoint holds and a broadcast from rank 0 must copy."""
        optimizer_variables = [v for o in self.optimizers() for v in o.variables]
        return self.generator.variables + self.discriminator.variables + optimizer_variables

    def moving_statistics(self) -> list:
        """BatchNorm's moving means and variances: per-worker state that workers must average."""
        return [v for m in (self.generator, self.discriminator) for v in m.non_trainable_variables
                if v.dtype == "float32"]


class WarmupToScaled(keras.optimizers.schedules.LearningRateSchedule):
    """The base rate times `factor` (the worker count), reached linearly over `warmup` iterations."""

    def __init__(self, base: float, factor: float, warmup: int):
        self.base, self.factor, self.warmup = base, factor, warmup

    def __call__(self, step):
        progress = tf.minimum(tf.cast(step, tf.float32) / max(self.warmup, 1), 1.0)
        return self.base * (1.0 + (self.factor - 1.0) * progress)

    def get_config(self):
        return {"base": self.base, "factor": self.factor, "warmup": self.warmup}


def build(config: TrainConfig, image_shape: tuple, num_classes: int, workers: int = 1) -> SGAN:
    keras.utils.set_random_seed(config.seed)
    dtype = precision.policy(config.precision)
    generator = build_generator(config.z_dim, image_shape, dtype)
    discriminator = build_discriminator(image_shape, num_classes, config.seed, dtype)
    rate = WarmupToScaled(config.learning_rate, workers, config.warmup_iterations) if config.scale_lr \
        else config.learning_rate

    def adam():
        return precision.wrap_optimizer(keras.optimizers.Adam(rate, config.beta_1), config.precision)

    sgan = SGAN(generator, discriminator, adam(), adam(), adam())
    sgan.supervised_optimizer.build(discriminator.trainable_variables)
    sgan.unsupervised_optimizer.build(discriminator.trainable_variables)
    sgan.generator_optimizer.build(generator.trainable_variables)
    return sgan


def descend(optimizer, tape, loss, variables, dist: distributed.Distribution):
    """One update with gradients averaged across workers.

    Under fp16 the backward pass starts from the loss scale instead of 1 (the gradient of the scaled loss),
    and the scaled gradients are averaged, so an inf on any worker reaches all of them and every worker
    skips the same step.
    """
    upstream = None
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        upstream = optimizer.scale_loss(tf.ones_like(loss))
    gradients = dist.average(tape.gradient(loss, variables, output_gradients=upstream))
    optimizer.apply_gradients(zip(gradients, variables))


def make_train_step(sgan: SGAN, config: TrainConfig, dist: distributed.Distribution):
    generator, discriminator = sgan.generator, sgan.discriminator
    moving_statistics = sgan.moving_statistics()

    def noise(key, stream):
        """This worker's slice of the global noise batch: a pure function of (seed, step), so resumable."""
        z = tf.random.stateless_normal((config.batch_size * dist.size, config.z_dim),
                                       tf.random.experimental.stateless_fold_in(key, stream))
        return z[dist.rank * config.batch_size:(dist.rank + 1) * config.batch_size]

    @tf.function
    def train_step(labeled_x, labeled_y, unlabeled_x, step):
        key = tf.random.experimental.stateless_fold_in(tf.constant([config.seed, 0], tf.int64), step)

        with tf.GradientTape() as tape:
            l_supervised = supervised_loss(labeled_y, discriminator(labeled_x, training=True))
        descend(sgan.supervised_optimizer, tape, l_supervised, discriminator.trainable_variables, dist)

        fake_x = generator(noise(key, 0), training=True)
        with tf.GradientTape() as tape:
            l_unsupervised = unsupervised_loss(
                discriminator(unlabeled_x, training=True), discriminator(fake_x, training=True)
            )
        descend(sgan.unsupervised_optimizer, tape, l_unsupervised, discriminator.trainable_variables, dist)

        with tf.GradientTape() as tape:
            l_generator = generator_loss(discriminator(generator(noise(key, 1), training=True), training=True))
        descend(sgan.generator_optimizer, tape, l_generator, generator.trainable_variables, dist)

        if dist.size > 1:
            for variable, average in zip(moving_statistics, dist.average([v.value for v in moving_statistics])):
                variable.assign(average)
        losses = dist.average([l_supervised, l_unsupervised, l_generator])
        return dict(zip(("supervised", "unsupervised", "generator"), losses))

    return train_step


def train(config: TrainConfig, dataset: data.Dataset, labeled: np.ndarray, run_dir, dist=None) -> SGAN:
    """Trains, resuming from the latest checkpoint in `run_dir` if there is one; rank 0 writes the outputs.

    A checkpoint holds no worker count: one written by N workers resumes on M.
    """
    dist = dist or distributed.Distribution()
    run_dir = Path(run_dir)
    sgan = build(config, dataset.image_shape, dataset.num_classes, dist.size)
    step = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(
        step=step,
        generator=sgan.generator.variables,
        discriminator=sgan.discriminator.variables,
        supervised_optimizer=sgan.supervised_optimizer,
        unsupervised_optimizer=sgan.unsupervised_optimizer,
        generator_optimizer=sgan.generator_optimizer,
    )
    manager = tf.train.CheckpointManager(checkpoint, run_dir / "checkpoints", max_to_keep=3)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_consumed()
    dist.broadcast([step] + [v.value for v in sgan.variables()])
    start = int(step.numpy())

    history = [r for r in load_history(run_dir) if r["step"] <= start]  # later ones: the interrupted attempt
    stream_args = dict(batch_size=config.batch_size, seed=config.seed, start_step=start, rank=dist.rank, size=dist.size)
    labeled_batches = iter(data.batches(dataset.x_train[labeled], dataset.y_train[labeled], stream=LABELED_STREAM,
                                        **stream_args))
    unlabeled_batches = iter(data.batches(dataset.x_train, None, stream=UNLABELED_STREAM, **stream_args))
    train_step = make_train_step(sgan, config, dist)
    writer = tf.summary.create_file_writer(str(run_dir / "tensorboard")) if dist.is_chief else None
    if dist.is_chief:
        atomic.write_json(run_dir / "config.json", config.to_dict())
        print(f"{dist.size} worker(s) x batch {config.batch_size} = global batch {dist.size * config.batch_size}, "
              f"precision {precision.resolve(config.precision)}, from iteration {start}", flush=True)

    progress = tqdm(total=config.iterations, initial=start, desc="sgan train", unit="it", disable=not dist.is_chief)
    for t in range(start, config.iterations):
        labeled_x, labeled_y = next(labeled_batches)
        unlabeled_x, _ = next(unlabeled_batches)
        losses = train_step(labeled_x, labeled_y, unlabeled_x, tf.constant(t, tf.int64))
        step.assign(t + 1)
        done = t + 1
        if dist.is_chief and (done % config.log_every == 0 or done == config.iterations):
            record = {"step": done, **{k: float(v) for k, v in losses.items()}}
            if done % config.eval_every == 0 or done == config.iterations:
                record["test_accuracy"] = accuracy(sgan.discriminator, dataset.x_test, dataset.y_test)
            history.append(record)
            progress.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k != "step"})
            with writer.as_default(step=done):
                for name, value in record.items():
                    if name != "step":
                        tf.summary.scalar(name, value)
        if dist.is_chief and (done % config.checkpoint_every == 0 or done == config.iterations):
            manager.save(checkpoint_number=done)
            atomic.write_json(run_dir / "history.json", history)
        progress.update(1)
    progress.close()

    if dist.is_chief:
        for model in (sgan.generator, sgan.discriminator):
            with atomic.atomic_path(run_dir / f"{model.name}.keras") as tmp:
                model.save(tmp)
    return sgan


if __name__ == "__main__":  # `horovodrun -np N python -m sgan.train --run-dir ...` starts each worker here
    import sys

    from sgan.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
