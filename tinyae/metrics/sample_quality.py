"""How good generated digits look to the reference classifier: Frechet distance,
Inception Score and conditional accuracy.

- ``frechet_distance(mu1, cov1, mu2, cov2)``: the Frechet (2-Wasserstein)
  distance between two Gaussians,
  ||mu1 - mu2||^2 + tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2)).
  Fitted to the classifier's penultimate features of generated and of real
  images it is FID (Heusel et al., 2017) with the reference MNIST classifier in
  place of Inception: 0 for identical feature statistics, lower is better. Its
  values are only comparable with each other (same classifier, same number of
  images), never with published Inception FIDs.
- ``inception_score(probabilities)``: exp(E_x KL(p(y | x) || p(y))) (Salimans et
  al., 2016): high when each image is one confident digit and all digits
  appear; between 1 and the number of classes (10).
- ``conditional_accuracy(probabilities, requested)``: the share of images the
  classifier assigns to the class they were asked to show.

``sample_quality`` computes all three from images in one call::

    scores = sample_quality(model.sample(5000).numpy(), x_train)
    scores["frechet_distance"], scores["inception_score"]
"""
import warnings

import numpy

from .. import backend
from .classifier import classifier_outputs, load_reference_classifier


def _host(array, dtype=None):
    """``array`` (host or device) as a host NumPy array: these statistics run on the CPU."""
    return numpy.asarray(backend.to_numpy(array), dtype=dtype)


def feature_statistics(features):
    """The mean (d,) and covariance (d, d) of features (N, d), as float64 host arrays.

    The covariance is the unbiased sample covariance (numpy.cov), as FID uses.
    """
    features = _host(features, numpy.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"feature_statistics: needs at least 2 feature rows (N, d), got "
                         f"shape {features.shape}")
    return features.mean(axis=0), numpy.cov(features, rowvar=False)


def frechet_distance(mu1, cov1, mu2, cov2, eps=1e-6):
    """The Frechet distance between N(mu1, cov1) and N(mu2, cov2):

        ||mu1 - mu2||^2 + tr(cov1) + tr(cov2) - 2 tr((cov1 cov2)^(1/2))

    The matrix square root is scipy.linalg.sqrtm. As in the reference FID
    code, when the product of the covariances is singular (scipy warns, or the
    root is not finite) ``eps`` times the identity is added to both (here in
    the traces too, so that identical statistics still give 0); tiny imaginary
    parts that round-off leaves are dropped, large ones raise a ValueError.

    Example::

        frechet_distance(numpy.zeros(2), numpy.eye(2), numpy.ones(2), numpy.eye(2))   # 2.0
    """
    mu1, mu2 = numpy.atleast_1d(_host(mu1, numpy.float64)), numpy.atleast_1d(
        _host(mu2, numpy.float64))
    cov1, cov2 = numpy.atleast_2d(_host(cov1, numpy.float64)), numpy.atleast_2d(
        _host(cov2, numpy.float64))
    d = mu1.shape[0]
    if mu1.shape != mu2.shape or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise ValueError(f"frechet_distance: means {mu1.shape} and {mu2.shape}, covariances "
                         f"{cov1.shape} and {cov2.shape}; they must be (d,), (d,), (d, d), (d, d)")
    diff = mu1 - mu2
    covmean = _sqrtm_or_none(cov1 @ cov2)
    if covmean is None:  # a singular product: nudge both covariances off singularity
        cov1, cov2 = cov1 + eps * numpy.eye(d), cov2 + eps * numpy.eye(d)
        covmean = _sqrtm_or_none(cov1 @ cov2)
        if covmean is None:
            raise ValueError("frechet_distance: the product of the covariances has no finite "
                             f"square root, even with {eps} added to their diagonals")
    if numpy.iscomplexobj(covmean):
        largest = numpy.max(numpy.abs(numpy.diagonal(covmean).imag))
        if largest > 1e-3:
            raise ValueError(f"frechet_distance: the matrix square root has an imaginary part "
                             f"of {largest:.3g} on its diagonal; are the covariances positive "
                             "semi-definite?")
        covmean = covmean.real
    return float(diff @ diff + numpy.trace(cov1) + numpy.trace(cov2) - 2 * numpy.trace(covmean))


def _sqrtm_or_none(matrix):
    """scipy.linalg.sqrtm(matrix), or None when it is not finite or scipy warns that the
    matrix is singular (the result would be inaccurate)."""
    import scipy.linalg

    with warnings.catch_warnings():
        warnings.simplefilter("error", scipy.linalg.LinAlgWarning)
        try:
            root = scipy.linalg.sqrtm(matrix)
        except scipy.linalg.LinAlgWarning:
            return None
    return root if numpy.isfinite(root).all() else None


