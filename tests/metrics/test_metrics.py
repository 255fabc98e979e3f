"""tinyae.metrics on cases with known answers, and the shipped reference classifier
reaching 99% on the MNIST test set."""
import math

import numpy as np
import pytest

import tinyae
from tinyae import data, metrics, models, nn
from tinyae.metrics import classifier as reference
from tinyae.train import train


# ---------------------------------------------------------------- Frechet distance
def test_identical_statistics_give_frechet_distance_zero(rng):
    features = rng.standard_normal((500, 8)) @ rng.standard_normal((8, 8))
    stats = metrics.feature_statistics(features)
    assert metrics.frechet_distance(*stats, *stats) == pytest.approx(0, abs=1e-8)


def test_shifted_gaussians_with_equal_covariance_are_the_squared_mean_distance(rng):
    a = rng.standard_normal((6, 6))
    cov = a @ a.T + np.eye(6)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    assert metrics.frechet_distance(mu1, cov, mu2, cov) == pytest.approx(
        np.sum((mu1 - mu2) ** 2), rel=1e-6)


def test_frechet_distance_matches_the_closed_form_for_diagonal_covariances(rng):
    # diagonal: tr(C1 + C2 - 2 (C1 C2)^(1/2)) = sum (s1 - s2)^2 over standard deviations
    s1, s2 = rng.uniform(0.5, 2, 5), rng.uniform(0.5, 2, 5)
    mu1, mu2 = rng.standard_normal(5), rng.standard_normal(5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)
    got = metrics.frechet_distance(mu1, np.diag(s1 ** 2), mu2, np.diag(s2 ** 2))
    assert got == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_of_sample_statistics_approaches_the_true_one(rng):
    x = rng.standard_normal((20000, 3))
    y = rng.standard_normal((20000, 3)) * 2 + 1        # N(1, 4 I)
    expected = 3 * 1 ** 2 + 3 * (2 - 1) ** 2
    got = metrics.frechet_distance(*metrics.feature_statistics(x),
                                   *metrics.feature_statistics(y))
    assert got == pytest.approx(expected, rel=0.05)


def test_singular_covariances_give_a_finite_distance(rng):
    # fewer samples than dimensions: rank-deficient covariances, as with dead ReLU features
    x, y = rng.standard_normal((5, 20)), rng.standard_normal((5, 20)) + 1
    distance = metrics.frechet_distance(*metrics.feature_statistics(x),
                                        *metrics.feature_statistics(y))
    assert math.isfinite(distance) and distance > 0


def test_frechet_distance_names_mismatched_shapes():
    with pytest.raises(ValueError, match="must be"):
        metrics.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


# ---------------------------------------------------------------- IS, accuracy
def test_uniform_predictions_give_inception_score_one():
    score, spread = metrics.inception_score(np.full((100, 10), 0.1))
    assert score == pytest.approx(1.0) and spread == pytest.approx(0.0)


def test_confident_balanced_predictions_give_inception_score_of_the_class_count():
    one_hot = np.eye(10)[np.arange(200) % 10]
    assert metrics.inception_score(one_hot, splits=4)[0] == pytest.approx(10.0)
    assert metrics.inception_score(np.eye(10)[np.zeros(50, int)], splits=5)[0] == \
        pytest.approx(1.0)  # one confident class only: no variety


def test_inception_score_needs_an_image_per_split():
    with pytest.raises(ValueError, match="split"):
        metrics.inception_score(np.full((3, 10), 0.1), splits=10)


def test_a_perfect_classifier_has_conditional_accuracy_one(rng):
    labels = rng.integers(0, 10, 300)
    assert metrics.conditional_accuracy(np.eye(10)[labels], labels) == 1.0
    assert metrics.conditional_accuracy(np.eye(10)[labels], (labels + 1) % 10) == 0.0


# ---------------------------------------------------------------- likelihoods
def tiny_vae(seed=0):
    nn.manual_seed(seed)
    return models.mlp_vae((1, 4, 4), hidden=(8,), latent_dim=2)


