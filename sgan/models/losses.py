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



def pseudo_label_loss(targets, weights, student_logits):
    """FixMatch (Sohn et al. 2020) on unlabeled images: the teacher's class for an image (sgan.models.pseudo_labels:
    which images teach, and how much) becomes the target for an augmented copy of that image, weighted.

    This teaches the classifier from unlabeled data directly, alongside the GAN term, whose signal fades once the
    discriminator tells generated images apart (docs/benchmarks.md, "The improved preset").
    """
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets,
                                                                   logits=tf.cast(student_logits, tf.float32))
    return tf.reduce_mean(tf.stop_gradient(weights) * cross_entropy)
