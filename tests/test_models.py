from decimal import Decimal, getcontext

import numpy as np
import pytest
import tensorflow as tf

from sgan.config import for_images, preset
from sgan.errors import UserError
from sgan.models import losses
from sgan.models.networks import (build_discriminator, build_generator, class_probabilities, initialize_from_data,
                                  real_probability, with_features)
from sgan.models.pseudo_labels import Teacher


@pytest.mark.parametrize("architecture", ["conv", "mlp", "wn-conv", "conv-gap"])
@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3), (24, 32, 3)])
def test_output_shapes(shape, architecture):
    generator = build_generator(100, shape, architecture=architecture)
    discriminator = build_discriminator(shape, 10, architecture=architecture)
    images = generator(tf.random.normal((4, 100)))
    assert images.shape == (4, *shape)
    assert float(tf.reduce_min(images)) >= -1 and float(tf.reduce_max(images)) <= 1
    assert discriminator(images).shape == (4, 10)
    features, logits = with_features(discriminator)(images)
    assert features.shape[0] == 4 and np.allclose(logits, discriminator(images), atol=1e-5)


@pytest.mark.parametrize("architecture", ["mlp", "wn-conv"])
def test_data_dependent_init_gives_unit_variance_pre_activations(architecture):
    images = tf.random.uniform((200, 28, 28, 1), -1, 1, seed=0)
    discriminator = build_discriminator((28, 28, 1), 10, architecture=architecture, input_noise=0.3, hidden_noise=0.5)
    initialize_from_data(discriminator, images)
    logits = discriminator(images, training=False)
    np.testing.assert_allclose(tf.math.reduce_std(logits, axis=0), 1.0, rtol=1e-3)
    np.testing.assert_allclose(tf.reduce_mean(logits, axis=0), 0.0, atol=1e-3)


def test_conv_gap_weights_do_not_grow_with_the_image_area():
    counts = {shape: (build_generator(100, shape, architecture="conv-gap").count_params(),
                      build_discriminator(shape, 7, architecture="conv-gap").count_params())
              for shape in ((24, 32, 3), (64, 64, 3), (192, 256, 3))}
    assert len({d for _, d in counts.values()}) == 1  # the discriminator: identical at every size
    assert max(g for g, _ in counts.values()) < 1.5 * min(g for g, _ in counts.values())  # 64x the area
    with pytest.raises(UserError, match="15x15 must have even sides"):
        build_generator(100, (15, 15, 3), architecture="conv-gap")


@pytest.mark.parametrize("shape, chosen", [((28, 28, 1), "wn-conv"), ((32, 32, 1), "wn-conv"),
                                           ((24, 32, 3), "conv-gap"), ((48, 64, 1), "conv-gap")])
def test_auto_architecture_follows_the_image_shape_and_can_be_overridden(shape, chosen):
    assert preset("improved").architecture == "auto"
    assert for_images(preset("improved"), shape).architecture == chosen
    assert for_images(preset("improved", architecture="wn-conv"), shape).architecture == "wn-conv"
    assert for_images(preset("seed"), shape).architecture == "conv"  # the reference stays the reference


def test_generator_rejects_sizes_not_divisible_by_4():
    with pytest.raises(UserError, match="30x30 must be divisible by 4"):
        build_generator(100, (30, 30, 1))


LOGITS = np.array(
    [[0.0] * 10, [100.0] + [0.0] * 9, [1000.0] * 10, [-1000.0] * 10, [-50.0, 30.0] + [-3.0] * 8, list(range(10))],
    dtype=np.float64,
)


def _reference(logits):
    """Z = sum exp(l) and D(x) = Z / (Z + 1), in 50-digit decimal arithmetic: no overflow, no shortcut."""
    getcontext().prec = 50
    z = [sum(Decimal(float(v)).exp() for v in row) for row in logits]
    return z, [zi / (zi + 1) for zi in z]


def test_real_probability_matches_high_precision_reference_without_overflow():
    got = real_probability(tf.constant(LOGITS, tf.float32)).numpy()
    _, d = _reference(LOGITS)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, np.array(d, dtype=np.float64), rtol=1e-6, atol=1e-30)
    assert got[2] == 1.0 and got[3] == 0.0


def test_class_probabilities_sum_to_one():
    probabilities = class_probabilities(tf.constant(LOGITS, tf.float32)).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)


def _mean(values):
    return float(sum(values) / len(values))


