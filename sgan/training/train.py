"""SGAN training: one loop, and step functions that read like the algorithms.

`reference` makes three Adam updates per iteration, as in the reference SGAN:
  1. supervised:   the discriminator's softmax head learns the labeled batch (cross-entropy);
  2. unsupervised: its real/fake head D(x) learns real unlabeled images as real, generated ones as fake;
  3. generator:    the generator learns to make D call its images real (non-saturating loss).
`feature_matching` (Salimans et al. 2016) makes two, from a forward pass over labeled and real images and one
over generated images:
  1. discriminator: supervised + unsupervised loss (+ pseudo-labels: its confident classes of unlabeled images
                    taught to shifted copies, when `pseudo_label_weight` > 0);
  2. generator:     match the batch mean of D's last hidden features on real and on generated images.

Data parallel: every worker takes its slice of one global batch (labeled images, unlabeled images, noise
and shifts alike), and each update averages gradients across workers, so N workers with batch b make the
same update as one worker with batch N*b (up to BatchNorm's per-worker batch statistics).
"""

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from sgan import atomic, data
from sgan.config import TrainConfig, for_images
from sgan.data import augment
from sgan.data.dataset import Dataset
from sgan.distributed import horovod as distributed
from sgan.errors import UserError, writing
from sgan.evaluation.evaluate import accuracy, load_history, pseudo_label_quality
from sgan.models import precision
from sgan.models.losses import (feature_matching_loss, generator_loss, pseudo_label_loss, supervised_loss,
                                unsupervised_loss)
from sgan.models.networks import build_discriminator, build_generator, initialize_from_data, with_features
from sgan.models.pseudo_labels import Teacher
from sgan.training import warm
from sgan.training.budget import Budget

LABELED_STREAM, UNLABELED_STREAM = 0, 1
# Recorded in history.json and TensorBoard, left off the progress bar's line: the pseudo-labels' quality on the
# validation split (sgan.evaluation.evaluate.pseudo_label_quality).
NOT_IN_PROGRESS = ("step", "seconds", "validation_pseudo_label_rate", "validation_pseudo_label_accuracy",
                   "validation_left_out_accuracy")
INIT_SIZE = 500  # unlabeled images for the data-dependent initialisation of weight-normalised layers


@dataclass
class SGAN:
    generator: keras.Model
    discriminator: keras.Model
    optimizers: dict  # name -> keras optimizer, one per update of the algorithm
    averaged_discriminator: keras.Model | None = None  # exponential moving average of the discriminator
    teacher: Teacher | None = None  # which unlabeled images teach, and how much (with pseudo-labels)

    @property
    def classifier(self) -> keras.Model:
        """What is evaluated and exported: the averaged discriminator when there is one."""
        return self.averaged_discriminator or self.discriminator

    def models(self) -> dict:
        named = {"generator": self.generator, "discriminator": self.discriminator,
                 "averaged_discriminator": self.averaged_discriminator}
        return {name: model for name, model in named.items() if model is not None}

    def variables(self) -> list:
        """Everything a checkpoint holds and a broadcast from rank 0 must copy."""
        optimizer_variables = [v for o in self.optimizers.values() for v in o.variables]
        return [v for m in self.models().values() for v in m.variables] + optimizer_variables + self.teacher_state()

    def teacher_state(self) -> list:
        """The teacher's running statistics where they change what it teaches (a fixed threshold needs none)."""
        return self.teacher.variables if self.teacher and self.teacher.stateful else []

    def moving_statistics(self) -> list:
        """BatchNorm's moving means and variances, and the teacher's running statistics: per-worker state that
        workers must average."""
        return [v for m in (self.generator, self.discriminator) for v in m.non_trainable_variables
                if v.dtype == "float32"] + self.teacher_state()


class LearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """The base rate times `factor` (the worker count), reached linearly over `warmup` iterations,
    then decaying linearly to 0 from iteration `decay_from` to `total`."""

    def __init__(self, base: float, factor: float, warmup: int, decay_from: int, total: int):
        self.base, self.factor, self.warmup, self.decay_from, self.total = base, factor, warmup, decay_from, total

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = tf.minimum(step / max(self.warmup, 1), 1.0)
        decay = tf.clip_by_value((self.total - step) / max(self.total - self.decay_from, 1), 0.0, 1.0)
        return self.base * (1.0 + (self.factor - 1.0) * warmup) * decay

    def get_config(self):
        return {"base": self.base, "factor": self.factor, "warmup": self.warmup, "decay_from": self.decay_from,
                "total": self.total}


