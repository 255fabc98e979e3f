"""tinyae.models.GMMSampler and tinyae.models.latent: fitting and sampling codes, a plain
autoencoder turned into a digit generator, interpolation, PCA and nearest neighbours."""

import numpy as np
import pytest

from tinyae import data, models, nn, tensor
from tinyae.models import latent
from tinyae.train import train

from test_models import train_digit_classifier


# ---------------------------------------------------------------- GMMSampler on synthetic codes
def two_classes(n=4000, seed=0):
    """Codes of two classes: N((0, 0), diag(1, 4)) and N((10, -5), [[2, 1], [1, 2]])."""
    rng = np.random.default_rng(seed)
    a = rng.multivariate_normal([0, 0], [[1, 0], [0, 4]], size=n)
    b = rng.multivariate_normal([10, -5], [[2, 1], [1, 2]], size=n)
    return np.concatenate([a, b]).astype(np.float32), np.repeat([3, 7], n)


def test_gaussian_per_class_matches_mean_and_scaled_covariance():
    codes, labels = two_classes()
    sampler = models.GMMSampler("gaussian", covariance_scale=0.5, seed=0).fit(codes, labels)
    assert sampler.classes_ == [3, 7]
    drawn = sampler.sample(20000, label=7)
    assert drawn.dtype == np.float32 and drawn.shape == (20000, 2)
    np.testing.assert_allclose(drawn.mean(axis=0), [10, -5], atol=0.05)
    np.testing.assert_allclose(np.cov(drawn, rowvar=False), 0.5 * np.array([[2, 1], [1, 2]]),
                               atol=0.05)


def test_sampling_without_a_label_follows_the_class_frequencies():
    codes, labels = two_classes()
    codes, labels = codes[1000:], labels[1000:]          # 3000 threes, 4000 sevens
    sampler = models.GMMSampler("gaussian", seed=0).fit(codes, labels)
    drawn, drawn_labels = sampler.sample(7000, return_labels=True)
    assert abs((drawn_labels == 7).mean() - 4 / 7) < 0.02
    assert abs(drawn[drawn_labels == 3].mean(axis=0)[0]) < 0.1
    assert abs(drawn[drawn_labels == 7].mean(axis=0)[0] - 10) < 0.1


def test_overall_fit_without_labels():
    codes, _ = two_classes()
    sampler = models.GMMSampler("mixture", n_components=2, seed=0).fit(codes)
    drawn = sampler.sample(4000)
    assert (drawn[:, 0] > 5).mean() == pytest.approx(0.5, abs=0.05)  # both modes found
    with pytest.raises(ValueError, match="no class 3"):
        sampler.sample(1, label=3)


def test_mixture_components_are_capped_by_the_class_size_with_a_warning():
    codes, labels = two_classes(n=40)
    with pytest.warns(UserWarning, match="only 40 codes"):
        sampler = models.GMMSampler("mixture", n_components=250, seed=0).fit(codes, labels)
    assert len(sampler.components_[3][0]) == 40
    assert sampler.sample(5, label=3, inside_class=False).shape == (5, 2)
    # One code per component: each training code sits at a component's centre, denser
    # than any draw, so the class-density test keeps none, and says why.
    with pytest.raises(RuntimeError, match=r"100% where almost none.*n_components"):
        sampler.sample(5, label=3)


def test_same_seed_same_samples():
    codes, labels = two_classes(n=200)
    first = models.GMMSampler("mixture", n_components=3, seed=1).fit(codes, labels)
    second = models.GMMSampler("mixture", n_components=3, seed=1).fit(codes, labels)
    np.testing.assert_array_equal(first.sample(10, label=7), second.sample(10, label=7))


