"""Study 1, autoencoder-gmm: generating digits of a chosen class from an autoencoder's codes.

An MLP autoencoder (1, 5 or 9 hidden layers, code size 32; MSE, BCE or
Euclidean loss) learns MNIST. Its codes of the training images get one density
per digit: a single Gaussian whose covariance is scaled down (cleaner, less
varied digits), and a Gaussian mixture of K components initialised by k-means.
Decoding draws from the density of a digit generates that digit.

Figures: reconstructions, samples of each digit from both densities, the
originality check (each sample beside the nearest reconstruction of a training
image and that image), the decoded basis vectors, interpolations between class
means, and the PCA of the code space (spectrum and 2-D projection).
"""
import numpy

from .. import plot
from ..data import load_dataset
from ..metrics import classifier_outputs, conditional_accuracy, load_reference_classifier
from ..models import GMMSampler, decode_basis, interpolate, mlp_autoencoder, nearest_neighbours, pca
from .outputs import losses_line
from .training import (RunSettings, decode_all, embed_all, fit, reconstruct_all, samples_by_class,
                       seed_everything)

NAME = "autoencoder-gmm"
TITLE = ("MLP autoencoder on MNIST, per-digit Gaussian and Gaussian-mixture samplers in its "
         "code space")

# The hidden stacks of the study: the code (32) in the middle.
HIDDEN_LAYERS = {
    1: [32],
    5: [512, 128, 32, 128, 512],
    9: [512, 256, 128, 64, 32, 64, 128, 256, 512],
}

FULL = dict(layers=5, loss="bce", batch_norm=False, epochs=30, batch_size=256, lr=1e-3,
            limit=None, components=50, covariance_scale=0.5, per_class=10, seed=0)
QUICK = dict(FULL, epochs=8, limit=20000, components=5, per_class=6)
QUICK_NOTE = ("20,000 MNIST images, 8 epochs, 5 mixture components: recognisable digits of each "
              "class (the summary gives the share the reference classifier reads as the "
              "requested digit); under a minute of CPU time")
FULL_NOTE = ("MNIST, 60,000 training images; about 8 s per epoch on one CPU core and some "
             "2 minutes for the mixtures (K=50), about 6 minutes in all; --components up to "
             "250 takes minutes per digit")

# Pairs of digits whose class means are joined by an interpolation.
INTERPOLATION_PAIRS = ((0, 6), (1, 7), (3, 8), (4, 9), (2, 5))


def add_arguments(parser):
    """The study's command-line options."""
    parser.add_argument("--layers", type=int, choices=sorted(HIDDEN_LAYERS),
                        help="hidden layers of the autoencoder, the code (32) in the middle "
                             "(default 5: 784-512-128-32-128-512-784)")
    parser.add_argument("--batch-norm", action="store_true", default=None,
                        help="a BatchNorm1d between each hidden layer and its ReLU (the "
                             "9-layer stack learns far faster with it)")
    parser.add_argument("--loss", choices=("bce", "mse", "euclidean"),
                        help="reconstruction loss (default bce)")
    parser.add_argument("--components", type=int, metavar="K",
                        help="components of the Gaussian mixture per digit (default 50, up "
                             "to 250)")
    parser.add_argument("--covariance-scale", type=float, metavar="S",
                        help="factor on the single Gaussian's covariance when sampling "
                             "(default 0.5)")


