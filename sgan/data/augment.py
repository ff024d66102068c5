"""Label-preserving augmentations, drawn from stateless seeds: a resumed run draws the same ones, and so does any
worker count (each worker applies its slice of what was drawn for the global batch).

Chosen by the data (`TrainConfig.augment`):
- `shifts` (digits): the pseudo-label student sees a copy shifted by up to `max_shift` pixels; nothing else changes.
- `photos` (FixMatch's weak and strong views, Sohn et al. 2020): the weak view flips half the images left to right
  and shifts them by up to `max_shift` pixels (edges mirrored), for labeled images and for the unlabeled images
  whose predictions teach; the strong view, for the student, adds random brightness, contrast and saturation and
  hides a square of half the image's side (Cutout, DeVries & Taylor 2017).
- `randaugment`: the same weak view; the strong view is FixMatch's as the USB benchmark writes it: two operations
  drawn from RandAugment's fourteen (Cubuk et al. 2020), each at a random magnitude, then a grey square of up to
  half the side.
"""

import math

import tensorflow as tf

BRIGHTNESS = 0.25  # added, in the [-1, 1] scale of the images
CONTRAST = SATURATION = 0.4  # factors drawn from [1 - this, 1 + this]
STRONG = {"photos": "colour", "randaugment": "randaugment"}  # the photo augmentations and their strong views
# RandAugment's operations and the range a magnitude in [0, 1] maps to (USB's randaugment.py, FixMatch's table 12)
OPERATIONS = {"identity": (0, 1), "autocontrast": (0, 1), "equalize": (0, 1), "brightness": (0.05, 0.95),
              "color": (0.05, 0.95), "contrast": (0.05, 0.95), "sharpness": (0.05, 0.95), "posterize": (4, 8),
              "solarize": (0, 256), "rotate": (-30, 30), "shear_x": (-0.3, 0.3), "shear_y": (-0.3, 0.3),
              "translate_x": (-0.3, 0.3), "translate_y": (-0.3, 0.3)}
RANDAUGMENT_OPERATIONS = 2
SMOOTH = [[1 / 13, 1 / 13, 1 / 13], [1 / 13, 5 / 13, 1 / 13], [1 / 13, 1 / 13, 1 / 13]]  # PIL's ImageFilter.SMOOTH


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


def draw(n: int, image_size: tuple, max_shift: int, strong: str, seed) -> dict:
    """The random choices of n views (per image: flip and shift; for a strong view, "colour" or "randaugment",
    its colour factors or operations and magnitudes, and the hidden square). `strong` "" draws a weak view."""
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 4))
    choices = {"flip": tf.random.stateless_uniform((n,), seeds[0]) < 0.5,
               "shift": random_shifts(n, max_shift, seeds[1])}
    if strong:
        choices["cutout"] = tf.random.stateless_uniform((n, 2), seeds[3]) * tf.constant(list(image_size), tf.float32)
    if strong == "colour":
        u = tf.random.stateless_uniform((n, 3), seeds[2], -1.0, 1.0)
        choices["colour"] = u * [BRIGHTNESS, CONTRAST, SATURATION] + [0.0, 1.0, 1.0]
        choices["cutout_side"] = tf.fill((n,), min(image_size) / 2)
    elif strong == "randaugment":
        shape, more = (n, RANDAUGMENT_OPERATIONS), tf.unstack(tf.random.experimental.stateless_split(seeds[2], 3))
        choices["operations"] = tf.random.stateless_uniform(shape, more[0], 0, len(OPERATIONS), tf.int32)
        choices["magnitudes"] = tf.random.stateless_uniform(shape, more[1])
        choices["cutout_side"] = tf.random.stateless_uniform((n,), more[2], 0.0, 0.5) * min(image_size)
    return choices


def view(images, choices: dict):
    """The images as `choices` (drawn by `draw`, sliced to these images) transform them."""
    flip = tf.reshape(choices["flip"], (-1, 1, 1, 1))
    images = translate(tf.where(flip, tf.reverse(images, [2]), images), choices["shift"], "REFLECT")
    if "colour" in choices:
        images = recolour(images, choices["colour"])
    if "operations" in choices:
        for k in range(RANDAUGMENT_OPERATIONS):
            images = randaugment(images, choices["operations"][:, k], choices["magnitudes"][:, k])
    if "cutout" in choices:
        images = cut_out(images, choices["cutout"], choices["cutout_side"])
    return images


def recolour(images, factors):
    """Brightness (added), contrast (around each image's mean) and saturation (around its grey), then clipped."""
    brightness, contrast, saturation = (tf.reshape(f, (-1, 1, 1, 1)) for f in tf.unstack(factors, axis=1))
    grey = tf.reduce_mean(images, axis=-1, keepdims=True)
    images = grey + saturation * (images - grey)
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return tf.clip_by_value(mean + contrast * (images - mean) + brightness, -1.0, 1.0)