@pytest.mark.parametrize("rows", [[0, 5], [1, 4], [2, 3]], ids=["moderate", "large", "huge"])
def test_losses_equal_binary_cross_entropy_and_stay_finite(rows):
    logits = LOGITS[rows]
    z, d = _reference(logits)
    minus_log_d = [((zi + 1) / zi).ln() for zi in z]  # -log D(x)
    minus_log_not_d = [(zi + 1).ln() for zi in z]  # -log(1 - D(x))
    as_tf = tf.constant(logits, tf.float32)
    np.testing.assert_allclose(
        losses.unsupervised_loss(as_tf, as_tf).numpy(), 0.5 * (_mean(minus_log_d) + _mean(minus_log_not_d)), rtol=1e-5
    )
    np.testing.assert_allclose(losses.generator_loss(as_tf).numpy(), _mean(minus_log_d), rtol=1e-5, atol=1e-7)
    assert np.isfinite(losses.supervised_loss(tf.constant([0, 1]), as_tf).numpy())


def test_pseudo_label_loss_counts_only_confident_predictions_and_never_moves_the_teacher():
    teacher = tf.constant([[10.0, 0.0, 0.0], [0.1, 0.0, 0.0]])  # confident class 0; unsure
    student = tf.Variable([[0.0, 2.0, 0.0], [0.0, 0.0, 5.0]])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(teacher)
        loss = losses.pseudo_label_loss(*Teacher(3, threshold=0.95)(teacher)[:2], student)
    # Only row 0 counts, with target 0: its cross-entropy, averaged over both rows.
    expected = -np.log(np.exp(0.0) / (np.exp(0.0) + np.exp(2.0) + 1.0)) / 2
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-6)
    assert tape.gradient(loss, teacher) is None
    np.testing.assert_array_equal(tape.gradient(loss, student).numpy()[1], 0.0)
    assert losses.pseudo_label_loss(*Teacher(3, threshold=1.0)(teacher)[:2], student).numpy() == 0.0


def test_the_teachers_threshold_adaptive_soft_and_aligned():
    logits = tf.constant([[10.0, 0.0, 0.0], [0.1, 0.0, 0.0]])  # confident class 0; unsure
    top = np.array([np.exp(10) / (np.exp(10) + 2), np.exp(0.1) / (np.exp(0.1) + 2)])
    targets, weights, confidence = Teacher(3, threshold=0.95)(logits)
    assert targets.numpy().tolist() == [0, 0] and weights.numpy().tolist() == [1.0, 0.0]
    np.testing.assert_allclose(confidence.numpy(), top, rtol=1e-6)

    adaptive = Teacher(3, "adaptive")  # FreeMatch starts at 1/C: the unsure prediction (0.36) teaches too
    assert adaptive(logits)[1].numpy().tolist() == [1.0, 1.0]
    np.testing.assert_allclose(adaptive.confidence.numpy(), 0.999 / 3 + 0.001 * top.mean(), rtol=1e-6)
    np.testing.assert_allclose(adaptive.classes.numpy()[1], 0.999 / 3 + 0.001 * (1 / (np.exp(10) + 2) + 1 / (
        np.exp(0.1) + 2)) / 2, rtol=1e-6)
    adaptive.confidence.assign(0.5)  # a running mean of 0.5: only the confident one passes
    assert adaptive(logits, update=False)[1].numpy().tolist() == [1.0, 0.0]
    adaptive.classes.assign([0.8, 0.1, 0.1])  # class 0, predicted most, keeps the whole bar; a rare class a lower one
    assert adaptive(tf.constant([[0.0, 0.1, 0.0]]), update=False)[1].numpy().tolist() == [1.0]

    soft = Teacher(3, "soft")
    soft.confidence.assign(0.9)
    soft.spread.assign(0.01)  # weight 1 at or above the mean, Gaussian below it with 2 sigmas = 0.2
    np.testing.assert_allclose(soft(logits, update=False)[1].numpy(),
                               [1.0, np.exp(-(top[1] - 0.9) ** 2 / (2 * 0.01 / 4))], rtol=1e-5)

    aligned = Teacher(3, threshold=0.5, align=True)  # a model that predicts class 0 four times too often
    aligned.classes.assign([0.8, 0.1, 0.1])
    targets, weights, confidence = aligned(tf.math.log(tf.constant([[0.5, 0.3, 0.2]])), update=False)
    assert targets.numpy().tolist() == [1] and weights.numpy().tolist() == [1.0]  # 0.625 : 3 : 2, normalised
    np.testing.assert_allclose(confidence.numpy(), [3 / 5.625], rtol=1e-6)