def run(settings, out):
    """Load MNIST, train the autoencoder, draw the figures; returns the summary lines."""
    seed = settings["seed"]
    seed_everything(seed)
    dataset = load_dataset("mnist", settings.get("data_dir"), limit=settings["limit"], seed=seed)
    hidden = HIDDEN_LAYERS[settings["layers"]]
    model = mlp_autoencoder((1, 28, 28), hidden, loss=settings["loss"],
                            batch_norm=settings["batch_norm"])
    run_settings = RunSettings(settings["epochs"], settings["batch_size"], settings["lr"], seed,
                               settings.get("progress", True))
    history = fit(model, dataset, run_settings)
    plot.loss_curves(history, path=out.file("loss_curves.png"))
    originals = _one_per_class(dataset.x_val, dataset.y_val)
    plot.interpolation_strip([originals, reconstruct_all(model, originals)],
                             row_labels=("original", "reconstructed"),
                             path=out.file("reconstructions.png"))
    codes = embed_all(model, dataset.x_train)
    samples, kept_line = draw_class_samples(model, codes, dataset.y_train, settings, out)
    originality = draw_originality(model, dataset, samples["mixture"], out)
    draw_basis_and_interpolations(model, codes, dataset.y_train, out)
    used = draw_pca(codes, dataset.y_train, out)
    accuracy = {name: class_accuracy(batches) for name, batches in samples.items()}
    return [
        f"data: {dataset.describe()}",
        f"model: mlp_autoencoder((1, 28, 28), {hidden}, loss={settings['loss']!r}, "
        f"batch_norm={settings['batch_norm']}), {model.num_parameters()} parameters",
        f"training: epochs={settings['epochs']}, batch_size={settings['batch_size']}, "
        f"lr={settings['lr']}, Adam, seed={seed}",
        losses_line("autoencoder", history),
        f"samplers: one Gaussian per digit (covariance x {settings['covariance_scale']}); "
        f"a mixture of {settings['components']} components per digit (k-means init)",
        f"samples of the requested digit (by tinyae.metrics' reference classifier): "
        f"{accuracy['gaussian']:.0%} from the Gaussians, {accuracy['mixture']:.0%} from the "
        "mixtures (chance: 10%)",
        originality,
        f"code space: {used} of {codes.shape[1]} principal components hold 90% of the variance",
        kept_line,
    ]


def _raw_and_kept_samples(model, sampler, classes, per_class, out):
    """The mixture's raw draws (as the study drew them) beside the draws kept inside their
    class (``GMMSampler.inside``: the posterior test p(c | z) >= min_posterior and the
    class-density test, tutorial 12), for the code and for the code of its decoded image,
    and the share of each that tinyae's reference classifier recognises as the digit
    asked for."""
    raw = [decode_all(model, sampler.sample(per_class, label=c, inside_class=False))
           for c in classes]
    trip = True
    try:
        kept, rates = _kept_samples(model, sampler, classes, per_class, round_trip=model)
    except RuntimeError:     # an autoencoder too little trained to bring its images back
        kept, rates = _kept_samples(model, sampler, classes, per_class, round_trip=None)
        trip = False
    plot.class_sample_grid(raw, path=out.file("mixture_raw_samples.png"))
    plot.class_sample_grid(kept, path=out.file("mixture_kept_samples.png"))
    requested = numpy.repeat(classes, per_class)
    raw_share, kept_share = (
        conditional_accuracy(classifier_outputs(numpy.concatenate(batches)).probabilities,
                             requested) for batches in (raw, kept))
    after = " before and after decode -> embed" if trip else " (the round trip kept too few)"
    return (f"mixture samples, raw and kept (p(c | z) >= {sampler.min_posterior} and "
            f"log p(z | c) above the {sampler.density_quantile:.0%} quantile of the digit's "
            f"training codes{after}; "
            f"{numpy.mean(rates):.0%} of the draws kept): tinyae's reference classifier "
            f"recognises {raw_share:.0%} of the raw and {kept_share:.0%} of the kept as the "
            "digit asked for (a classifier tinyae did not train: benchmarks/sampler_targets.py)")


