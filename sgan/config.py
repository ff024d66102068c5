"""Training configuration: one typed config, and named presets instead of scattered flags."""

import dataclasses
from dataclasses import dataclass

from sgan.errors import UserError

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
ALGORITHMS = ("reference", "feature_matching")
ARCHITECTURES = ("conv", "mlp", "wn-conv", "conv-gap", "auto")  # see sgan.models.networks; auto: see for_images
AUGMENTATIONS = ("shifts", "photos", "randaugment", "auto")  # see sgan.data.augment; auto: see for_images
PSEUDO_LABEL_MASKS = ("threshold", "adaptive", "soft", "auto")  # see sgan.models.pseudo_labels; auto: for_images
POSITIVE = ("iterations", "batch_size", "learning_rate", "z_dim", "checkpoint_every", "log_every", "eval_every")


@dataclass(frozen=True)
class TrainConfig:
    iterations: int = 6000  # with a time budget: the most it may run
    time_budget: float = 0.0  # > 0: seconds of training; the count that fits is set after the first ones (budget.py)
    batch_size: int = 32  # per worker
    learning_rate: float = 1e-3  # Adam, for each update
    beta_1: float = 0.9
    decay_from: float = 1.0  # the learning rate decays linearly to 0 from this fraction of the iterations on
    z_dim: int = 100
    seed: int = 0  # fixes initial weights, data order and noise (the labeled subset's seed is the manifest's)
    checkpoint_every: int = 1000
    log_every: int = 50
    eval_every: int = 1000  # validation accuracy to the history and TensorBoard (if validation > 0)
    precision: str = "fp32"  # fp32 | bf16 | fp16 | auto
    scale_lr: bool = False  # multiply the learning rate by the worker count (Goyal et al. 2017)
    warmup_iterations: int = 0  # ... reaching the scaled rate linearly over this many iterations
    algorithm: str = "reference"  # reference: 3 updates, non-saturating G | feature_matching: D + G updates
    architecture: str = "conv"  # conv (the reference's) | mlp (Salimans et al.'s) | wn-conv (weight-normalised conv)
    # | conv-gap (convolutions and global average pooling, for colour and larger images) | auto (by shape)
    input_noise: float = 0.0  # stddev of Gaussian noise on the discriminator's input (mlp, wn-conv)
    hidden_noise: float = 0.0  # ... and after each of its hidden layers (mlp, wn-conv)
    data_init: bool = False  # initialise weight-normalised layers from data, and keep hidden layers' scales fixed
    ema_decay: float = 0.0  # > 0: evaluate and export an exponential moving average of D's weights
    ema_warmup: bool = False  # ... whose decay rises with the step, min(ema_decay, (1 + t) / (10 + t)), so that a
    # short run's average does not keep its random start (TensorFlow's ExponentialMovingAverage num_updates)
    balanced_labeled: bool = False  # every global labeled batch holds the same number of each class
    validation: int = 0  # training images held out (unlabeled and unused) to watch accuracy during training
    pseudo_label_weight: float = 0.0  # > 0: FixMatch term on unlabeled images (feature_matching; sgan.models.losses)
    pseudo_label_threshold: float = 0.95  # ... counting only predictions at least this confident
    pseudo_label_mask: str = "threshold"  # ... that confident (threshold) | FreeMatch's adaptive threshold
    # (adaptive) | SoftMatch's Gaussian weight on confidence (soft): sgan.models.pseudo_labels | auto (by shape)
    distribution_alignment: bool = False  # ... on probabilities divided by their running class means (ReMixMatch)
    flip_targets: bool = False  # ... whose targets average the teacher's probabilities on the image and its mirror
    max_shift: int = 2  # ... whose targets are learnt on copies shifted by up to this many pixels
    augment: str = "shifts"  # shifts (digits) | photos (flips, shifts, colour, cut-out) | randaugment (photos' weak
    # view, RandAugment's strong one) | auto (by shape): sgan.data.augment
    warm_start: str = ""  # a trained model's folder whose weights the run starts from (sgan.training.warm)
    unsupervised_weight: float | str = 1.0  # the real/fake term's weight in D's loss (feature_matching) | auto
    unsupervised_rampup: int = 0  # ... reached linearly over this many iterations, from 0
    gan: bool = True  # False: no generator and no real/fake term, to measure what the GAN adds (feature_matching)

    def __post_init__(self):
        for name in POSITIVE:
            if not getattr(self, name) > 0:
                raise UserError(f"{name}={getattr(self, name)} must be positive")
        for name in ("warmup_iterations", "unsupervised_rampup"):
            if getattr(self, name) < 0:
                raise UserError(f"{name}={getattr(self, name)} must be >= 0")
        if self.precision not in PRECISIONS:
            raise UserError(f"precision={self.precision!r} must be one of {', '.join(PRECISIONS)}")
        if not 0 <= self.beta_1 < 1:
            raise UserError(f"beta_1={self.beta_1} must be in [0, 1)")
        if not 0 <= self.decay_from <= 1:
            raise UserError(f"decay_from={self.decay_from} must be in [0, 1]")
        if not 0 <= self.ema_decay < 1:
            raise UserError(f"ema_decay={self.ema_decay} must be in [0, 1)")
        if self.unsupervised_weight != "auto" and not isinstance(self.unsupervised_weight, (int, float)):
            raise UserError(f"unsupervised_weight={self.unsupervised_weight!r} must be a number or 'auto'")
        if min(self.input_noise, self.hidden_noise, self.validation, self.pseudo_label_weight, self.max_shift,
               self.time_budget, 0 if self.unsupervised_weight == "auto" else self.unsupervised_weight) < 0:
            raise UserError("input_noise, hidden_noise, validation, pseudo_label_weight, max_shift, time_budget and "
                            "unsupervised_weight must be >= 0")
        if not 0 < self.pseudo_label_threshold <= 1:
            raise UserError(f"pseudo_label_threshold={self.pseudo_label_threshold} must be in (0, 1]")
        if self.pseudo_label_weight and self.algorithm != "feature_matching":
            raise UserError("pseudo_label_weight needs algorithm='feature_matching'")
        if not self.gan and self.algorithm != "feature_matching":
            raise UserError("gan=False needs algorithm='feature_matching'")
        for name, allowed in (("algorithm", ALGORITHMS), ("architecture", ARCHITECTURES),
                              ("augment", AUGMENTATIONS), ("pseudo_label_mask", PSEUDO_LABEL_MASKS)):
            if getattr(self, name) not in allowed:
                raise UserError(f"{name}={getattr(self, name)!r} must be one of {', '.join(allowed)}")
        if not self.pseudo_label_weight and (self.pseudo_label_mask not in ("threshold", "auto")
                                             or self.distribution_alignment
                                             or self.flip_targets):
            raise UserError(f"pseudo_label_mask={self.pseudo_label_mask!r}, distribution_alignment="
                            f"{self.distribution_alignment} and flip_targets={self.flip_targets} shape the "
                            "pseudo-labels: they need pseudo_label_weight > 0")
        if self.flip_targets and self.augment == "shifts":
            raise UserError("flip_targets=True mirrors images, which augment='shifts' (digits) does not: use it with "
                            "photos")
        if self.ema_warmup and not self.ema_decay:
            raise UserError("ema_warmup=True shapes the averaged discriminator: it needs ema_decay > 0")
        if self.unsupervised_rampup and not (self.gan and self.algorithm == "feature_matching"):
            raise UserError("unsupervised_rampup ramps the real/fake term of feature matching: it needs gan=True and "
                            "algorithm='feature_matching'")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS = {
    # The reference Keras SGAN (90.67% on MNIST with 100 labels): batch 32, Adam 1e-3, 6,000 iterations.
    "seed": TrainConfig(),
    # Feature matching (Salimans et al. 2016), a weight-normalised conv D (measured against their MLP), Gaussian noise,
    # an EMA of D, class-balanced labeled batches, Adam beta1 0.5, a linearly decaying rate, and confident
    # predictions on unlabeled images taught to shifted copies (FixMatch): see docs/benchmarks.md, "The improved
    # preset".
    "improved": TrainConfig(
        iterations=10000, batch_size=100, learning_rate=3e-3, beta_1=0.5, decay_from=0.5,
        algorithm="feature_matching", architecture="auto", input_noise=0.3, hidden_noise=0.5, ema_decay=0.999,
        balanced_labeled=True, validation=5000, pseudo_label_weight=1.0, pseudo_label_threshold=0.98, augment="auto",
        pseudo_label_mask="auto", unsupervised_weight="auto", checkpoint_every=1000, log_every=100, eval_every=500,
    ),
}