def test_pseudo_label_settings_that_contradict_each_other_are_refused():
    with pytest.raises(UserError, match="pseudo_label_mask='often' must be one of threshold, adaptive, soft, auto"):
        preset("improved", pseudo_label_mask="often")
    with pytest.raises(UserError, match="they need pseudo_label_weight > 0"):
        preset("improved", pseudo_label_weight=0.0, pseudo_label_mask="soft")
    with pytest.raises(UserError, match="they need pseudo_label_weight > 0"):
        preset("improved", pseudo_label_weight=0.0, distribution_alignment=True)
    with pytest.raises(UserError, match="they need pseudo_label_weight > 0"):
        preset("improved", pseudo_label_weight=0.0, flip_targets=True, augment="photos")
    with pytest.raises(UserError, match="flip_targets=True mirrors images, which augment='shifts'"):
        for_images(preset("improved", flip_targets=True), (28, 28, 1))  # digits' auto is shifts
    with pytest.raises(UserError, match="ema_warmup=True .* needs ema_decay > 0"):
        preset("improved", ema_warmup=True, ema_decay=0.0)
    with pytest.raises(UserError, match="unsupervised_rampup .* needs gan=True"):
        preset("improved", unsupervised_rampup=100, gan=False)
    with pytest.raises(UserError, match="unsupervised_rampup=-1 must be >= 0"):
        preset("improved", unsupervised_rampup=-1)


def test_pseudo_label_quality_splits_validation_accuracy_by_what_would_teach():
    from sgan.evaluation.evaluate import pseudo_label_quality

    logits = np.array([[9, 0, 0], [0, 9, 0], [0, 9, 0], [1, 0, 0], [0, 0, 1]], np.float32)  # 3 confident, 2 not
    labels = np.array([0, 1, 2, 0, 1])

    def discriminator(images, training):
        assert not training
        return tf.constant(logits[: len(images)])

    images = np.zeros((5, 4, 4, 1), np.uint8)
    teacher = Teacher(3, threshold=0.95)
    assert pseudo_label_quality(discriminator, images, labels, teacher) == {
        "validation_pseudo_label_rate": pytest.approx(0.6), "validation_pseudo_label_accuracy": pytest.approx(2 / 3),
        "validation_left_out_accuracy": 0.5}
    assert "validation_pseudo_label_accuracy" not in pseudo_label_quality(discriminator, images, labels,
                                                                          Teacher(3, threshold=1.0))
    adaptive = Teacher(3, "adaptive")
    pseudo_label_quality(discriminator, images, labels, adaptive)
    assert adaptive.confidence.numpy() == np.float32(1 / 3)  # read, not updated


def test_gaussian_noise_is_gaussian_with_its_stddev_fresh_each_call_and_off_at_inference(tmp_path):
    import keras

    from sgan.models.networks import GaussianNoise

    layer = GaussianNoise(0.5, seed=3)
    x = tf.fill((100, 1001), 2.0)  # an odd count: the last pair is cut in half
    first, second = layer(x, training=True).numpy() - 2.0, layer(x, training=True).numpy() - 2.0
    assert abs(first.mean()) < 0.005 and abs(first.std() - 0.5) < 0.005
    assert abs(((first / first.std()) ** 4).mean() - 3.0) < 0.05  # a normal's kurtosis, not a uniform's 1.8
    assert abs((np.abs(first) < 0.5).mean() - 0.6827) < 0.005 and np.abs(first).max() <= 0.5 * 4.86  # 1 sigma; the tails
    assert abs(np.corrcoef(first.ravel(), second.ravel())[0, 1]) < 0.01  # a new draw every call
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())
    again = GaussianNoise(0.5, seed=3)
    np.testing.assert_array_equal(again(x, training=True).numpy() - 2.0, first)  # a seed repeats
    model = keras.Sequential([keras.Input((4,)), GaussianNoise(0.3, seed=1)])
    model.save(tmp_path / "noise.keras")
    assert isinstance(keras.saving.load_model(tmp_path / "noise.keras").layers[0], GaussianNoise)


