"""The SGAN generator and discriminator, and the discriminator's two heads on one set of logits.

The discriminator outputs K class logits l. The supervised head is softmax(l); the unsupervised head is
D(x) = Z / (Z + 1) with Z = sum_k exp(l_k) (Salimans et al. 2016), i.e. sigmoid(logsumexp(l)).
"""

import keras
import tensorflow as tf
from keras import layers

from sgan.errors import UserError

LEAK = 0.01


def build_generator(z_dim: int, image_shape: tuple, dtype=None) -> keras.Model:
    """DCGAN-style generator: z -> (H/4, W/4, 256) -> two upsamplings by 2 -> tanh image."""
    height, width, channels = image_shape
    if height % 4 or width % 4:
        raise UserError(f"image size {height}x{width} must be divisible by 4 for the generator")
    return keras.Sequential(
        [
            keras.Input((z_dim,)),
            layers.Dense(height // 4 * width // 4 * 256, dtype=dtype),
            layers.Reshape((height // 4, width // 4, 256), dtype=dtype),
            layers.Conv2DTranspose(128, 3, strides=2, padding="same", dtype=dtype),
            layers.BatchNormalization(dtype=dtype),
            layers.LeakyReLU(LEAK, dtype=dtype),
            layers.Conv2DTranspose(64, 3, strides=1, padding="same", dtype=dtype),
            layers.BatchNormalization(dtype=dtype),
            layers.LeakyReLU(LEAK, dtype=dtype),
            layers.Conv2DTranspose(channels, 3, strides=2, padding="same", activation="tanh", dtype=dtype),
        ],
        name="generator",
    )


def build_discriminator(image_shape: tuple, num_classes: int, seed: int = 0, dtype=None) -> keras.Model:
    """Three strided convolutions to K class logits, always float32 (no activation: the heads work on logits)."""
    return keras.Sequential(
        [
            keras.Input(image_shape),
            layers.Conv2D(32, 3, strides=2, padding="same", dtype=dtype),
            layers.LeakyReLU(LEAK, dtype=dtype),
            layers.Conv2D(64, 3, strides=2, padding="same", dtype=dtype),
            layers.BatchNormalization(dtype=dtype),
            layers.LeakyReLU(LEAK, dtype=dtype),
            layers.Conv2D(128, 3, strides=2, padding="same", dtype=dtype),
            layers.BatchNormalization(dtype=dtype),
            layers.LeakyReLU(LEAK, dtype=dtype),
            layers.Flatten(dtype=dtype),
            layers.Dropout(0.5, seed=seed, dtype=dtype),
            layers.Dense(num_classes, dtype="float32"),
        ],
        name="discriminator",
    )


def class_probabilities(logits):
    """The supervised head: softmax over the K classes."""
    return tf.nn.softmax(logits)


def real_probability(logits):
    """The unsupervised head D(x) = Z/(Z+1), computed as sigmoid(logsumexp(l)) so large logits cannot overflow."""
    return tf.sigmoid(tf.reduce_logsumexp(logits, axis=-1))
