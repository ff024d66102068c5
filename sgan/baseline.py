"""The supervised-only baseline: the same discriminator, labeled subset and number of supervised steps, no GAN.

It measures what semi-supervision adds instead of claiming it.
"""

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from sgan import data
from sgan.config import TrainConfig
from sgan.dataset import Dataset
from sgan.losses import supervised_loss
from sgan.train import LABELED_STREAM, build_discriminator_for, learning_rate


def train_baseline(config: TrainConfig, dataset: Dataset, labeled: np.ndarray) -> keras.Model:
    keras.utils.set_random_seed(config.seed)
    discriminator = build_discriminator_for(config, dataset.image_shape, dataset.num_classes)
    optimizer = keras.optimizers.Adam(learning_rate(config), config.beta_1)

    @tf.function
    def supervised_step(x, y):
        with tf.GradientTape() as tape:
            loss = supervised_loss(y, discriminator(x, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, discriminator.trainable_variables),
                                      discriminator.trainable_variables))
        return loss

    batches = data.batches(dataset.x_train, dataset.y_train, labeled, config.batch_size, config.seed,
                           LABELED_STREAM, balanced_classes=dataset.num_classes if config.balanced_labeled else 0)
    for x, y in tqdm(batches.take(config.iterations), total=config.iterations, desc="baseline"):
        supervised_step(x, y)
    return discriminator