def test_translate_moves_every_image_by_at_most_max_shift_and_repeats_for_a_seed():
    from sgan.data.augment import random_shifts, translate

    images = np.full((64, 12, 12, 1), -1.0, np.float32)
    images[:, 5, 6, 0] = 1.0  # one bright pixel away from the edges
    seed = tf.constant([3, 4], tf.int64)
    shifts = random_shifts(64, 2, seed)
    shifted = translate(tf.constant(images), shifts).numpy()
    moved = np.array([np.argwhere(s[..., 0] == 1.0)[0] for s in shifted]) - [5, 6]
    np.testing.assert_array_equal(moved, shifts.numpy()[:, ::-1])  # (dx, dy) moves (row, column) by (dy, dx)
    assert shifted.shape == images.shape and np.abs(moved).max() == 2
    assert len({tuple(m) for m in moved}) > 10  # each image draws its own shift
    np.testing.assert_array_equal(random_shifts(64, 2, seed).numpy(), shifts.numpy())
    np.testing.assert_array_equal(translate(tf.constant(images), random_shifts(64, 0, seed)).numpy(), images)


def test_translate_fills_from_the_edge_or_its_mirror_and_compiles_under_xla():
    from sgan.data.augment import translate

    row = tf.constant(np.arange(1, 7, dtype=np.float32).reshape(1, 1, 6, 1))  # 1 2 3 4 5 6
    right, left = tf.constant([[2, 0]]), tf.constant([[-3, 0]])
    assert translate(row, right).numpy().ravel().tolist() == [1, 1, 1, 2, 3, 4]
    assert translate(row, right, "REFLECT").numpy().ravel().tolist() == [2, 1, 1, 2, 3, 4]  # b a | a b c d
    assert translate(row, left, "REFLECT").numpy().ravel().tolist() == [4, 5, 6, 6, 5, 4]
    compiled = tf.function(translate, jit_compile=True)
    images = tf.constant(np.random.default_rng(0).uniform(-1, 1, (8, 10, 12, 3)).astype(np.float32))
    shifts = tf.constant(np.random.default_rng(1).integers(-4, 5, (8, 2)), tf.int32)
    np.testing.assert_array_equal(compiled(images, shifts, "REFLECT").numpy(),
                                  translate(images, shifts, "REFLECT").numpy())


def test_photo_views_flip_shift_recolour_and_cut_out_within_bounds_and_repeat_for_a_seed():
    from sgan.data import augment

    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(-1, 1, (256, 16, 16, 3)).astype(np.float32))
    seed = tf.constant([5, 6], tf.int64)
    weak = augment.draw(256, (16, 16), 0, "", seed)
    assert set(weak) == {"flip", "shift"} and 0.35 < weak["flip"].numpy().mean() < 0.65
    viewed = augment.view(images, weak).numpy()  # no shift: each image is itself or its mirror
    flipped = weak["flip"].numpy()
    np.testing.assert_array_equal(viewed[flipped], images.numpy()[flipped][:, :, ::-1])
    np.testing.assert_array_equal(viewed[~flipped], images.numpy()[~flipped])

    strong = augment.draw(256, (16, 16), 2, "colour", seed)
    once, again = augment.view(images, strong).numpy(), augment.view(images, augment.draw(256, (16, 16), 2, "colour",
                                                                                          seed)).numpy()
    np.testing.assert_array_equal(once, again)  # a resumed run draws the same views
    assert once.min() >= -1 and once.max() <= 1
    hidden = (once == 0).all(axis=-1).sum(axis=(1, 2))
    assert hidden.max() == 8 * 8 and hidden.min() >= 4 * 4  # a square of half the side, cut at the edge at most in 4
    factors = strong["colour"].numpy()
    assert np.abs(factors[:, 0]).max() <= augment.BRIGHTNESS and np.abs(factors[:, 1:] - 1).max() <= augment.CONTRAST