def test_sampler_errors_speak_plainly():
    with pytest.raises(ValueError, match="kind must be"):
        models.GMMSampler("student")
    with pytest.raises(RuntimeError, match="fit"):
        models.GMMSampler().sample(3)
    with pytest.raises(ValueError, match="one label per code"):
        models.GMMSampler().fit(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        models.GMMSampler().fit(np.full((5, 2), np.nan))


def test_sample_count_and_one_code_class_errors_name_what_is_wrong():
    codes, labels = two_classes(n=50)
    sampler = models.GMMSampler("gaussian", seed=0).fit(codes, labels)
    for bad in (-2, 2.5, "3", True):
        with pytest.raises(ValueError, match="whole number >= 0"):
            sampler.sample(bad)
    assert sampler.sample(0, label=3).shape == (0, 2)
    labels = labels.copy()
    labels[0] = 5                                        # class 5: a single code
    with pytest.raises(ValueError, match=r"class 5 has 1 code.*n_components=4"):
        models.GMMSampler("mixture", n_components=4, seed=0).fit(codes, labels)


# ---------------------------------------------------------------- keeping samples in their class
def overlapping_classes(seed=0):
    """Two classes whose densities overlap: 3000 codes of N((0, 0), diag(1, 4)) and
    1000 of N((2, -1), [[2, 1], [1, 2]])."""
    rng = np.random.default_rng(seed)
    a = rng.multivariate_normal([0, 0], [[1, 0], [0, 4]], size=3000)
    b = rng.multivariate_normal([2, -1], [[2, 1], [1, 2]], size=1000)
    return np.concatenate([a, b]).astype(np.float32), np.repeat([3, 7], [3000, 1000])


def normal_density(z, mean, covariance):
    """N(z; mean, covariance) written out, for each row of z."""
    diff = z - mean
    quadratic = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(covariance), diff)
    return np.exp(-0.5 * quadratic) / np.sqrt(np.linalg.det(2 * np.pi * covariance))


@pytest.mark.parametrize("kind", ["gaussian", "mixture"])
def test_posterior_is_bayes_rule_on_the_fitted_densities(kind):
    codes, labels = overlapping_classes()
    sampler = models.GMMSampler(kind, n_components=3, seed=0).fit(codes, labels)
    z = np.random.default_rng(1).normal(size=(50, 2)) * 3
    joint = []
    for label, prior in zip(sampler.classes_, [0.75, 0.25]):
        weights, means, covariances = sampler.components_[label]
        density = sum(w * normal_density(z, m, c) for w, m, c in zip(weights, means, covariances))
        joint.append(density * prior)
    joint = np.stack(joint, axis=1)
    np.testing.assert_allclose(sampler.priors_, [0.75, 0.25])
    np.testing.assert_allclose(sampler.posterior(z), joint / joint.sum(1, keepdims=True),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sampler.log_density(z), np.log(joint.sum(1)), rtol=1e-9)


def test_kept_samples_lie_inside_their_class_and_the_acceptance_rate_is_reported():
    codes, labels = overlapping_classes()
    sampler = models.GMMSampler("gaussian", seed=0, min_posterior=0.8).fit(codes, labels)
    raw = sampler.sample(20000, label=7, inside_class=False)
    assert sampler.acceptance_rate_ is None
    share_inside = (sampler.posterior(raw)[:, 1] >= 0.8).mean()
    assert 0.1 < share_inside < 0.9                      # the classes do overlap
    kept = sampler.sample(2000, label=7)
    assert kept.shape == (2000, 2) and kept.dtype == np.float32
    assert (sampler.posterior(kept)[:, 1] >= 0.8).all()
    assert sampler.acceptance_rate_ == pytest.approx(share_inside, abs=0.03)
    assert sampler.acceptance_by_class_ == {7: sampler.acceptance_rate_}


def test_unconditional_kept_samples_keep_the_class_frequencies():
    codes, labels = overlapping_classes()
    sampler = models.GMMSampler("gaussian", seed=0).fit(codes, labels)
    drawn, drawn_labels = sampler.sample(4000, return_labels=True)
    assert abs((drawn_labels == 7).mean() - 0.25) < 0.03
    posterior = sampler.posterior(drawn)
    own = np.where(drawn_labels == 3, posterior[:, 0], posterior[:, 1])
    assert (own >= sampler.min_posterior).all()
    assert set(sampler.acceptance_by_class_) == {3, 7}
    assert 0 < sampler.acceptance_rate_ < 1


def test_raw_sampling_is_the_studys_stream():
    codes, labels = overlapping_classes()
    raw_default = models.GMMSampler("mixture", n_components=2, seed=3, inside_class=False)
    raw_default.fit(codes, labels)
    switched_off = models.GMMSampler("mixture", n_components=2, seed=3).fit(codes, labels)
    np.testing.assert_array_equal(raw_default.sample(50, label=3),
                                  switched_off.sample(50, label=3, inside_class=False))