def learning_rate(config: TrainConfig, workers: int = 1) -> LearningRate:
    return LearningRate(config.learning_rate, workers if config.scale_lr else 1, config.warmup_iterations,
                        int(config.decay_from * config.iterations), config.iterations)


def set_length(sgan: SGAN, config: TrainConfig, iterations: int, workers: int):
    """Schedules the learning rate for a run of `iterations` (a time budget sets the count after the first ones).
    The schedule's numbers are constants in a traced train step: trace it again after this."""
    rate = learning_rate(replace(config, iterations=iterations), workers)
    for optimizer in sgan.optimizers.values():
        optimizer.learning_rate = rate


def build_discriminator_for(config: TrainConfig, image_shape: tuple, num_classes: int, dtype=None) -> keras.Model:
    config = for_images(config, image_shape)
    return build_discriminator(image_shape, num_classes, config.seed, dtype, config.architecture,
                               config.input_noise, config.hidden_noise, train_hidden_scales=not config.data_init)


def build(config: TrainConfig, image_shape: tuple, num_classes: int, workers: int = 1, init_images=None) -> SGAN:
    """`init_images` (scaled real images), when given, initialise the discriminator's weight-normalised layers."""
    config = for_images(config, image_shape)  # both networks from the same concrete architecture
    if image_shape[0] % 4 or image_shape[1] % 4:
        raise UserError(f"images are {image_shape[0]}x{image_shape[1]}: both sides must be divisible by 4 (the "
                        "generator upsamples twice); `sgan prepare --image-size` resizes image folders")
    keras.utils.set_random_seed(config.seed)
    dtype = precision.policy(config.precision)
    generator = build_generator(config.z_dim, image_shape, dtype, config.architecture)
    discriminator = build_discriminator_for(config, image_shape, num_classes, dtype)
    if init_images is not None:
        initialize_from_data(discriminator, init_images)
    rate = learning_rate(config, workers)
    names = ("supervised", "unsupervised", "generator") if config.algorithm == "reference" \
        else ("discriminator", "generator")
    optimizers = {
        name: precision.wrap_optimizer(keras.optimizers.Adam(rate, config.beta_1), config.precision) for name in names
    }
    for name, optimizer in optimizers.items():
        optimizer.build((generator if name == "generator" else discriminator).trainable_variables)
    averaged = None
    if config.ema_decay:
        averaged = keras.models.clone_model(discriminator)
        averaged.set_weights(discriminator.get_weights())
    teacher = None
    if config.pseudo_label_weight:
        teacher = Teacher(num_classes, config.pseudo_label_mask, config.pseudo_label_threshold,
                          config.distribution_alignment)
    return SGAN(generator, discriminator, optimizers, averaged, teacher)


def descend(dist: distributed.Distribution, updates: list, also: list = ()) -> list:
    """Applies each update (optimizer, tape, loss, variables) with gradients averaged across workers, in one
    allreduce round with the tensors `also`, which it returns averaged: a round costs the same for a few tensors as
    for many (docs/benchmarks.md, "Where a step's time goes").

    Under fp16 the backward pass starts from the loss scale instead of 1 (the gradient of the scaled loss),
    and the scaled gradients are averaged, so an inf on any worker reaches all of them and every worker
    skips the same step.
    """
    gradients = []
    for optimizer, tape, loss, variables in updates:
        upstream = None
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            upstream = optimizer.scale_loss(tf.ones_like(loss))
        gradients.append(tape.gradient(loss, variables, output_gradients=upstream))
    averaged = dist.average([g for group in gradients for g in group] + list(also))
    for optimizer, _, _, variables in updates:
        optimizer.apply_gradients(zip(averaged[:len(variables)], variables))
        averaged = averaged[len(variables):]
    return averaged


