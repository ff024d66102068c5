"""`sgan train`'s options: one spec for the command line and the Horovod workers it starts, and the TrainConfig
they make together with the run's manifest."""

import argparse
from pathlib import Path

from sgan.config import (ARCHITECTURES, AUGMENTATIONS, DEFAULT_PRESET, OWN_DATA_TIME_BUDGET, PRECISIONS, PRESET_HELP,
                         PRESETS, TrainConfig, for_images, preset)

# Options that map onto TrainConfig fields (None: keep the preset's value).
TRAIN_OPTIONS = {
    "--iterations": dict(type=int, help="with --time-budget, the most it may run"),
    "--time-budget": dict(type=float, metavar="SECONDS", help="train for about this long: the iteration count "
                          "(and the learning rate's decay) is set from the speed measured over the first iterations"),
    "--batch-size": dict(type=int, help="per worker; the global batch is workers x this (default: the preset's "
                         "global batch split over the workers)"),
    "--checkpoint-every": dict(type=int, help="iterations between checkpoints (default: the preset's); a killed run "
                               "resumes from the last one"),
    "--eval-every": dict(type=int, help="iterations between validation measurements, with a validation split "
                         "(default: the preset's)"),
    "--precision": dict(choices=PRECISIONS, help="fp32 (default), bf16 or fp16 mixed precision, or auto (the GPU's "
                        "best)"),
    "--scale-lr": dict(action="store_const", const=True, help="multiply the learning rate by the worker count"),
    "--warmup-iterations": dict(type=int, help="reach the scaled learning rate over this many iterations"),
    "--warm-start": dict(metavar="FOLDER", help="start from this model's weights: a published version, a models "
                         "root (its latest) or a trained run folder, for the same classes and images"),
    "--architecture": dict(choices=ARCHITECTURES, help="the networks; auto (the improved preset's) picks wn-conv for "
                           "grey images up to 32 pixels a side, conv-gap for colour or larger ones"),
    "--augment": dict(choices=AUGMENTATIONS, help="shifts (digits), photos (flips, shifts, colour, cut-out) or "
                      "randaugment (as photos, with RandAugment for the pseudo-labels' student); auto (the improved "
                      "preset's) picks shifts for grey images up to 32 pixels a side, photos otherwise"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", type=Path, required=True, help="a prepared run folder (`sgan prepare`)")
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=PRESETS, help=PRESET_HELP)
    for option, spec in TRAIN_OPTIONS.items():
        parser.add_argument(option, **spec)


def _overrides(args) -> dict:
    return {option[2:].replace("-", "_"): getattr(args, option[2:].replace("-", "_")) for option in TRAIN_OPTIONS}


def config(args, manifest: dict) -> TrainConfig:
    """The preset with the options given, fitted to the run's images; a user's own images without an iteration
    count or time budget train for OWN_DATA_TIME_BUDGET seconds."""
    overrides = _overrides(args)
    if manifest["labeled_by"] == "source" and args.iterations is None and args.time_budget is None:
        overrides["time_budget"] = OWN_DATA_TIME_BUDGET
    cfg = preset(args.preset, seed=manifest["seed"], **overrides)
    return for_images(cfg, tuple(manifest["dataset"]["image_shape"]))


def as_arguments(args) -> list[str]:
    """The options given, as a worker's command line takes them."""
    words = ["--preset", args.preset]
    for option, value in zip(TRAIN_OPTIONS, _overrides(args).values()):
        words += [option] if value is True else [option, str(value)] if value is not None else []
    return words
