"""Label-preserving augmentations, drawn from stateless seeds: a resumed run draws the same ones, and so does any
worker count (each worker applies its slice of what was drawn for the global batch).

Two kinds, chosen by the data (`TrainConfig.augment`):
- `shifts` (digits): the pseudo-label student sees a copy shifted by up to `max_shift` pixels; nothing else changes.
- `photos` (FixMatch's weak and strong views, Sohn et al. 2020): the weak view flips half the images left to right
  and shifts them by up to `max_shift` pixels (edges mirrored), for labeled images and for the unlabeled images
  whose predictions teach; the strong view, for the student, adds random brightness, contrast and saturation and
  hides a square of half the image's side (Cutout, DeVries & Taylor 2017).
"""

import tensorflow as tf

BRIGHTNESS = 0.25  # added, in the [-1, 1] scale of the images
CONTRAST = SATURATION = 0.4  # factors drawn from [1 - this, 1 + this]


def random_shifts(n: int, max_shift: int, seed):
    """n (dx, dy) pairs of whole pixels in [-max_shift, max_shift]; `seed` is a stateless seed (shape [2]), so a
    resumed run draws the same shifts."""
    return tf.random.stateless_uniform((n, 2), seed, -max_shift, max_shift + 1, tf.int32)


def translate(images, shifts, fill_mode: str = "NEAREST"):
    """Shifts image i by shifts[i] = (dx, dy) whole pixels, filling from the edge (NEAREST) or its mirror (REFLECT:
    d c b a | a b c d). Gathers of rows and columns, so that XLA compiles it."""
    height, width = images.shape[1], images.shape[2]

    def sources(size, shift):  # [n, size]: the input row (or column) each output row reads
        index = tf.range(size)[None, :] - shift[:, None]
        if fill_mode == "NEAREST":
            return tf.clip_by_value(index, 0, size - 1)
        index = tf.where(index < 0, -index - 1, index)
        return tf.where(index >= size, 2 * size - 1 - index, index)

    shifts = tf.cast(shifts, tf.int32)
    images = tf.gather(images, sources(height, shifts[:, 1]), axis=1, batch_dims=1)
    return tf.gather(images, sources(width, shifts[:, 0]), axis=2, batch_dims=1)


def draw(n: int, image_size: tuple, max_shift: int, strong: bool, seed) -> dict:
    """The random choices of n views (per image: flip, shift, and for a strong view colour and the hidden square)."""
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 4))
    choices = {"flip": tf.random.stateless_uniform((n,), seeds[0]) < 0.5,
               "shift": random_shifts(n, max_shift, seeds[1])}
    if strong:
        u = tf.random.stateless_uniform((n, 3), seeds[2], -1.0, 1.0)
        choices["colour"] = u * [BRIGHTNESS, CONTRAST, SATURATION] + [0.0, 1.0, 1.0]
        choices["cutout"] = tf.random.stateless_uniform((n, 2), seeds[3]) * tf.constant(list(image_size), tf.float32)
    return choices


def view(images, choices: dict):
    """The images as `choices` (drawn by `draw`, sliced to these images) transform them."""
    flip = tf.reshape(choices["flip"], (-1, 1, 1, 1))
    images = translate(tf.where(flip, tf.reverse(images, [2]), images), choices["shift"], "REFLECT")
    if "colour" in choices:
        images = recolour(images, choices["colour"])
        images = cut_out(images, choices["cutout"])
    return images


def recolour(images, factors):
    """Brightness (added), contrast (around each image's mean) and saturation (around its grey), then clipped."""
    brightness, contrast, saturation = (tf.reshape(f, (-1, 1, 1, 1)) for f in tf.unstack(factors, axis=1))
    grey = tf.reduce_mean(images, axis=-1, keepdims=True)
    images = grey + saturation * (images - grey)
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return tf.clip_by_value(mean + contrast * (images - mean) + brightness, -1.0, 1.0)


def cut_out(images, centres):
    """Sets a square of half the image's shorter side, centred at centres[i] = (y, x), to mid-grey (0)."""
    height, width = images.shape[1], images.shape[2]
    half = min(height, width) / 4
    ys, xs = tf.range(height, dtype=tf.float32)[None, :, None], tf.range(width, dtype=tf.float32)[None, None, :]
    inside = ((tf.abs(ys + 0.5 - centres[:, :1, None]) < half) & (tf.abs(xs + 0.5 - centres[:, 1:, None]) < half))
    return images * tf.cast(~inside, images.dtype)[..., None]