def make_train_step(sgan: SGAN, config: TrainConfig, dist: distributed.Distribution):
    generator, discriminator = sgan.generator, sgan.discriminator
    config = for_images(config, tuple(discriminator.input_shape[1:]))
    moving_statistics = sgan.moving_statistics()
    optimizers = sgan.optimizers

    def local(global_batch):
        """This worker's slice of a batch drawn for all workers."""
        return global_batch[dist.rank * config.batch_size:(dist.rank + 1) * config.batch_size]

    def noise(key, stream):
        """This worker's slice of the global noise batch: a pure function of (seed, step), so resumable."""
        return local(tf.random.stateless_normal((config.batch_size * dist.size, config.z_dim),
                                                tf.random.experimental.stateless_fold_in(key, stream)))

    def worker_state(losses):
        """What each worker holds on its own and all must agree on: BatchNorm's moving statistics (after this
        step's forward passes), and the losses (and signals) to report."""
        return [v.value for v in moving_statistics] + list(losses.values()) if dist.size > 1 else []

    def reference_updates(labeled_x, labeled_y, unlabeled_x, key, step):
        with tf.GradientTape() as tape:
            l_supervised = supervised_loss(labeled_y, discriminator(labeled_x, training=True))
        descend(dist, [(optimizers["supervised"], tape, l_supervised, discriminator.trainable_variables)])

        fake_x = generator(noise(key, 0), training=True)
        with tf.GradientTape() as tape:
            l_unsupervised = unsupervised_loss(
                discriminator(unlabeled_x, training=True), discriminator(fake_x, training=True)
            )
        descend(dist, [(optimizers["unsupervised"], tape, l_unsupervised, discriminator.trainable_variables)])

        with tf.GradientTape() as tape:
            l_generator = generator_loss(discriminator(generator(noise(key, 1), training=True), training=True))
        losses = {"supervised": l_supervised, "unsupervised": l_unsupervised, "generator": l_generator}
        return descend(dist, [(optimizers["generator"], tape, l_generator, generator.trainable_variables)],
                       worker_state(losses)), losses

    def view(images, key, stream, strong=""):
        """This worker's slice of a photo augmentation drawn for the global batch (sgan.augment)."""
        choices = augment.draw(config.batch_size * dist.size, tuple(images.shape[1:3]), config.max_shift, strong,
                               tf.random.experimental.stateless_fold_in(key, stream))
        return augment.view(images, {name: local(choice) for name, choice in choices.items()})

    def student(unlabeled_x, key):
        """The view of the unlabeled images that learns the confident predictions on `unlabeled_x`."""
        if config.augment in augment.STRONG:
            return view(unlabeled_x, key, 5, augment.STRONG[config.augment])
        shifts = augment.random_shifts(config.batch_size * dist.size, config.max_shift,
                                       tf.random.experimental.stateless_fold_in(key, 2))
        return augment.translate(unlabeled_x, local(shifts))

    def unsupervised_weight(step):
        if not config.unsupervised_rampup:
            return config.unsupervised_weight
        return config.unsupervised_weight * tf.minimum(1.0, tf.cast(step, tf.float32) / config.unsupervised_rampup)

    def feature_matching_updates(labeled_x, labeled_y, unlabeled_x, key, step):
        if config.augment in augment.STRONG:  # weak views: what the labels and the pseudo-labels' teacher see
            labeled_x, unlabeled_x = view(labeled_x, key, 3), view(unlabeled_x, key, 4)
        with tf.GradientTape(persistent=True) as tape:
            images = [labeled_x, unlabeled_x]
            if config.pseudo_label_weight:
                images.append(student(unlabeled_x, key))
            if config.flip_targets:
                images.append(tf.reverse(unlabeled_x, [2]))
            features, logits = features_and_logits(tf.concat(images, 0), training=True)
            features, logits = tf.split(features, len(images)), tf.split(logits, len(images))
            l_supervised = l_discriminator = supervised_loss(labeled_y, logits[0])
            l_unsupervised = l_generator = tf.zeros((), l_supervised.dtype)
            if config.gan:  # a pass of their own: the generator's gradient goes back through D on its images alone
                fake_features, fake_logits = features_and_logits(generator(noise(key, 0), training=True),
                                                                 training=True)
                l_unsupervised = unsupervised_loss(logits[1], fake_logits)
                l_discriminator += unsupervised_weight(step) * l_unsupervised
                l_generator = feature_matching_loss(features[1], fake_features)
            if config.pseudo_label_weight:
                weak = mirrored_mean(logits[1], logits[3]) if config.flip_targets else logits[1]
                targets, weights, confidence = sgan.teacher(weak)
                l_discriminator += config.pseudo_label_weight * pseudo_label_loss(targets, weights, logits[2])
        updates = [(optimizers["discriminator"], tape, l_discriminator, discriminator.trainable_variables)]
        if config.gan:
            updates.append((optimizers["generator"], tape, l_generator, generator.trainable_variables))
        losses = {"supervised": l_supervised, "unsupervised": l_unsupervised, "generator": l_generator}
        if config.pseudo_label_weight:  # what the unlabeled images teach
            losses.update(pseudo_label_rate=tf.reduce_mean(weights), pseudo_label_confidence=tf.reduce_mean(confidence))
        return descend(dist, updates, worker_state(losses)), losses

    updates = reference_updates
    if config.algorithm == "feature_matching":
        features_and_logits, updates = with_features(discriminator), feature_matching_updates
    averaged_pairs = [] if sgan.averaged_discriminator is None else [
        (a, v) for a, v in zip(sgan.averaged_discriminator.variables, discriminator.variables) if "float" in v.dtype
    ]

    @tf.function
    def train_step(labeled_x, labeled_y, unlabeled_x, step):
        key = tf.random.experimental.stateless_fold_in(tf.constant([config.seed, 0], tf.int64), step)
        state, losses = updates(labeled_x, labeled_y, unlabeled_x, key, step)
        if state:  # averaged across workers
            for variable, average in zip(moving_statistics, state):
                variable.assign(average)
            losses = dict(zip(losses, state[len(moving_statistics):]))
        decay = config.ema_decay
        if config.ema_warmup:
            decay = tf.minimum(decay, (1.0 + tf.cast(step, tf.float32)) / (10.0 + tf.cast(step, tf.float32)))
        for average, variable in averaged_pairs:
            average.assign(decay * average + (1.0 - decay) * variable)
        return losses

    return train_step


