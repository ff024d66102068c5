"""Will training fit in memory? An estimate from the architecture's shapes, made before any worker starts, so a
size that cannot fit is refused in one line instead of the kernel killing the job.

The estimate counts what grows with the image and the batch: weights with their gradients and Adam moments
(and the averaged discriminator), and the activations a step keeps for its backward pass. It was checked
against measured peak memory (docs/benchmarks.md) and errs high.
"""

import math

from sgan.config import TrainConfig, for_images
from sgan.errors import UserError
from sgan.images import upsamplings

BYTES = 4  # float32 weights, gradients and moments (mixed precision keeps float32 variables)
PROCESS_BASE = 1.0e9  # TensorFlow and the input pipeline in one worker, measured at MNIST's size
ACTIVATION_COPIES = 4  # pre-activation, activation, noise or normalisation output, and its gradient


def parameters(config: TrainConfig, image_shape: tuple, num_classes: int) -> dict:
    """Weights of the generator and the discriminator (biases and scales included, to within a few percent)."""
    config = for_images(config, image_shape)
    height, width, channels = image_shape
    pixels, cells = height * width * channels, math.ceil(height / 8) * math.ceil(width / 8)
    convs = 9 * channels * 32 + 9 * 32 * 64 + 9 * 64 * 128
    if config.architecture == "conv-gap":  # sgan.models.build_upsampling_generator, build_gap_discriminator
        doublings = upsamplings(height, width)
        generator = config.z_dim * (height >> doublings) * (width >> doublings) * 128 + 9 * channels * max(
            128 >> (doublings - 1), 32) + 9 * sum(
            max(128 >> i, 32) * max(128 >> (i - 1), 32) for i in range(1, doublings))
        discriminator = 9 * (channels * 32 + 32 * 64 + 64 * 128 + 128 * 128) + 128 * num_classes
    elif config.architecture == "conv":
        generator = config.z_dim * height // 4 * width // 4 * 256 + 9 * 256 * 128 + 9 * 128 * 64 + 9 * 64 * channels
        discriminator = convs + cells * 128 * num_classes
    else:  # Salimans et al.'s MLP generator, whose last layer makes every pixel
        generator = config.z_dim * 500 + 500 * 500 + 500 * pixels
        discriminator = convs + cells * 128 * 250 + 250 * num_classes if config.architecture == "wn-conv" else \
            pixels * 1000 + 1000 * 500 + 500 * 250 + 2 * 250 * 250 + 250 * num_classes
    return {"generator": generator, "discriminator": discriminator}


def activations_per_image(image_shape: tuple) -> int:
    """Floats a forward pass keeps per image: the discriminator's feature maps (strides 2, 4, 8) and the
    generator's (its last two resolutions)."""
    height, width, _ = image_shape
    area = height * width
    return area // 4 * 32 + area // 16 * 64 + area // 64 * 128 + area // 4 * 128 + area * 64


def estimate(config: TrainConfig, image_shape: tuple, num_classes: int, workers_here: int = 1) -> dict:
    """Bytes one host needs: {'models', 'activations', 'total'}."""
    counts = parameters(config, image_shape, num_classes)
    discriminator_copies = (2 if config.algorithm == "reference" else 1) * 3 + 1 + (config.ema_decay > 0)
    models = BYTES * (4 * counts["generator"] + discriminator_copies * counts["discriminator"])
    images_per_step = config.batch_size * (2 + config.gan + bool(config.pseudo_label_weight))  # labeled, real, fake, shifted
    activations = BYTES * ACTIVATION_COPIES * images_per_step * activations_per_image(image_shape)
    per_worker = models + activations + PROCESS_BASE
    return {"models": models, "activations": activations, "total": per_worker * workers_here}


def available() -> int | None:
    """MemAvailable from /proc/meminfo (Linux); None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def check(config: TrainConfig, image_shape: tuple, num_classes: int, workers_here: int = 1):
    """Raises one line (needed, available, what to change) when training cannot fit in this host's memory."""
    free = available()
    needed = estimate(config, image_shape, num_classes, workers_here)
    if free is None or needed["total"] <= free:
        return
    height, width, channels = image_shape
    gb = 1e9
    raise UserError(
        f"training {height}x{width}x{channels} images with batch {config.batch_size} x {workers_here} worker(s) here "
        f"needs about {needed['total'] / gb:.1f} GB (weights and optimizer states {needed['models'] / gb:.1f} GB, "
        f"activations {needed['activations'] / gb:.1f} GB per worker), and {free / gb:.1f} GB is available: prepare "
        "with a smaller --image-size (the default brings the longer side to 32 pixels), or train with a smaller "
        "--batch-size or fewer workers per host")