def test_round_trip_keeps_only_codes_whose_image_stays_in_the_class():
    codes, labels = two_classes()
    sampler = models.GMMSampler("gaussian", seed=0).fit(codes, labels)

    def round_trip(z):
        """A decoder-encoder that turns every class-3 code with x > 0.5 into a seven."""
        out = z.copy()
        out[z[:, 0] > 0.5] = [10, -5]
        return out

    plain = sampler.sample(2000, label=3)
    assert (plain[:, 0] > 0.5).mean() > 0.2
    kept = sampler.sample(2000, label=3, round_trip=round_trip)
    assert (kept[:, 0] <= 0.5).all()
    assert sampler.acceptance_rate_ == pytest.approx(0.69, abs=0.03)   # P(N(0, 1) <= 0.5)
    with pytest.raises(TypeError, match="round_trip must be an autoencoder"):
        sampler.sample(5, label=3, round_trip=object())


def test_the_code_of_the_decoded_image_takes_the_posterior_test_only():
    """Codes of decoded images are no draws from the class density: a round trip that sends
    them far out on class 3's side (p(3 | z) = 1, log p(z | 3) far below every training
    code's) keeps them; one that sends them to class 7 does not."""
    codes, labels = two_classes()
    sampler = models.GMMSampler("gaussian", seed=0).fit(codes, labels)
    far_out = lambda z: z - [30.0, 0.0]                    # noqa: E731
    assert (sampler.posterior(far_out(codes[:100]))[:, 0] > 0.999).all()
    assert (sampler.class_log_density(far_out(codes[:100]), 3)
            < sampler.class_log_densities_[3][0]).all()
    sampler.sample(2000, label=3, round_trip=far_out)
    assert sampler.acceptance_rate_ == pytest.approx(1 - sampler.density_quantile, abs=0.01)
    with pytest.raises(RuntimeError, match="100% fail the posterior test after the round trip"):
        sampler.sample(100, label=3, round_trip=lambda z: np.tile([10.0, -5.0], (len(z), 1)))


class Mirror:
    """A stand-in autoencoder: the image of code z is z, and its code is -z."""
    training = False

    def __call__(self, x):
        raise AssertionError("the round trip is decode then embed, not the model's forward")

    def eval(self):
        return self

    def train(self, mode=True):
        return self

    def decode(self, z):
        return tensor(np.asarray(z))

    def embed(self, x):
        return tensor(-np.asarray(x.numpy() if hasattr(x, "numpy") else x))


def test_round_trip_through_a_model_is_decode_then_embed():
    codes, labels = two_classes()
    sampler = models.GMMSampler("gaussian", seed=0).fit(codes, labels)
    kept = sampler.sample(100, label=3, round_trip=Mirror())       # -z of a 3 is still a 3
    assert kept.shape == (100, 2) and sampler.acceptance_rate_ > 0.95
    with pytest.raises(RuntimeError, match="also after the round trip"):
        sampler.sample(100, label=7, round_trip=Mirror())          # -z of a 7 is no 7


def test_class_density_test_rejects_draws_where_no_training_code_lies():
    """One class, N(0, I): its training codes' log-density is below the 5% quantile
    exactly outside the circle |z| = r holding 95% of them. Drawn with the covariance
    x 4, a share 1 - exp(-r^2 / 8) of the draws lies inside it; only those are kept."""
    rng = np.random.default_rng(0)
    codes = rng.standard_normal((20000, 2)).astype(np.float32)
    sampler = models.GMMSampler("gaussian", covariance_scale=4.0, density_quantile=0.05,
                                seed=0).fit(codes)
    radius = np.quantile(np.linalg.norm(codes, axis=1), 0.95)
    raw = sampler.sample(4000, inside_class=False)
    assert (np.linalg.norm(raw, axis=1) > radius).mean() > 0.4       # wide draws stray
    kept = sampler.sample(4000)
    assert (np.linalg.norm(kept, axis=1) <= radius * 1.02).all()
    assert sampler.acceptance_rate_ == pytest.approx(1 - np.exp(-radius**2 / 8), abs=0.03)
    floor = sampler.class_log_density_floor(None)
    assert (sampler.class_log_density(kept, None) >= floor).all()
    assert np.mean(sampler.class_log_density(codes, None) < floor) == pytest.approx(0.05,
                                                                                     abs=0.01)