DEFAULT_PRESET = "improved"
# Training on the user's own images without an iteration count: about this many seconds (a time budget), so that a
# first run ends in a known time on any machine.
OWN_DATA_TIME_BUDGET = 900.0
PRESET_HELP = ("improved (default): feature matching with a weight-normalised conv discriminator, an averaged "
               "discriminator and pseudo-labels on shifted unlabeled images; seed: the reference Keras SGAN, kept as "
               "the baseline to compare with")


# What `auto` becomes. Digits: what reaches 98.5% on MNIST with 100 labels. Photos: a network whose weights do not
# grow with the image's area, FixMatch's views, FreeMatch's adaptive threshold and a smaller real/fake term, which
# beat the digits' settings on photos (docs/benchmarks.md, "Photos": pseudo-label levers, on validation images).
AUTO = {
    "digits": {"architecture": "wn-conv", "augment": "shifts", "pseudo_label_mask": "threshold",
               "unsupervised_weight": 1.0},
    "photos": {"architecture": "conv-gap", "augment": "photos", "pseudo_label_mask": "adaptive",
               "unsupervised_weight": 0.3},
}


def for_images(config: TrainConfig, image_shape: tuple) -> TrainConfig:
    """`auto` made concrete for these images (and written so to config.json): grey images up to 32 pixels a side
    are digits, colour or larger images photos (AUTO). `--architecture` and `--augment` override them."""
    height, width, channels = image_shape
    chosen = AUTO["digits" if channels == 1 and max(height, width) <= 32 else "photos"]
    auto = {name: value for name, value in chosen.items() if getattr(config, name) == "auto"}
    if "pseudo_label_mask" in auto and not config.pseudo_label_weight:
        auto["pseudo_label_mask"] = "threshold"  # no pseudo-labels: nothing to mask
    return dataclasses.replace(config, **auto) if auto else config


def preset(name: str, **overrides) -> TrainConfig:
    """A named preset with some fields replaced (None values are ignored)."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(overrides) - known
    if unknown:
        raise UserError(f"unknown training settings: {', '.join(sorted(unknown))}")
    return dataclasses.replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})
