"""The supervised-only baseline: the same discriminator, labeled subset and batch size, no GAN.

It measures what semi-supervision adds instead of claiming it. It trains as many steps as the SGAN, up to
`STEPS`: a few labeled images are learnt by then, and more steps only add minutes to every evaluation
(docs/benchmarks.md, "The supervised-only baseline").
"""

from dataclasses import replace

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from sgan import data
from sgan.config import TrainConfig, for_images
from sgan.data import augment
from sgan.data.dataset import Dataset
from sgan.models.losses import supervised_loss
from sgan.training.train import LABELED_STREAM, build_discriminator_for, learning_rate

STEPS = 1000


def steps(config: TrainConfig) -> int:
    return min(config.iterations, STEPS)


def train_baseline(config: TrainConfig, dataset: Dataset, labeled: np.ndarray) -> keras.Model:
    config = for_images(replace(config, iterations=steps(config)), dataset.image_shape)  # its own schedule
    keras.utils.set_random_seed(config.seed)
    discriminator = build_discriminator_for(config, dataset.image_shape, dataset.num_classes)
    optimizer = keras.optimizers.Adam(learning_rate(config), config.beta_1)

    @tf.function
    def supervised_step(x, y, step):
        if config.augment in augment.STRONG:  # the labeled images' view in the SGAN's step
            seed = tf.random.experimental.stateless_fold_in(tf.constant([config.seed, 1], tf.int64), step)
            x = augment.view(x, augment.draw(tf.shape(x)[0], tuple(x.shape[1:3]), config.max_shift, "", seed))
        with tf.GradientTape() as tape:
            loss = supervised_loss(y, discriminator(x, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, discriminator.trainable_variables),
                                      discriminator.trainable_variables))
        return loss

    batches = data.batches(dataset.x_train, dataset.y_train, labeled, config.batch_size, config.seed,
                           LABELED_STREAM, balanced_classes=dataset.num_classes if config.balanced_labeled else 0)
    for step, (x, y) in enumerate(tqdm(batches.take(config.iterations), total=config.iterations, desc="baseline")):
        supervised_step(x, y, tf.constant(step, tf.int64))
    return discriminator