def test_log_mean_exp_is_stable_and_exact():
    values = np.array([[1000.0, 1000.0], [1000.0 + math.log(3), 1000.0]])
    assert metrics.log_mean_exp(values, axis=0) == pytest.approx([1000 + math.log(2), 1000])


def test_iwae_is_exact_when_the_posterior_is_the_prior_and_the_decoder_ignores_z(backend_name,
                                                                                     rng):
    # q(z | x) = N(0, I) = p(z) and p(x | z) = p(x): every weight w_i equals p(x), so every
    # k gives log p(x) exactly, and so does the ELBO (KL = 0).
    model = tiny_vae()
    for head in (model.fc_mu, model.fc_logvar):
        head.weight.data[...] = 0
        head.bias.data[...] = 0
    last = model.decoder[-2]                          # Dense before the sigmoid
    last.weight.data[...] = 0
    last.bias.data[...] = 0.7
    x = (rng.random((5, 1, 4, 4)) > 0.5).astype(np.float32)
    p = 1 / (1 + math.exp(-0.7))
    p = float(np.float32(p))
    exact = (x * math.log(p) + (1 - x) * math.log(1 - p)).reshape(5, -1).sum(axis=1)
    for k in (1, 7, 100):
        got = metrics.iwae_log_likelihood(model, x, k=k, per_image=True)
        np.testing.assert_allclose(got, exact, rtol=1e-5)
    assert -metrics.elbo(model, x)["negative_elbo"] == pytest.approx(exact.mean(), rel=1e-5)


def test_iwae_with_one_sample_is_the_elbo_in_expectation_and_more_samples_tighten_it(rng):
    model = tiny_vae(1)
    x = np.repeat(rng.random((4, 1, 4, 4)).astype(np.float32), 500, axis=0)
    elbo = -metrics.elbo(model, x, rng=1)["negative_elbo"]
    single = metrics.iwae_log_likelihood(model, x, k=1, rng=2, per_image=True)
    assert single.mean() == pytest.approx(elbo, abs=4 * single.std() / math.sqrt(len(x)))
    many = metrics.iwae_log_likelihood(model, x[::50], k=200, rng=3)
    assert many >= elbo


def test_iwae_batching_does_not_change_the_estimate(rng):
    model = tiny_vae(2)
    x = rng.random((6, 16)).astype(np.float32)
    whole = metrics.iwae_log_likelihood(model, x, k=100, per_image=True)
    chunked = metrics.iwae_log_likelihood(model, x, k=100, max_rows=13, per_image=True)
    np.testing.assert_allclose(chunked, whole, rtol=1e-10)


def test_likelihoods_refuse_models_they_cannot_score():
    with pytest.raises(TypeError, match="VAE"):
        metrics.iwae_log_likelihood(models.mlp_autoencoder(16, [8]), np.zeros((2, 16)))
    mse_vae = models.mlp_vae(16, hidden=(8,), latent_dim=2, loss="mse")
    with pytest.raises(ValueError, match="Bernoulli"):
        metrics.elbo(mse_vae, np.zeros((2, 16)))


def test_a_conditional_vae_is_scored_with_its_labels(rng):
    nn.manual_seed(0)
    model = models.mlp_cvae((1, 4, 4), hidden=(8,), latent_dim=2, n_classes=3)
    x, y = rng.random((6, 1, 4, 4)).astype(np.float32), np.arange(6) % 3
    assert math.isfinite(metrics.iwae_log_likelihood(model, x, k=100, labels=y))
    assert set(metrics.reconstruction_error(model, x, labels=y)) == {"bce", "mse"}
    with pytest.raises(ValueError, match="labels"):
        metrics.elbo(model, x)


class _Identity:
    """A perfect autoencoder: reconstructs every image exactly."""

    def encode(self, x):
        return x

    def reconstruct(self, x):
        return x


def test_a_perfect_reconstruction_has_zero_error_on_binary_images(rng):
    x = (rng.random((7, 1, 4, 4)) > 0.5).astype(np.float32)
    error = metrics.reconstruction_error(_Identity(), x, batch_size=3)
    assert error == {"bce": 0.0, "mse": 0.0}