def draw_class_samples(model, codes, labels, settings, out):
    """Fit both samplers per digit and draw their samples: ({"gaussian": [...], "mixture":
    [...]}, one batch of decoded samples per digit 0..9; the summary line of the mixture's raw
    and kept draws)."""
    classes, per_class, seed = list(range(10)), settings["per_class"], settings["seed"]
    gaussian = GMMSampler("gaussian", covariance_scale=settings["covariance_scale"],
                          seed=seed).fit(codes, labels)
    mixture = GMMSampler("mixture", n_components=settings["components"], seed=seed).fit(
        codes, labels)
    samples = {"gaussian": samples_by_class(model, gaussian, classes, per_class),
               "mixture": samples_by_class(model, mixture, classes, per_class)}
    plot.class_sample_grid(samples["gaussian"], path=out.file("gaussian_samples.png"))
    plot.class_sample_grid(samples["mixture"], path=out.file("mixture_samples.png"))
    return samples, _raw_and_kept_samples(model, mixture, classes, per_class, out)


def class_accuracy(batches):
    """The share of samples the reference classifier reads as the digit they were drawn for
    (batch c holds samples of digit c)."""
    images = numpy.concatenate(batches)
    requested = numpy.repeat(numpy.arange(len(batches)), [len(batch) for batch in batches])
    probabilities = classifier_outputs(images, load_reference_classifier()).probabilities
    return conditional_accuracy(probabilities, requested)


def draw_originality(model, dataset, mixture_samples, out):
    """Is a generated digit new, or the copy of a training digit? Draws each beside its
    nearest training reconstruction; returns the summary line."""
    generated = numpy.stack([batch[0] for batch in mixture_samples])
    train_reconstructions = reconstruct_all(model, dataset.x_train)
    found = nearest_neighbours(generated, train_reconstructions)
    nearest = found.indices[:, 0]
    plot.nearest_rows(generated, train_reconstructions[nearest], dataset.x_train[nearest],
                      path=out.file("originality.png"))
    test_reconstructions = reconstruct_all(model, dataset.x_val[:len(generated) * 20])
    baseline = nearest_neighbours(test_reconstructions, train_reconstructions).distances
    return (f"originality: generated digits lie {found.distances.mean():.3f} (L2) from the "
            f"nearest training reconstruction; test reconstructions lie {baseline.mean():.3f} "
            "from theirs (similar numbers: the samples are as new as unseen digits; far "
            "smaller: copies)")


def draw_basis_and_interpolations(model, codes, labels, out):
    """Decode the code space's basis vectors and straight lines between class means."""
    scale = float(codes.max(axis=0).mean()) or 1.0  # a typical code value along one axis
    basis = decode_basis(model, codes.shape[1], scale=scale)
    plot.basis_grid(basis, nrow=8, path=out.file("decoded_basis.png"))
    means = {c: codes[labels == c].mean(axis=0) for c in range(10)}
    strips = [decode_all(model, interpolate(means[a], means[b], 10))
              for a, b in INTERPOLATION_PAIRS]
    plot.interpolation_strip(strips, row_labels=[f"{a} → {b}" for a, b in INTERPOLATION_PAIRS],
                             path=out.file("class_mean_interpolation.png"))


def draw_pca(codes, labels, out):
    """The code space's PCA spectrum and 2-D projection; returns how many components hold
    90% of the variance."""
    spectrum = pca(codes)
    plot.pca_eigenvalues(spectrum.eigenvalues, path=out.file("pca_eigenvalues.png"))
    shown = slice(0, 5000)
    plot.pca_projection(spectrum.projection[shown], labels[shown],
                        path=out.file("pca_projection.png"))
    return int(numpy.searchsorted(numpy.cumsum(spectrum.eigenvalues)
                                  / spectrum.eigenvalues.sum(), 0.9) + 1)


def _one_per_class(x, y, count=10):
    """The first image of each class 0..count-1 (the strip shows every digit)."""
    return numpy.stack([x[numpy.flatnonzero(y == c)[0]] for c in range(count)])


def _kept_samples(model, sampler, classes, per_class, round_trip):
    """Decoded kept samples of each class, and each class's acceptance rate."""
    kept, rates = [], []
    for c in classes:
        kept.append(decode_all(model, sampler.sample(per_class, label=c, round_trip=round_trip)))
        rates.append(sampler.acceptance_rate_)
    return kept, rates