def test_randaugment_operations_do_what_pil_does_each_image_its_own():
    from PIL import Image, ImageEnhance, ImageOps

    from sgan.data import augment

    rng = np.random.default_rng(0)
    pixels = rng.integers(20, 236, (6, 16, 16, 3)).astype(np.uint8)
    images = tf.constant(pixels.astype(np.float32) / 127.5 - 1.0)
    names = list(augment.OPERATIONS)

    def ours(name, magnitude):
        n = len(pixels)
        out = augment.randaugment(images, tf.fill([n], names.index(name)), tf.fill([n], float(magnitude)))
        return np.round((out.numpy() + 1.0) * 127.5)

    def value(name, magnitude):
        low, high = augment.OPERATIONS[name]
        return low + magnitude * (high - low)

    pil = {  # the USB benchmark's operations (semilearn/datasets/augmentation/randaugment.py)
        "identity": lambda im, v: im, "autocontrast": lambda im, v: ImageOps.autocontrast(im),
        "brightness": lambda im, v: ImageEnhance.Brightness(im).enhance(v),
        "color": lambda im, v: ImageEnhance.Color(im).enhance(v),
        "contrast": lambda im, v: ImageEnhance.Contrast(im).enhance(v),
        "posterize": lambda im, v: ImageOps.posterize(im, int(v)), "solarize": lambda im, v: ImageOps.solarize(im, v),
        "translate_x": lambda im, v: im.transform(im.size, Image.AFFINE, (1, 0, v * im.size[0], 0, 1, 0)),
        "translate_y": lambda im, v: im.transform(im.size, Image.AFFINE, (1, 0, 0, 0, 1, v * im.size[1])),
    }
    for name, operation in pil.items():
        for magnitude in (1 / 12, 11 / 12):  # translations of -4 and +4 pixels: whole pixels, so no interpolation
            expected = np.stack([np.asarray(operation(Image.fromarray(p), value(name, magnitude))) for p in pixels])
            difference = np.abs(ours(name, magnitude) - expected)
            assert difference.max() <= 2, (name, magnitude, difference.max())  # PIL rounds its blends

    equalized = ours("equalize", 0.5)  # every channel's values spread evenly over 0..255
    assert equalized.min() == 0 and equalized.max() == 255
    assert abs(np.median(equalized) - 127.5) <= 2
    assert np.array_equal(ours("rotate", 0.5), np.round((images.numpy() + 1.0) * 127.5))  # 0 degrees
    rotated = ours("rotate", 1.0)  # 30 degrees: the corners come from outside the image (black)
    assert (rotated[:, 0, 0] == 0).all() and not np.array_equal(rotated, ours("rotate", 0.0))

    operations = tf.constant([names.index("identity"), names.index("solarize")] * 3)
    mixed = augment.randaugment(images, operations, tf.fill([6], 0.0)).numpy()  # solarize at 0 inverts all
    np.testing.assert_allclose(mixed[0::2], images.numpy()[0::2], atol=1e-6)
    np.testing.assert_allclose(mixed[1::2], -images.numpy()[1::2], atol=1e-6)


def test_randaugment_views_repeat_for_a_seed_and_hide_up_to_half_the_side():
    from sgan.data import augment

    images = tf.constant(np.random.default_rng(0).uniform(-0.9, 0.9, (512, 16, 16, 3)).astype(np.float32))
    seed = tf.constant([3, 4], tf.int64)
    choices = augment.draw(512, (16, 16), 2, "randaugment", seed)
    once = augment.view(images, choices).numpy()
    again = augment.view(images, augment.draw(512, (16, 16), 2, "randaugment", seed)).numpy()
    np.testing.assert_array_equal(once, again)
    assert once.min() >= -1 and once.max() <= 1
    drawn = choices["operations"].numpy()
    assert drawn.shape == (512, 2) and set(drawn.ravel()) == set(range(len(augment.OPERATIONS)))
    sides = choices["cutout_side"].numpy()
    assert sides.min() >= 0 and sides.max() <= 8 and sides.max() > 7


def test_augmentations_follow_the_data_and_digits_keep_shifts():
    improved = preset("improved")
    assert for_images(improved, (28, 28, 1)).augment == "shifts"
    assert for_images(improved, (32, 32, 3)).augment == "photos"
    assert for_images(improved, (64, 64, 1)).augment == "photos"
    assert for_images(preset("improved", augment="shifts"), (32, 32, 3)).augment == "shifts"
    digits, photos = for_images(improved, (28, 28, 1)), for_images(improved, (32, 32, 3))
    assert (digits.pseudo_label_mask, digits.unsupervised_weight) == ("threshold", 1.0)  # what make run measures
    assert (photos.pseudo_label_mask, photos.unsupervised_weight) == ("adaptive", 0.3)
    assert for_images(preset("improved", pseudo_label_weight=0.0), (32, 32, 3)).pseudo_label_mask == "threshold"
    assert for_images(preset("improved", unsupervised_weight=0.5), (32, 32, 3)).unsupervised_weight == 0.5
    with pytest.raises(UserError, match="unsupervised_weight='half' must be a number or 'auto'"):
        preset("improved", unsupervised_weight="half")
    with pytest.raises(UserError, match="augment='mirror' must be one of shifts, photos, randaugment, auto"):
        preset("improved", augment="mirror")