def test_reconstruction_error_is_per_pixel():
    x = np.full((2, 4), 0.5, np.float32)

    class Constant(_Identity):
        def reconstruct(self, x):
            return tinyae.tensor(np.full(x.shape, 0.25, np.float32))

    error = metrics.reconstruction_error(Constant(), x)
    assert error["mse"] == pytest.approx(0.0625)
    assert error["bce"] == pytest.approx(-(0.5 * math.log(0.25) + 0.5 * math.log(0.75)))


# ---------------------------------------------------------------- originality, cost
def test_training_images_themselves_have_originality_zero(rng):
    train = rng.random((300, 1, 8, 8)).astype(np.float32)
    held_out = rng.random((50, 1, 8, 8)).astype(np.float32)
    result = metrics.originality(train[:40], train, held_out, reconstructions=train[100:],
                                 batch_size=64)
    assert result["generated_to_train"] == pytest.approx(0, abs=1e-3)
    assert result["train_ratio"] == pytest.approx(0, abs=1e-3)
    assert result["held_out_to_train"] > 1
    assert result["generated_to_reconstruction"] > 1


class FakeClock:
    """A clock that reads the given times in turn: the timers' arithmetic, not real speed."""

    def __init__(self, *readings):
        self.readings = list(readings)

    def __call__(self):
        return self.readings.pop(0)


def test_epoch_timer_and_sampling_throughput(rng):
    nn.manual_seed(0)
    model = models.mlp_vae(16, hidden=(8,), latent_dim=2)
    timer = metrics.EpochTimer(clock=FakeClock(10.0, 11.5, 14.0))  # begin, epoch 1, epoch 2
    train(model, rng.random((64, 16)).astype(np.float32), epochs=2,
          batch_size=32, callbacks=[timer], progress=False)
    assert timer.epoch_seconds == [1.5, 2.5] and timer.seconds_per_epoch == 2.0
    drawn = []

    def sample(count):
        drawn.append(count)
        return model.sample(count)

    # 100 images in batches of 30 between clock readings 3.0 and 3.5: 200 images a second
    throughput = metrics.sampling_throughput(sample, n=100, batch_size=30,
                                             clock=FakeClock(3.0, 3.5))
    assert throughput == pytest.approx(200.0)
    assert drawn == [8, 30, 30, 30, 10]                  # a warm-up call, then the batches
    assert metrics.parameter_count(model) == model.num_parameters()


# ---------------------------------------------------------------- the reference classifier
def test_a_missing_weights_file_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="benchmarks.train_classifier"):
        metrics.load_reference_classifier(tmp_path / "missing.npz")


def test_the_shipped_weights_are_small():
    with metrics.reference_classifier_path().open("rb") as file:
        size = len(file.read())
    assert size < 1_000_000


def test_classifier_refuses_images_of_the_wrong_size_or_range():
    with pytest.raises(ValueError, match="28x28"):
        reference.as_digit_images(np.zeros((2, 1, 8, 8)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reference.as_digit_images(-np.ones((2, 784)))


@pytest.fixture(scope="module")
def mnist_test_set_outputs(data_dir):
    x_test, y_test = data.load_mnist(data_dir, split="test")
    return metrics.classifier_outputs(x_test, metrics.load_reference_classifier()), y_test


def test_shipped_classifier_reaches_99_percent_on_the_mnist_test_set(mnist_test_set_outputs):
    outputs, labels = mnist_test_set_outputs
    assert outputs.features.shape == (10000, 128)
    assert metrics.conditional_accuracy(outputs.probabilities, labels) >= 0.99


def test_real_digits_score_as_real_digits(mnist_test_set_outputs):
    outputs, labels = mnist_test_set_outputs
    stats = metrics.feature_statistics(outputs.features[0::2])
    assert metrics.frechet_distance(*stats, *stats) == pytest.approx(0, abs=1e-6)
    # two random halves of the test set are near each other; digits 0-4 alone are far
    near = metrics.frechet_distance(*stats, *metrics.feature_statistics(outputs.features[1::2]))
    far = metrics.frechet_distance(*stats, *metrics.feature_statistics(
        outputs.features[labels < 5]))
    assert near < 0.1 * far
    assert metrics.inception_score(outputs.probabilities)[0] > 9
