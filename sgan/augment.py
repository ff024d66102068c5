"""Random translations for the unlabeled consistency term: cheap, label-preserving for images of objects."""

import tensorflow as tf


def random_shifts(n: int, max_shift: int, seed):
    """n (dx, dy) pairs of whole pixels in [-max_shift, max_shift]; `seed` is a stateless seed (shape [2]), so a
    resumed run draws the same shifts."""
    return tf.random.stateless_uniform((n, 2), seed, -max_shift, max_shift + 1, tf.int32)


def translate(images, shifts):
    """Shifts image i by shifts[i] = (dx, dy) pixels, filling with the nearest edge pixel."""
    n = tf.shape(images)[0]
    shifts = tf.cast(shifts, tf.float32)
    ones, zeros = tf.ones((n, 1)), tf.zeros((n, 1))
    # The projective transform maps output pixel (x, y) to input (x - dx, y - dy).
    transforms = tf.concat([ones, zeros, -shifts[:, :1], zeros, ones, -shifts[:, 1:], zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3], fill_value=0.0,
        interpolation="NEAREST", fill_mode="NEAREST")
