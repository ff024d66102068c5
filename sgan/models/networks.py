"""The SGAN generator and discriminator, and the discriminator's two heads on one set of logits.

The discriminator outputs K class logits l. The supervised head is softmax(l); the unsupervised head is
D(x) = Z / (Z + 1) with Z = sum_k exp(l_k) (Salimans et al. 2016), i.e. sigmoid(logsumexp(l)).
"""

import math

import keras
import tensorflow as tf
from keras import layers

from sgan.errors import UserError
from sgan.images import upsamplings

LEAK = 0.01
FEATURES = "features"  # the layer whose batch mean feature matching compares between real and generated images


class _WeightNorm(layers.Layer):
    """Weight normalisation (Salimans & Kingma 2016): w = g * v / ||v||, with one scale g per output unit.

    With `train_scale=False` a hidden layer keeps the scale its data-dependent initialisation gave it (Salimans et
    al.'s MNIST model): its outputs cannot grow against the fixed Gaussian noise that follows, which kept our MLP
    discriminator from collapsing (docs/benchmarks.md, "The improved preset"). Subclasses say how v is applied.
    """

    def __init__(self, units: int, activation=None, train_scale: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.units, self.activation, self.train_scale = units, keras.activations.get(activation), train_scale

    def add_normalised_weights(self, kernel_shape):
        self.kernel = self.add_weight(name="kernel", shape=kernel_shape, initializer="glorot_uniform")
        self.scale = self.add_weight(name="scale", shape=(self.units,), initializer="ones", trainable=self.train_scale)
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def initialize_from(self, inputs):
        """Data-dependent initialisation: every unit's pre-activation on `inputs` gets mean 0 and variance 1,
        so the Gaussian noise after each layer has the intended size relative to its signal."""
        self.scale.assign(tf.ones_like(self.scale))
        self.bias.assign(tf.zeros_like(self.bias))
        linear = self.linear(inputs)
        axes = list(range(len(linear.shape) - 1))
        mean, variance = tf.nn.moments(linear, axes)
        self.scale.assign(1.0 / tf.sqrt(variance + 1e-6))
        self.bias.assign(-mean * self.scale)

    def call(self, inputs):
        return self.activation(self.linear(inputs) + tf.cast(self.bias, inputs.dtype))

    def normalised_kernel(self, dtype):
        axes = list(range(len(self.kernel.shape) - 1))
        norm = tf.sqrt(tf.reduce_sum(tf.square(self.kernel), axis=axes, keepdims=True))
        return tf.cast(self.kernel / norm * self.scale, dtype)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "train_scale": self.train_scale,
                "activation": keras.activations.serialize(self.activation)}


@keras.saving.register_keras_serializable(package="sgan")
class WeightNormDense(_WeightNorm):
    def build(self, input_shape):
        self.add_normalised_weights((input_shape[-1], self.units))

    def linear(self, inputs):
        return tf.matmul(inputs, self.normalised_kernel(inputs.dtype))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)


