"""SGAN training: one loop, one step function that reads like the algorithm.

Each iteration makes three Adam updates, as in the reference SGAN:
  1. supervised:   the discriminator's softmax head learns the labeled batch (cross-entropy);
  2. unsupervised: its real/fake head D(x) learns real unlabeled images as real, generated ones as fake;
  3. generator:    the generator learns to make D call its images real (non-saturating loss).
"""

import json
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from sgan import atomic, data, distributed
from sgan.config import TrainConfig
from sgan.evaluate import accuracy
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


def build(config: TrainConfig, image_shape: tuple, num_classes: int) -> SGAN:
    keras.utils.set_random_seed(config.seed)
    generator = build_generator(config.z_dim, image_shape)
    discriminator = build_discriminator(image_shape, num_classes, config.seed)
    sgan = SGAN(generator, discriminator, *(keras.optimizers.Adam(config.learning_rate, config.beta_1) for _ in range(3)))
    sgan.supervised_optimizer.build(discriminator.trainable_variables)
    sgan.unsupervised_optimizer.build(discriminator.trainable_variables)
    sgan.generator_optimizer.build(generator.trainable_variables)
    return sgan


def make_train_step(sgan: SGAN, config: TrainConfig, dist: distributed.Distribution):
    generator, discriminator = sgan.generator, sgan.discriminator
    z_shape = (config.batch_size, config.z_dim)

    def descend(optimizer, tape, loss, model):
        gradients = dist.average(tape.gradient(loss, model.trainable_variables))
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))

    @tf.function
    def train_step(labeled_x, labeled_y, unlabeled_x, step):
        # Noise is a pure function of (seed, rank, step), so a resumed run draws the same z.
        key = tf.random.experimental.stateless_fold_in(tf.constant([config.seed, dist.rank], tf.int64), step)
        z_discriminator = tf.random.stateless_normal(z_shape, tf.random.experimental.stateless_fold_in(key, 0))
        z_generator = tf.random.stateless_normal(z_shape, tf.random.experimental.stateless_fold_in(key, 1))

        with tf.GradientTape() as tape:
            l_supervised = supervised_loss(labeled_y, discriminator(labeled_x, training=True))
        descend(sgan.supervised_optimizer, tape, l_supervised, discriminator)

        fake_x = generator(z_discriminator, training=True)
        with tf.GradientTape() as tape:
            l_unsupervised = unsupervised_loss(
                discriminator(unlabeled_x, training=True), discriminator(fake_x, training=True)
            )
        descend(sgan.unsupervised_optimizer, tape, l_unsupervised, discriminator)

        with tf.GradientTape() as tape:
            l_generator = generator_loss(discriminator(generator(z_generator, training=True), training=True))
        descend(sgan.generator_optimizer, tape, l_generator, generator)

        return {"supervised": l_supervised, "unsupervised": l_unsupervised, "generator": l_generator}

    return train_step


def train(config: TrainConfig, dataset: data.Dataset, labeled: np.ndarray, run_dir, dist=None) -> SGAN:
    """Trains, resuming from the latest checkpoint in `run_dir` if there is one; rank 0 writes the outputs."""
    dist = dist or distributed.Distribution()
    run_dir = Path(run_dir)
    sgan = build(config, dataset.image_shape, dataset.num_classes)
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
    dist.broadcast([step] + sgan.variables())
    start = int(step.numpy())

    history = _load_history(run_dir, start)
    labeled_batches = iter(
        data.batches(dataset.x_train[labeled], dataset.y_train[labeled], config.batch_size, config.seed, LABELED_STREAM, start)
    )
    unlabeled_batches = iter(
        data.batches(dataset.x_train, None, config.batch_size, config.seed, UNLABELED_STREAM, start, dist.rank, dist.size)
    )
    train_step = make_train_step(sgan, config, dist)
    writer = tf.summary.create_file_writer(str(run_dir / "tensorboard")) if dist.is_chief else None
    if dist.is_chief:
        atomic.write_json(run_dir / "config.json", {**config.to_dict(), "workers": dist.size})

    progress = tqdm(total=config.iterations, initial=start, desc="train", unit="it", disable=not dist.is_chief)
    for t in range(start, config.iterations):
        labeled_x, labeled_y = next(labeled_batches)
        unlabeled_x, _ = next(unlabeled_batches)
        losses = train_step(labeled_x, labeled_y, unlabeled_x, tf.constant(t, tf.int64))
        step.assign(t + 1)
        done = t + 1
        if done % config.log_every == 0 or done == config.iterations:
            record = {"step": done, **{k: float(v) for k, v in losses.items()}}
            if done % config.eval_every == 0 or done == config.iterations:
                record["test_accuracy"] = accuracy(sgan.discriminator, dataset.x_test, dataset.y_test)
            history.append(record)
            progress.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k != "step"})
            if writer:
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


def _load_history(run_dir: Path, start: int) -> list:
    """The logged records up to the resumed step (later ones belong to the interrupted attempt)."""
    path = run_dir / "history.json"
    if not path.exists():
        return []
    return [r for r in json.loads(path.read_text()) if r["step"] <= start]


if __name__ == "__main__":  # `horovodrun -np N python -m sgan.train --run-dir ...` starts each worker here
    import sys

    from sgan.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
