"""Mixed precision: Keras dtype policies, and loss scaling for float16.

Logits, softmax, the unsupervised head and all losses stay float32 (the discriminator's last layer is
float32); variables and their gradients are float32 under every policy, so Horovod can average them.
"""

import keras
import tensorflow as tf

POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def resolve(precision: str) -> str:
    """`auto` is fp16 on a GPU and fp32 on CPU: bf16 was 10x slower on a CPU without bf16 units and 1.1-1.25x faster
    on one with them, and its effect on accuracy is unmeasured (see docs/distributed.md, Mixed precision)."""
    if precision == "auto":
        return "fp16" if tf.config.list_physical_devices("GPU") else "fp32"
    return precision


def policy(precision: str) -> keras.DTypePolicy:
    return keras.DTypePolicy(POLICIES[resolve(precision)])


def wrap_optimizer(optimizer: keras.optimizers.Optimizer, precision: str) -> keras.optimizers.Optimizer:
    """Under fp16 the loss is scaled, and a step whose gradients hold inf or NaN is skipped."""
    return keras.optimizers.LossScaleOptimizer(optimizer) if resolve(precision) == "fp16" else optimizer