def test_class_density_test_catches_what_the_posterior_cannot():
    """Two far-apart classes: a wide draw for class 3 is far from every code, yet its
    posterior p(3 | z) is near 1. Only the class-density test removes it; a
    density_quantile of 0 switches that test off."""
    codes, labels = two_classes()
    wide = dict(covariance_scale=9.0, seed=0, density_quantile=0.01)
    sampler = models.GMMSampler("gaussian", **wide).fit(codes, labels)
    raw = sampler.sample(4000, label=3, inside_class=False)
    mahalanobis = np.sqrt(raw[:, 0] ** 2 + raw[:, 1] ** 2 / 4)
    lonely = mahalanobis > 3.5                  # beyond every training code but about 1 in 460
    posterior = sampler.posterior(raw)[:, 0]
    assert lonely.mean() > 0.3 and np.median(posterior[lonely]) > 0.99
    kept = sampler.sample(4000, label=3)
    assert np.sqrt(kept[:, 0] ** 2 + kept[:, 1] ** 2 / 4).max() < 3.3
    assert sampler.acceptance_rate_ < 0.5
    off = models.GMMSampler("gaussian", **dict(wide, density_quantile=0.0)).fit(codes, labels)
    off.sample(4000, label=3)
    assert off.acceptance_rate_ > 0.9           # the posterior test alone keeps them
    with pytest.raises(ValueError, match="density_quantile"):
        models.GMMSampler(density_quantile=1.0)


def test_too_low_an_acceptance_rate_is_a_clear_error():
    codes, labels = overlapping_classes()
    sampler = models.GMMSampler("gaussian", seed=0, min_posterior=0.999,
                                min_acceptance=0.2).fit(codes, labels)
    with pytest.raises(RuntimeError, match=r"class 7.*acceptance rate.*inside_class=False"):
        sampler.sample(200, label=7)
    with pytest.raises(ValueError, match="min_posterior"):
        models.GMMSampler(min_posterior=1.5)


def test_check_flags_the_class_along_an_interpolation_and_codes_far_from_all():
    codes, labels = two_classes()
    sampler = models.GMMSampler("gaussian", seed=0).fit(codes, labels)
    line = latent.interpolate([0, 0], [10, -5], steps=9)
    report = sampler.check(line)
    assert report.label.tolist()[:2] == [3, 3] and report.label.tolist()[-2:] == [7, 7]
    assert report.far[0] == report.far[-1] == False    # noqa: E712  (numpy booleans)
    assert report.far[4]                                # halfway lies between the classes
    assert (report.posterior >= 0.5).all()
    np.testing.assert_allclose(report.log_density, sampler.log_density(line))
    # the share of training codes called far is about far_quantile
    assert sampler.check(codes).far.mean() == pytest.approx(sampler.far_quantile, abs=0.01)
    steps = latent.latent_arithmetic(codes[:4], np.array([10.0, -5.0]), [0, 1, 10])
    flags = sampler.check(steps)
    assert flags.far.shape == (4, 3) and flags.far[:, 2].all()


# ---------------------------------------------------------------- an autoencoder turned generator
@pytest.fixture(scope="module")
def mnist(data_dir):
    return data.load_mnist(data_dir, split="train")


@pytest.mark.parametrize("kind", ["gaussian", "mixture"])
def test_gmm_on_autoencoder_codes_draws_the_digit_asked_for(kind, mnist, trained_autoencoder,
                                                            classify):
    x, y = mnist
    model = trained_autoencoder
    codes = model.embed(x[:4000]).numpy()
    sampler = models.GMMSampler(kind, n_components=3, covariance_scale=0.25, seed=0)
    sampler.fit(codes, y[:4000])
    wanted = np.repeat(np.arange(10), 30)
    z = np.concatenate([sampler.sample(30, label=digit) for digit in range(10)])
    images = model.decode(z).numpy()
    accuracy = (classify(images) == wanted).mean()
    assert accuracy >= 0.9, f"only {accuracy:.1%} of the decoded samples are the class asked for"


@pytest.fixture(scope="module")
def trained_autoencoder(mnist):
    nn.manual_seed(0)
    model = models.mlp_autoencoder((1, 28, 28), [256], latent_dim=16, code_activation=None)
    train(model, mnist[0][:4000], epochs=8, batch_size=64, progress=False)
    return model


