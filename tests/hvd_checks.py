"""Run by tests/test_horovod.py under `horovodrun -np 2 --gloo`: real workers, real allreduce.

Usage: hvd_checks.py DATA_DIR RUN_DIR RESULT_JSON. Rank 0 writes what every rank saw.
"""

import json
import socket
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from sgan import data
from sgan.config import TrainConfig
from sgan.distributed import horovod as distributed
from sgan.models.networks import FEATURES
from sgan.models.pseudo_labels import Teacher
from sgan.training.train import SGAN, descend, make_train_step, train

data_dir, run_dir, result_path = map(Path, sys.argv[1:4])
dist = distributed.init()
assert dist.size == 2, "run me with horovodrun -np 2"
dataset = data.load(data_dir)
labeled = data.choose_labeled(dataset.y_train, 20, 10, seed=0)
results = {}


def flat(variables):
    return tf.concat([tf.reshape(tf.cast(v, tf.float32), [-1]) for v in variables], axis=0)


# 1. The real training loop: after N steps every worker holds the same weights and optimizer state.
config = TrainConfig(iterations=5, batch_size=8, z_dim=16, log_every=1, eval_every=5, checkpoint_every=5)
sgan = train(config, dataset, labeled, run_dir, dist)
gathered = dist.allgather(flat([v.value for v in sgan.variables()])[None]).numpy()
results["weights_max_abs_diff"] = float(np.abs(gathered[0] - gathered[1]).max())


# 2. Without BatchNorm or dropout, 2 workers x batch b make the same updates as 1 worker x batch 2b.
def dense_sgan(z_dim, updates=("supervised", "unsupervised", "generator"), teacher=None):
    keras.utils.set_random_seed(0)
    generator = keras.Sequential([keras.Input((z_dim,)), keras.layers.Dense(28 * 28, activation="tanh"),
                                  keras.layers.Reshape((28, 28, 1))], name="generator")
    discriminator = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                      keras.layers.Dense(32, activation="relu", name=FEATURES), keras.layers.Dense(10)])
    sgan = SGAN(generator, discriminator, {name: keras.optimizers.Adam(1e-2) for name in updates}, teacher=teacher)
    for name, optimizer in sgan.optimizers.items():
        optimizer.build((generator if name == "generator" else discriminator).trainable_variables)
    return sgan


b = 4
two_workers, one_worker = dense_sgan(16), dense_sgan(16)
step_two = make_train_step(two_workers, TrainConfig(batch_size=b, z_dim=16), dist)
step_one = make_train_step(one_worker, TrainConfig(batch_size=2 * b, z_dim=16), distributed.Distribution())
labeled_x, labeled_y = data.scale(dataset.x_train[:6 * b]), dataset.y_train[:6 * b]
unlabeled_x = data.scale(dataset.x_train[100:100 + 6 * b])
for t in range(3):
    whole = slice(2 * b * t, 2 * b * (t + 1))
    mine = slice(2 * b * t + dist.rank * b, 2 * b * t + (dist.rank + 1) * b)
    step_two(labeled_x[mine], labeled_y[mine], unlabeled_x[mine], tf.constant(t, tf.int64))
    step_one(labeled_x[whole], labeled_y[whole], unlabeled_x[whole], tf.constant(t, tf.int64))
difference = flat([v.value for v in two_workers.variables()]) - flat([v.value for v in one_worker.variables()])
results["two_vs_one_worker_max_abs_diff"] = float(tf.reduce_max(tf.abs(difference)))
initial = dense_sgan(16)
results["dense_weights_moved"] = float(tf.reduce_max(tf.abs(
    flat(two_workers.discriminator.trainable_variables) - flat(initial.discriminator.trainable_variables))))

# ... and so does the discriminator's update under feature matching with pseudo-labels on shifted images (each
# worker shifts its slice of the global batch as one worker would), with FreeMatch's adaptive threshold and
# distribution alignment, whose running statistics both hold the same; and with the photo levers (RandAugment's
# views, targets averaged over a mirror, a ramped real/fake term). The generator's feature matching compares
# batch means, so its update is per worker, not global.
fixmatch = dict(z_dim=16, algorithm="feature_matching", pseudo_label_weight=1.0, pseudo_label_mask="adaptive",
                distribution_alignment=True)
levers = dict(augment="randaugment", flip_targets=True, unsupervised_rampup=4)
for name, settings in (("pseudo_label", fixmatch), ("photo_levers", {**fixmatch, **levers})):
    two_workers, one_worker = (dense_sgan(16, ("discriminator", "generator"), Teacher(10, "adaptive", align=True))
                               for _ in range(2))
    step_two = make_train_step(two_workers, TrainConfig(batch_size=b, **settings), dist)
    step_one = make_train_step(one_worker, TrainConfig(batch_size=2 * b, **settings), distributed.Distribution())
    mine = slice(dist.rank * b, (dist.rank + 1) * b)
    step_two(labeled_x[mine], labeled_y[mine], unlabeled_x[mine], tf.constant(2, tf.int64))
    step_one(labeled_x[:2 * b], labeled_y[:2 * b], unlabeled_x[:2 * b], tf.constant(2, tf.int64))
    teachers = [[sgan.teacher.confidence, sgan.teacher.classes] for sgan in (two_workers, one_worker)]
    difference = flat(two_workers.discriminator.variables + teachers[0]) \
        - flat(one_worker.discriminator.variables + teachers[1])
    results[f"{name}_two_vs_one_worker_max_abs_diff"] = float(tf.reduce_max(tf.abs(difference)))

# 3. fp16 loss scaling: an inf on rank 1 alone makes both workers skip the step and halve the scale.
weight = keras.Variable([1.0])
optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1))
optimizer.build([weight])
scale_before = float(optimizer.dynamic_scale.numpy())
poison = tf.constant(np.inf if dist.rank == 1 else 1.0)
with tf.GradientTape() as tape:
    loss = tf.reduce_sum(weight * poison)
descend(dist, [(optimizer, tape, loss, [weight])])
after_inf = [float(weight.numpy()[0]), float(optimizer.dynamic_scale.numpy()) / scale_before]
with tf.GradientTape() as tape:
    loss = tf.reduce_sum(weight * 1.0)
descend(dist, [(optimizer, tape, loss, [weight])])
after_finite = [float(weight.numpy()[0])]
seen = dist.allgather(tf.constant([after_inf + after_finite])).numpy()
results["fp16_per_rank"] = seen.tolist()

# 4. Where each rank ran (the two-node test checks they ran on different nodes).
name = np.frombuffer(socket.gethostname().encode()[:64].ljust(64, b"\0"), np.uint8)
results["hostnames"] = [bytes(row).rstrip(b"\0").decode() for row in dist.allgather(tf.constant(name[None])).numpy()]

if dist.is_chief:
    result_path.write_text(json.dumps(results))