def mirrored_mean(logits, mirrored_logits):
    """Logits whose softmax is the mean of both predictions' probabilities (targets read from an image and its
    mirror)."""
    both = tf.nn.softmax(tf.cast(tf.stack([logits, mirrored_logits]), tf.float32))
    return tf.math.log(tf.reduce_mean(both, axis=0))


def save_checkpoint(manager: tf.train.CheckpointManager, run_dir: Path, done: int):
    """A full disk is one line naming the checkpoint, and leaves no part of it behind."""
    try:
        with writing(run_dir / "checkpoints" / f"ckpt-{done}"):
            manager.save(checkpoint_number=done)
    except UserError:
        for partial in (run_dir / "checkpoints").glob(f"ckpt-{done}[._]*"):
            shutil.rmtree(partial) if partial.is_dir() else partial.unlink()
        raise


def train(config: TrainConfig, dataset: Dataset, labeled: np.ndarray, run_dir, dist=None) -> SGAN:
    """Trains, resuming from the latest checkpoint in `run_dir` if there is one; rank 0 writes the outputs.

    A checkpoint holds no worker count: one written by N workers resumes on M.
    """
    dist = dist or distributed.Distribution()
    config = for_images(config, dataset.image_shape)
    run_dir = Path(run_dir)
    validation_size, spare = data.validation_size(dataset, labeled, config.validation)
    unlabeled, validation = data.split_validation(dataset.y_train, labeled, validation_size, config.seed)
    init_images = None
    if config.data_init:
        init_images = data.scale(dataset.x_train[np.random.default_rng([config.seed, 3]).choice(unlabeled, INIT_SIZE)])
    sgan = build(config, dataset.image_shape, dataset.num_classes, dist.size, init_images)
    step = tf.Variable(0, dtype=tf.int64)
    planned = tf.Variable(0, dtype=tf.int64)  # the count a time budget chose; 0: not yet
    checkpoint = tf.train.Checkpoint(
        step=step, **({"planned_iterations": planned} if config.time_budget else {}),
        **{name: model.variables for name, model in sgan.models().items()},
        **{f"{name}_optimizer": optimizer for name, optimizer in sgan.optimizers.items()},
        **({"teacher": sgan.teacher_state()} if sgan.teacher_state() else {}),
    )
    manager = tf.train.CheckpointManager(checkpoint, run_dir / "checkpoints", max_to_keep=3)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_consumed()
    elif config.warm_start and dist.is_chief:  # the broadcast below copies the weights to the other workers
        warm.load(sgan, config.warm_start)
    dist.broadcast([step] + [v.value for v in sgan.variables()])
    start, iterations = int(step.numpy()), int(planned.numpy()) or config.iterations

    history = [r for r in load_history(run_dir) if r["step"] <= start]  # later ones: the interrupted attempt
    stream_args = dict(batch_size=config.batch_size, seed=config.seed, start_step=start, rank=dist.rank, size=dist.size)
    labeled_batches = iter(data.batches(
        dataset.x_train, dataset.y_train, labeled, stream=LABELED_STREAM,
        balanced_classes=dataset.num_classes if config.balanced_labeled else 0, **stream_args))
    unlabeled_batches = iter(data.batches(dataset.x_train, None, unlabeled, stream=UNLABELED_STREAM, **stream_args))
    validation_x, validation_y = dataset.x_train[validation], dataset.y_train[validation]
    writer = tf.summary.create_file_writer(str(run_dir / "tensorboard")) if dist.is_chief else None
    if dist.is_chief:
        atomic.write_json(run_dir / "config.json", {**config.to_dict(), "iterations": iterations})
        print(f"{dist.size} worker(s) x batch {config.batch_size} = global batch {dist.size * config.batch_size}, "
              f"precision {precision.resolve(config.precision)}, from iteration {start}", flush=True)
        if not validation_size and config.validation:
            print("no validation split: the data labels only the images it trains on", flush=True)
        elif validation_size < config.validation:
            print(f"validation split: {validation_size} held-out labeled images (the preset asks for "
                  f"{config.validation}; the data has {spare} beyond the labeled subset, half of them held out)",
                  flush=True)

    started, seconds_before = time.perf_counter(), history[-1].get("seconds", 0.0) if history else 0.0
    budget = None
    if config.time_budget and not planned.numpy():
        budget = Budget(config.time_budget, config.iterations, config.decay_from, start, seconds_before)
    if iterations != config.iterations:  # resumed: the count a time budget chose
        set_length(sgan, config, iterations, dist.size)
    train_step = make_train_step(sgan, config, dist)
    with tqdm(total=iterations, initial=start, desc="sgan train", unit="it",
              disable=not dist.is_chief) as progress:  # closed on an error too: its line ends before the error's
        t = start
        while t < iterations:  # a time budget sets `iterations` after the first ones
            labeled_x, labeled_y = next(labeled_batches)
            unlabeled_x, _ = next(unlabeled_batches)
            losses = train_step(labeled_x, labeled_y, unlabeled_x, tf.constant(t, tf.int64))
            step.assign(t + 1)
            done = t + 1
            if budget and (count := budget.observe(done)) is not None:
                planned.assign(count)
                dist.broadcast([planned])  # rank 0's timing decides, so that every worker stops together
                iterations = int(planned.numpy())
                set_length(sgan, config, iterations, dist.size)
                train_step = make_train_step(sgan, config, dist)
                progress.total = iterations
                if dist.is_chief:
                    progress.write(budget.describe(iterations))
                    atomic.write_json(run_dir / "config.json", {**config.to_dict(), "iterations": iterations})
            if dist.is_chief and (done % config.log_every == 0 or done == iterations):
                record = {"step": done, **{k: float(v) for k, v in losses.items()}}
                record["seconds"] = round(seconds_before + time.perf_counter() - started, 1)  # training wall time
                if len(validation) and (done % config.eval_every == 0 or done == iterations):
                    record["validation_accuracy"] = accuracy(sgan.classifier, validation_x, validation_y)
                    if config.pseudo_label_weight:  # the teacher's pseudo-labels where their labels are known
                        record.update(pseudo_label_quality(sgan.discriminator, validation_x, validation_y,
                                                           sgan.teacher))
                history.append(record)
                progress.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k not in NOT_IN_PROGRESS})
                with writer.as_default(step=done):
                    for name, value in record.items():
                        if name not in ("step", "seconds"):
                            tf.summary.scalar(name, value)
            if dist.is_chief and (done % config.checkpoint_every == 0 or done == iterations):
                save_checkpoint(manager, run_dir, done)
                atomic.write_json(run_dir / "history.json", history)
            progress.update(1)
            t = done

    if dist.is_chief:
        for name, model in (("generator", sgan.generator), ("discriminator", sgan.classifier)):
            with atomic.atomic_path(run_dir / f"{name}.keras") as tmp:
                model.save(tmp)
    return sgan

