"""The three SGAN losses, written on logits in their stable log-sum-exp forms.

With L = logsumexp(l) and D(x) = sigmoid(L):  -log D(x) = softplus(-L)  and  -log(1 - D(x)) = softplus(L).
"""

import tensorflow as tf


def supervised_loss(labels, logits):
    """Cross-entropy of the softmax head on labeled examples."""
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


def unsupervised_loss(real_logits, fake_logits):
    """Binary cross-entropy of the real/fake head: real images target 1, generated images target 0."""
    real = tf.reduce_mean(tf.nn.softplus(-tf.reduce_logsumexp(real_logits, axis=-1)))
    fake = tf.reduce_mean(tf.nn.softplus(tf.reduce_logsumexp(fake_logits, axis=-1)))
    return 0.5 * (real + fake)


def generator_loss(fake_logits):
    """Non-saturating generator loss: -log D(G(z)), i.e. generated images labeled real."""
    return tf.reduce_mean(tf.nn.softplus(-tf.reduce_logsumexp(fake_logits, axis=-1)))


def feature_matching_loss(real_features, fake_features):
    """Salimans et al. 2016: || mean f(x_real) - mean f(G(z)) ||^2 over the batch, f an intermediate layer of D.

    The generator matches the statistics the discriminator finds useful instead of fooling it outright,
    which keeps the classifier's features sharp for semi-supervised learning. In float32 under every precision
    policy, as every loss is: float16 features would make a float16 loss the loss scale cannot multiply.
    """
    real_features, fake_features = tf.cast(real_features, tf.float32), tf.cast(fake_features, tf.float32)
    gap = tf.reduce_mean(real_features, axis=0) - tf.reduce_mean(fake_features, axis=0)
    return tf.reduce_mean(tf.square(gap))



def pseudo_label_loss(teacher_logits, student_logits, threshold: float):
    """FixMatch (Sohn et al. 2020) on unlabeled images: where the discriminator's prediction on an image is at
    least `threshold` confident, its class becomes the target for a shifted copy of that image.

    This teaches the classifier from unlabeled data directly, alongside the GAN term, whose signal fades once the
    discriminator tells generated images apart (docs/benchmarks.md, "The improved preset").
    """
    probabilities = tf.nn.softmax(tf.stop_gradient(teacher_logits))
    confident = tf.cast(tf.reduce_max(probabilities, axis=-1) >= threshold, student_logits.dtype)
    targets = tf.argmax(probabilities, axis=-1)
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=student_logits)
    return tf.reduce_mean(confident * cross_entropy)


def pseudo_label_signal(teacher_logits, threshold: float) -> dict:
    """How much the pseudo-label term teaches: the fraction of the unlabeled batch at least `threshold` confident
    (the images it teaches from) and the mean confidence. A threshold the model never reaches is silent."""
    confidence = tf.reduce_max(tf.nn.softmax(tf.cast(tf.stop_gradient(teacher_logits), tf.float32)), axis=-1)
    return {"pseudo_label_rate": tf.reduce_mean(tf.cast(confidence >= threshold, tf.float32)),
            "pseudo_label_confidence": tf.reduce_mean(confidence)}
