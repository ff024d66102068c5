"""Which unlabeled images teach the classifier, with what target and weight.

- `threshold` (FixMatch, Sohn et al. 2020): a prediction at least `threshold` confident teaches its class.
- `adaptive` (FreeMatch's self-adaptive threshold, Wang et al. 2023): the threshold is the running mean of the
  model's top probability, starting at 1/C, scaled per class by that class's running mean probability relative to
  the largest, so that a model unsure early on still teaches and a class it rarely predicts gets a lower bar.
- `soft` (SoftMatch, Chen et al. 2023): every prediction teaches, weighted by a Gaussian on how far its confidence
  falls below the running mean (weight 1 above it), with the running variance as its spread.
- distribution alignment (ReMixMatch; SoftMatch's uniform target): the probabilities are divided by their running
  class means and normalised before the target and weight are read, against a collapse onto a few classes.

The running statistics are variables (momentum 0.999, the published code's), read before this step's batch
updates them; the training step averages them across workers after each step, like BatchNorm's, so every worker
holds the same.
"""

import keras
import tensorflow as tf

MOMENTUM = 0.999
SIGMAS = 2.0  # SoftMatch: the weight falls to exp(-2) at two running standard deviations below the mean


class Teacher:
    def __init__(self, num_classes: int, mask: str = "threshold", threshold: float = 0.95, align: bool = False):
        self.mask, self.threshold, self.align = mask, threshold, align
        # Keras variables, as the models' are: checkpointed, broadcast and averaged with them
        self.confidence = keras.Variable(1.0 / num_classes, trainable=False, name="confidence_mean")
        self.spread = keras.Variable(1.0, trainable=False, name="confidence_variance")
        self.classes = keras.Variable([1.0 / num_classes] * num_classes, trainable=False, name="class_means")

    @property
    def variables(self) -> list:
        return [self.confidence, self.spread, self.classes]

    @property
    def stateful(self) -> bool:
        """Whether its running statistics change what it teaches (and so belong in a checkpoint)."""
        return self.mask != "threshold" or self.align

    def __call__(self, teacher_logits, update: bool = True):
        """(targets, weights, confidence) for a batch of the teacher's logits; `update` folds the batch into the
        running statistics afterwards."""
        probabilities = tf.nn.softmax(tf.cast(tf.stop_gradient(teacher_logits), tf.float32))
        aligned = probabilities
        if self.align:
            aligned = probabilities / self.classes
            aligned /= tf.reduce_sum(aligned, axis=-1, keepdims=True)
        confidence, targets = tf.reduce_max(aligned, axis=-1), tf.argmax(aligned, axis=-1)
        if self.mask == "threshold":
            weights = tf.cast(confidence >= self.threshold, tf.float32)
        elif self.mask == "adaptive":
            relative = self.classes / tf.reduce_max(self.classes)
            weights = tf.cast(confidence >= self.confidence * tf.gather(relative, targets), tf.float32)
        else:
            below = tf.minimum(confidence - self.confidence, 0.0)
            weights = tf.exp(-tf.square(below) / (2.0 * self.spread / SIGMAS**2))
        if update:
            count = tf.cast(tf.size(confidence), tf.float32)
            variance = tf.math.reduce_variance(confidence) * count / tf.maximum(count - 1.0, 1.0)
            for variable, batch in ((self.confidence, tf.reduce_mean(confidence)), (self.spread, variance),
                                    (self.classes, tf.reduce_mean(probabilities, axis=0))):
                variable.assign(MOMENTUM * variable + (1.0 - MOMENTUM) * batch)
        return targets, weights, confidence