@pytest.fixture(scope="module")
def classify(mnist):
    x, y = mnist
    predict = train_digit_classifier(x[10000:30000], y[10000:30000])
    assert (predict(x[50000:51000]) == y[50000:51000]).mean() > 0.93
    return predict


# ---------------------------------------------------------------- latent-space tools
def test_interpolate_includes_both_endpoints():
    a, b = np.array([0.0, 2.0]), np.array([4.0, -2.0])
    line = latent.interpolate(a, b, 5)
    assert line.shape == (5, 2) and line.dtype == np.float32
    np.testing.assert_allclose(line[0], a)
    np.testing.assert_allclose(line[-1], b)
    np.testing.assert_allclose(line[2], [2.0, 0.0])
    with pytest.raises(ValueError, match="shape"):
        latent.interpolate(a, np.zeros(3), 4)


def test_attribute_vector_and_arithmetic():
    with_attribute = np.array([[2.0, 1.0], [4.0, 1.0]])
    without = np.array([[0.0, 1.0], [0.0, 3.0]])
    vector = latent.attribute_vector(with_attribute, without)
    np.testing.assert_allclose(vector, [3.0, -1.0])
    steps = latent.latent_arithmetic(np.zeros(2), vector, [-1, 0, 1, 2])
    np.testing.assert_allclose(steps, [[-3, 1], [0, 0], [3, -1], [6, -2]])
    assert latent.latent_arithmetic(np.zeros((5, 2)), vector, [0, 1]).shape == (5, 2, 2)


def test_pca_finds_the_directions_the_codes_use():
    rng = np.random.default_rng(0)
    plane = rng.standard_normal((500, 2)) * [3.0, 1.0]
    directions = np.linalg.qr(rng.standard_normal((6, 2)))[0].T      # (2, 6) orthonormal
    codes = plane @ directions
    result = latent.pca(codes)
    assert result.eigenvalues.shape == (6,) and result.components.shape == (6, 6)
    assert result.eigenvalues[0] == pytest.approx(9, rel=0.15)
    assert result.eigenvalues[1] == pytest.approx(1, rel=0.15)
    assert result.eigenvalues[2:].max() < 1e-6
    assert result.projection.shape == (500, 2)
    np.testing.assert_allclose(abs(result.components[0] @ directions[0]), 1, atol=1e-3)


@pytest.mark.parametrize("metric", ["l2", "bce"])
def test_nearest_neighbours_agree_with_brute_force(metric, backend_name):
    rng = np.random.default_rng(0)
    references = rng.random((300, 1, 4, 4)).astype(np.float32)
    queries = rng.random((50, 16)).astype(np.float32)
    found = latent.nearest_neighbours(queries, references, metric=metric, k=3, batch_size=64)
    flat = references.reshape(300, -1)
    if metric == "l2":
        distance = np.sqrt(((queries[:, None, :] - flat[None]) ** 2).sum(-1))
    else:
        q = np.clip(queries, 1e-7, 1 - 1e-7)[:, None, :]
        distance = -(flat[None] * np.log(q) + (1 - flat[None]) * np.log(1 - q)).mean(-1)
    expected = np.argsort(distance, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(found.indices, expected)
    np.testing.assert_allclose(found.distances, np.take_along_axis(distance, expected, 1),
                               rtol=1e-4, atol=1e-4)


def test_nearest_neighbour_of_a_copy_is_itself():
    references = np.random.default_rng(1).random((100, 8)).astype(np.float32)
    found = latent.nearest_neighbours(references[[7, 42]], references)
    assert found.indices[:, 0].tolist() == [7, 42]
    assert np.allclose(found.distances[:, 0], 0, atol=1e-3)


def test_morph_and_decode_basis_decode_images():
    nn.manual_seed(0)
    model = models.mlp_vae((1, 28, 28), hidden=(16,), latent_dim=3)
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 1, 28, 28), dtype=np.float32)
    strip = latent.morph(model, a, b, steps=6)
    assert strip.shape == (6, 1, 28, 28)
    codes = model.embed(np.stack([a, b])).numpy()
    np.testing.assert_allclose(strip[0], model.decode(codes[:1]).numpy()[0], rtol=1e-5)
    assert latent.decode_basis(model, 3, scale=2.0).shape == (3, 1, 28, 28)
