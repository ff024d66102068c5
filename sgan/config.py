"""Training configuration: one typed config, and named presets instead of scattered flags."""

import dataclasses
from dataclasses import dataclass

from sgan.errors import UserError

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
POSITIVE = ("iterations", "batch_size", "learning_rate", "z_dim", "checkpoint_every", "log_every", "eval_every")


@dataclass(frozen=True)
class TrainConfig:
    iterations: int = 6000
    batch_size: int = 32  # per worker
    learning_rate: float = 1e-3  # Adam, for each of the three updates
    beta_1: float = 0.9
    z_dim: int = 100
    seed: int = 0  # fixes initial weights, data order and noise (the labeled subset's seed is the manifest's)
    checkpoint_every: int = 1000
    log_every: int = 50
    eval_every: int = 1000  # test accuracy to TensorBoard, for watching only: nothing is selected on it
    precision: str = "fp32"  # fp32 | bf16 | fp16 | auto
    scale_lr: bool = False  # multiply the learning rate by the worker count (Goyal et al. 2017)
    warmup_iterations: int = 0  # ... reaching the scaled rate linearly over this many iterations

    def __post_init__(self):
        for name in POSITIVE:
            if not getattr(self, name) > 0:
                raise UserError(f"{name}={getattr(self, name)} must be positive")
        if self.warmup_iterations < 0:
            raise UserError(f"warmup_iterations={self.warmup_iterations} must be >= 0")
        if self.precision not in PRECISIONS:
            raise UserError(f"precision={self.precision!r} must be one of {', '.join(PRECISIONS)}")
        if not 0 <= self.beta_1 < 1:
            raise UserError(f"beta_1={self.beta_1} must be in [0, 1)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS = {
    # The reference Keras SGAN (90.67% on MNIST with 100 labels): batch 32, Adam 1e-3, 6,000 iterations.
    "seed": TrainConfig(),
}


def preset(name: str, **overrides) -> TrainConfig:
    """A named preset with some fields replaced (None values are ignored)."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(overrides) - known
    if unknown:
        raise UserError(f"unknown training settings: {', '.join(sorted(unknown))}")
    return dataclasses.replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})