def cut_out(images, centres, sides):
    """Sets a square of side sides[i], centred at centres[i] = (y, x), to mid-grey (0)."""
    height, width = images.shape[1], images.shape[2]
    half = tf.reshape(sides, (-1, 1, 1)) / 2
    ys, xs = tf.range(height, dtype=tf.float32)[None, :, None], tf.range(width, dtype=tf.float32)[None, None, :]
    inside = ((tf.abs(ys + 0.5 - centres[:, :1, None]) < half) & (tf.abs(xs + 0.5 - centres[:, 1:, None]) < half))
    return images * tf.cast(~inside, images.dtype)[..., None]


def randaugment(images, operations, magnitudes):
    """Image i after RandAugment's operation operations[i] at magnitude magnitudes[i] in [0, 1] (PIL's meaning of
    each, on pixels in [0, 1]; shears about the centre). Every operation is computed for the batch and each image
    keeps its own: vectorised, with no data-dependent control flow."""
    names = list(OPERATIONS)
    low, high = (tf.constant([OPERATIONS[name][i] for name in names], tf.float32) for i in (0, 1))
    values = tf.gather(low, operations) + magnitudes * tf.gather(high - low, operations)
    x = (images + 1.0) / 2.0
    v = tf.reshape(values, (-1, 1, 1, 1))
    grey = tf.reduce_sum(x * [0.299, 0.587, 0.114], axis=-1, keepdims=True)
    lowest = tf.reduce_min(x, axis=[1, 2], keepdims=True)
    spread = tf.reduce_max(x, axis=[1, 2], keepdims=True) - lowest
    blurred = tf.nn.depthwise_conv2d(x, tf.tile(tf.constant(SMOOTH)[..., None, None], [1, 1, x.shape[-1], 1]),
                                     [1] * 4, "SAME")
    pixels = tf.round(x * 255.0)
    levels = 2.0 ** (8.0 - tf.floor(v))  # posterize keeps floor(v) bits of 8
    results = {
        "identity": x,
        "autocontrast": tf.where(spread > 0, (x - lowest) / tf.maximum(spread, 1e-6), x),
        "equalize": equalize(x),
        "brightness": v * x,
        "color": grey + v * (x - grey),
        "contrast": tf.reduce_mean(grey, axis=[1, 2, 3], keepdims=True) * (1.0 - v) + v * x,
        "sharpness": blurred + v * (x - blurred),
        "posterize": tf.floor(pixels / levels) * levels / 255.0,
        "solarize": tf.where(pixels >= v, 1.0 - x, x),
    }
    chosen = tf.reshape(operations, (-1, 1, 1, 1))
    out = x
    for name, result in results.items():
        out = tf.where(chosen == names.index(name), result, out)
    out = transform(tf.clip_by_value(out, 0.0, 1.0), affine(operations, values, names, x.shape[1], x.shape[2]))
    return out * 2.0 - 1.0


def equalize(x):
    """Each channel's histogram flattened: a pixel's value becomes its rank among the image's pixels."""
    n, height, width, channels = tf.shape(x)[0], x.shape[1], x.shape[2], x.shape[3]
    flat = tf.reshape(x, (n, height * width, channels))
    ranks = tf.argsort(tf.argsort(flat, axis=1, stable=True), axis=1, stable=True)
    return tf.reshape(tf.cast(ranks, tf.float32) / max(height * width - 1, 1), tf.shape(x))


def affine(operations, values, names, height, width):
    """[n, 8] projective transforms (output pixel to input pixel) for the geometric operations, identity for the
    rest: rotation in degrees about the centre, shears, and translations as a fraction of the side."""
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    angle = values * math.pi / 180.0
    cos, sin = tf.cos(angle), tf.sin(angle)
    one, zero = tf.ones_like(values), tf.zeros_like(values)
    rows = {
        "rotate": [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy],
        "shear_x": [one, values, -values * cy, zero, one, zero],
        "shear_y": [one, zero, zero, values, one, -values * cx],
        "translate_x": [one, zero, values * width, zero, one, zero],
        "translate_y": [one, zero, zero, zero, one, values * height],
    }
    matrix = tf.stack([one, zero, zero, zero, one, zero], axis=1)
    for name, row in rows.items():
        matrix = tf.where((operations == names.index(name))[:, None], tf.stack(row, axis=1), matrix)
    return tf.concat([matrix, tf.zeros_like(matrix[:, :2])], axis=1)


def transform(x, matrices):
    """Bilinear resampling by per-image transforms, outside pixels black (as PIL's transform fills)."""
    return tf.raw_ops.ImageProjectiveTransformV3(images=x, transforms=matrices, output_shape=tf.shape(x)[1:3],
                                                 fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")