def inception_score(probabilities, splits=10):
    """exp(E_x KL(p(y | x) || p(y))) from class probabilities (N, C): (mean, std) over splits.

    The N rows are cut into ``splits`` consecutive parts; each part's marginal
    p(y) is the mean of its rows, and its score exp(mean_x KL(p(y | x) || p(y))).
    Confident predictions spread evenly over C classes score C; identical
    predictions (for instance all uniform) score 1. Give the rows in random order:
    sorted by class, each split would hold one class and score near 1.

    Example::

        inception_score(numpy.full((100, 10), 0.1))           # (1.0, 0.0)
        inception_score(numpy.eye(10)[numpy.arange(100) % 10])  # (10.0, 0.0)
    """
    p = _host(probabilities, numpy.float64)
    if p.ndim != 2:
        raise ValueError(f"inception_score: probabilities must be (N, classes), got {p.shape}")
    if int(splits) < 1 or len(p) < int(splits):
        raise ValueError(f"inception_score: need at least one image per split, got {len(p)} "
                         f"images for {splits} splits")
    scores = []
    for part in numpy.array_split(p, int(splits)):
        marginal = part.mean(axis=0, keepdims=True)
        # p log(p / marginal), with 0 log 0 = 0
        log_ratio = numpy.log(numpy.maximum(part, 1e-300)) - numpy.log(
            numpy.maximum(marginal, 1e-300))
        kl = (part * log_ratio).sum(axis=1)
        scores.append(numpy.exp(kl.mean()))
    return float(numpy.mean(scores)), float(numpy.std(scores))


def conditional_accuracy(probabilities, requested):
    """The share of images whose most probable class is the one ``requested`` for them.

    ``probabilities``: (N, C) class probabilities (or logits); ``requested``: N labels.
    On real images with their true labels it is the classifier's accuracy.
    """
    p = _host(probabilities)
    requested = _host(requested).reshape(-1)
    if p.ndim != 2 or len(p) != len(requested):
        raise ValueError(f"conditional_accuracy: probabilities {p.shape} need one requested "
                         f"label per row, got {len(requested)}")
    if not len(p):
        raise ValueError("conditional_accuracy: no images")
    return float((p.argmax(axis=1) == requested).mean())


def frechet_classifier_distance(generated, real, classifier=None, batch_size=500):
    """The Frechet distance between the reference classifier's features of two image sets.

    FID's recipe with the MNIST classifier in place of Inception. Both sets are
    (N, 1, 28, 28) or (N, 784) arrays in [0, 1]; use the same N for numbers
    you compare (the estimate is biased upwards for small N).
    """
    classifier = load_reference_classifier() if classifier is None else classifier
    stats = [feature_statistics(classifier_outputs(images, classifier, batch_size).features)
             for images in (generated, real)]
    return frechet_distance(*stats[0], *stats[1])


def sample_quality(generated, real, requested=None, classifier=None, splits=10,
                   batch_size=500):
    """Frechet distance, Inception Score and (with ``requested``) conditional accuracy.

    generated: the images to score, (N, 1, 28, 28) or (N, 784) in [0, 1].
    real: the real images to compare with, or their ``feature_statistics`` as a
        (mean, covariance) tuple (compute them once when scoring several models).
    requested: for a conditional generator, the class each image was asked to show.

    Returns a dict: "frechet_distance", "inception_score", "inception_score_std",
    and "conditional_accuracy" when ``requested`` is given.

    Example::

        sample_quality(cvae.sample(1000, label=None).numpy(), x_train,
                       requested=numpy.arange(1000) % 10)
    """
    classifier = load_reference_classifier() if classifier is None else classifier
    outputs = classifier_outputs(generated, classifier, batch_size)
    if isinstance(real, tuple):
        real_mu, real_cov = real
    else:
        real_mu, real_cov = feature_statistics(
            classifier_outputs(real, classifier, batch_size).features)
    score, spread = inception_score(outputs.probabilities, splits)
    result = {"frechet_distance": frechet_distance(*feature_statistics(outputs.features),
                                                   real_mu, real_cov),
              "inception_score": score, "inception_score_std": spread}
    if requested is not None:
        result["conditional_accuracy"] = conditional_accuracy(outputs.probabilities, requested)
    return result
