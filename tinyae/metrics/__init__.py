"""Metrics for autoencoders and generative models on MNIST.

How well a model explains held-out images (``likelihood``)::

    reconstruction_error(model, x_test)            # {"bce": per pixel, "mse": per pixel}
    elbo(vae, x_test)                              # {"negative_elbo", "recon", "kl"} per image
    iwae_log_likelihood(vae, x_test[:1000], k=100) # log p(x) estimate, nats per image

How its samples look to a reference MNIST classifier (``classifier``,
``sample_quality``): a Frechet distance between penultimate-layer features (the
MNIST analogue of FID), an Inception-Score analogue, and conditional accuracy::

    sample_quality(samples, x_train, requested=labels)
    frechet_distance(mu1, cov1, mu2, cov2)         # the primitive, on Gaussians

Whether the samples are new (``originality``) and what the model costs (``cost``)::

    originality(samples, x_train, x_test[:1000], reconstructions)
    parameter_count(model); EpochTimer(); sampling_throughput(lambda n: vae.sample(n))

``python -m benchmarks.quality`` puts every metric in one table for the
models of ``tinyae.models``.
"""
from .classifier import (ClassifierOutputs, MNISTClassifier, classifier_outputs,
                         load_reference_classifier, reference_classifier_path)
from .cost import EpochTimer, parameter_count, sampling_throughput
from .likelihood import (bernoulli_log_likelihood, elbo, iwae_log_likelihood, log_mean_exp,
                         reconstruction_error)
from .originality import nearest_distances, originality
from .sample_quality import (conditional_accuracy, feature_statistics, frechet_classifier_distance,
                             frechet_distance, inception_score, sample_quality)

__all__ = ["ClassifierOutputs", "MNISTClassifier", "classifier_outputs",
           "load_reference_classifier", "reference_classifier_path", "EpochTimer",
           "parameter_count", "sampling_throughput", "bernoulli_log_likelihood", "elbo",
           "iwae_log_likelihood", "log_mean_exp", "reconstruction_error", "nearest_distances",
           "originality", "conditional_accuracy", "feature_statistics",
           "frechet_classifier_distance", "frechet_distance", "inception_score",
           "sample_quality"]