@keras.saving.register_keras_serializable(package="sgan")
class WeightNormConv2D(_WeightNorm):
    """3x3 convolution with weight normalisation, `units` filters, 'same' padding."""

    def __init__(self, units: int, activation=None, strides: int = 1, **kwargs):
        super().__init__(units, activation, **kwargs)
        self.strides = strides

    def build(self, input_shape):
        self.add_normalised_weights((3, 3, input_shape[-1], self.units))

    def linear(self, inputs):
        return tf.nn.conv2d(inputs, self.normalised_kernel(inputs.dtype), self.strides, "SAME")

    def compute_output_shape(self, input_shape):
        height, width = (None if d is None else -(-d // self.strides) for d in input_shape[1:3])
        return (input_shape[0], height, width, self.units)

    def get_config(self):
        return {**super().get_config(), "strides": self.strides}


@keras.saving.register_keras_serializable(package="sgan")
class GaussianNoise(layers.GaussianNoise):
    """keras' GaussianNoise from half the random bits: Box-Muller on two 16-bit uniforms per 32-bit draw, so one
    Philox draw makes two normals where TensorFlow's normal spends one per value. Drawing the noise was a third of
    the `improved` step on CPUs (docs/benchmarks.md, "Where a step's time goes"); the tails end at 4.85 sigma."""

    def call(self, inputs, training=False):
        if not (training and self.stddev > 0):
            return inputs
        shape, count = tf.shape(inputs), tf.size(inputs)
        bits = tf.random.stateless_uniform([(count + 1) // 2], tf.cast(self.seed_generator.next(), tf.int64),
                                           minval=None, maxval=None, dtype=tf.uint32)
        first = (tf.cast(tf.bitwise.right_shift(bits, 16), tf.float32) + 0.5) / 65536.0  # in (0, 1): a finite log
        second = tf.cast(tf.bitwise.bitwise_and(bits, 0xFFFF), tf.float32) * (2 * math.pi / 65536.0)
        radius = tf.sqrt(-2.0 * tf.math.log(first)) * self.stddev
        normal = tf.concat([radius * tf.cos(second), radius * tf.sin(second)], 0)[:count]
        return inputs + tf.cast(tf.reshape(normal, shape), inputs.dtype)


def build_discriminator(image_shape: tuple, num_classes: int, seed: int = 0, dtype=None, architecture="conv",
                        input_noise=0.0, hidden_noise=0.0, train_hidden_scales=True) -> keras.Model:
    if architecture == "conv-gap":
        return build_gap_discriminator(image_shape, num_classes, seed, dtype)
    if architecture == "mlp":
        return build_mlp_discriminator(image_shape, num_classes, seed, dtype, input_noise, hidden_noise,
                                       train_hidden_scales)
    if architecture == "wn-conv":
        return build_wn_conv_discriminator(image_shape, num_classes, seed, dtype, input_noise, hidden_noise,
                                           train_hidden_scales)
    return build_conv_discriminator(image_shape, num_classes, seed, dtype)


def build_generator(z_dim: int, image_shape: tuple, dtype=None, architecture="conv") -> keras.Model:
    if architecture == "conv-gap":
        return build_upsampling_generator(z_dim, image_shape, dtype)
    if architecture in ("mlp", "wn-conv"):
        return build_mlp_generator(z_dim, image_shape, dtype)
    return build_conv_generator(z_dim, image_shape, dtype)


def build_conv_generator(z_dim: int, image_shape: tuple, dtype=None) -> keras.Model:
    """The reference's DCGAN-style generator: z -> (H/4, W/4, 256) -> two upsamplings by 2 -> tanh image."""
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


def build_conv_discriminator(image_shape: tuple, num_classes: int, seed: int = 0, dtype=None) -> keras.Model:
    """The reference's three strided convolutions to K class logits, always float32 (no activation: the heads
    work on logits)."""
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
            layers.Flatten(dtype=dtype, name=FEATURES),
            layers.Dropout(0.5, seed=seed, dtype=dtype),
            layers.Dense(num_classes, dtype="float32"),
        ],
        name="discriminator",
    )


def build_mlp_generator(z_dim: int, image_shape: tuple, dtype=None) -> keras.Model:
    """Salimans et al.'s MNIST generator: z -> 500 -> 500 (softplus, BatchNorm) -> weight-normed tanh image."""
    height, width, channels = image_shape
    return keras.Sequential(
        [
            keras.Input((z_dim,)),
            layers.Dense(500, activation="softplus", dtype=dtype),
            layers.BatchNormalization(dtype=dtype),
            layers.Dense(500, activation="softplus", dtype=dtype),
            layers.BatchNormalization(dtype=dtype),
            WeightNormDense(height * width * channels, activation="tanh", dtype=dtype),
            layers.Reshape(image_shape, dtype=dtype),
        ],
        name="generator",
    )


def build_mlp_discriminator(image_shape: tuple, num_classes: int, seed: int = 0, dtype=None,
                            input_noise=0.3, hidden_noise=0.5, train_hidden_scales=True) -> keras.Model:
    """Salimans et al.'s MNIST discriminator: weight-normed ReLU layers 1000-500-250-250-250, Gaussian noise
    on the input and after every hidden layer (training only), K logits from the last 250 features."""
    stack = [keras.Input(image_shape), layers.Flatten(dtype=dtype),
             GaussianNoise(input_noise, seed=seed, dtype=dtype)]
    widths = (1000, 500, 250, 250, 250)
    for i, width in enumerate(widths):
        last = i == len(widths) - 1
        stack += [WeightNormDense(width, activation="relu", train_scale=train_hidden_scales, dtype=dtype,
                                  name=FEATURES if last else None),
                  GaussianNoise(hidden_noise, seed=seed + 1 + i, dtype=dtype)]
    stack.append(WeightNormDense(num_classes, dtype="float32"))
    return keras.Sequential(stack, name="discriminator")


def build_wn_conv_discriminator(image_shape: tuple, num_classes: int, seed: int = 0, dtype=None,
                                input_noise=0.3, hidden_noise=0.5, train_hidden_scales=True) -> keras.Model:
    """Weight-normed leaky-ReLU convolutions 32-64-128 (stride 2), a 250-unit layer, K logits; Gaussian noise
    on the input and after each layer (training only)."""
    stack = [keras.Input(image_shape), GaussianNoise(input_noise, seed=seed, dtype=dtype)]
    for i, width in enumerate((32, 64, 128)):
        stack += [WeightNormConv2D(width, activation="leaky_relu", strides=2, train_scale=train_hidden_scales,
                                   dtype=dtype),
                  GaussianNoise(hidden_noise, seed=seed + 1 + i, dtype=dtype)]
    stack += [layers.Flatten(dtype=dtype),
              WeightNormDense(250, activation="relu", train_scale=train_hidden_scales, dtype=dtype, name=FEATURES),
              GaussianNoise(hidden_noise, seed=seed + 4, dtype=dtype),
              WeightNormDense(num_classes, dtype="float32")]
    return keras.Sequential(stack, name="discriminator")


def build_upsampling_generator(z_dim: int, image_shape: tuple, dtype=None) -> keras.Model:
    """A DCGAN-style generator (Salimans et al.'s CIFAR-10 model, narrower): z -> a small grid of 128 channels ->
    transposed convolutions doubling the size and halving the channels -> weight-normed tanh image. Its weights
    grow with the number of doublings, not with the image's area."""
    height, width, channels = image_shape
    doublings = upsamplings(height, width)
    if not doublings:
        raise UserError(f"image size {height}x{width} must have even sides for the conv-gap generator")
    grid = (height >> doublings, width >> doublings)
    stack = [keras.Input((z_dim,)), layers.Dense(grid[0] * grid[1] * 128, dtype=dtype),
             layers.BatchNormalization(dtype=dtype), layers.ReLU(dtype=dtype), layers.Reshape((*grid, 128), dtype=dtype)]
    for i in range(1, doublings):
        stack += [layers.Conv2DTranspose(max(128 >> i, 32), 3, strides=2, padding="same", dtype=dtype),
                  layers.BatchNormalization(dtype=dtype), layers.ReLU(dtype=dtype)]
    stack.append(layers.Conv2DTranspose(channels, 3, strides=2, padding="same", activation="tanh", dtype=dtype))
    return keras.Sequential(stack, name="generator")


def build_gap_discriminator(image_shape: tuple, num_classes: int, seed: int = 0, dtype=None) -> keras.Model:
    """Salimans et al.'s CIFAR-10 discriminator, narrower for CPUs: dropout on the input, weight-normed leaky-ReLU
    convolutions 32-64-128-128 (the last three with stride 2, dropout after each), global average pooling, K
    logits. Its weights do not depend on the image size."""
    stack = [keras.Input(image_shape), layers.Dropout(0.2, seed=seed, dtype=dtype)]
    for i, (width, stride) in enumerate(((32, 1), (64, 2), (128, 2), (128, 2))):
        stack.append(WeightNormConv2D(width, activation="leaky_relu", strides=stride, dtype=dtype))
        if stride == 2:
            stack.append(layers.Dropout(0.5, seed=seed + 1 + i, dtype=dtype))
    stack += [layers.GlobalAveragePooling2D(dtype=dtype, name=FEATURES), WeightNormDense(num_classes, dtype="float32")]
    return keras.Sequential(stack, name="discriminator")


def initialize_from_data(model: keras.Sequential, images):
    """Runs `images` through the model layer by layer, initialising each weight-normalised layer from its input
    (Salimans & Kingma 2016). Models without such layers are left as they are."""
    hidden = images
    for layer in model.layers:
        if isinstance(layer, _WeightNorm):
            layer.initialize_from(hidden)
        hidden = layer(hidden, training=False)


def with_features(discriminator: keras.Model) -> keras.Model:
    """The discriminator as x -> (features, logits), sharing its weights: one forward pass feeds both losses."""
    return keras.Model(discriminator.inputs, [discriminator.get_layer(FEATURES).output, discriminator.outputs[0]])


def class_probabilities(logits):
    """The supervised head: softmax over the K classes."""
    return tf.nn.softmax(logits)


def real_probability(logits):
    """The unsupervised head D(x) = Z/(Z+1), computed as sigmoid(logsumexp(l)) so large logits cannot overflow."""
    return tf.sigmoid(tf.reduce_logsumexp(logits, axis=-1))
