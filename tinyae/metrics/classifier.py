"""The reference MNIST classifier that the sample-quality metrics look through.

FID scores images through the Inception network, trained on ImageNet; for
28x28 digits a small convolutional network trained on MNIST plays that part.
Its architecture is defined here, its weights ship in
``tinyae/assets/mnist_classifier.npz`` (written by ``python -m
benchmarks.train_classifier``, which states how it was trained and its test
accuracy)::

    classifier = load_reference_classifier()
    outputs = classifier_outputs(images, classifier)
    outputs.features           # (N, 128) penultimate-layer activations (for Frechet distances)
    outputs.probabilities      # (N, 10) p(y | x) (for the Inception Score and accuracies)

The network has no pooling layer: strided convolutions halve the image
(28 -> 14 -> 7 -> 4), then two dense layers classify.
"""
import collections
import importlib.resources
import math

import numpy

from .. import backend, checkpoint, nn
from ..autograd import Tensor

ARCHITECTURE = "mnist-convnet-v1"   # stored with the weights; bump when the layers change
ASSET = "mnist_classifier.npz"      # in tinyae/assets
FEATURE_DIM = 128
IMAGE_SHAPE = (1, 28, 28)


class MNISTClassifier(nn.Module):
    """A small convolutional MNIST classifier: ``features`` then ``head``.

    features: Conv2d(1, 16, 3, padding 1) - ReLU - Conv2d(16, 32, 3, stride 2, padding 1)
    - ReLU - Conv2d(32, 32, 3, padding 1) - ReLU - Conv2d(32, 64, 3, stride 2, padding 1)
    - ReLU - Conv2d(64, 64, 3, stride 2, padding 1) - ReLU - Flatten - Dense(64*4*4, 128)
    - ReLU, the 128 penultimate features; head: Dropout - Dense(128, 10), the logits.
    About 202,000 parameters (0.8 MB in float32).

    Example::

        model = MNISTClassifier()          # random weights; load_reference_classifier() for trained
        logits = model(x)                  # (N, 1, 28, 28) -> (N, 10)
    """

    def __init__(self, dropout=0.3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),     # 28 -> 14
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),     # 14 -> 7
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(),     # 7 -> 4
            nn.Flatten(), nn.Dense(64 * 4 * 4, FEATURE_DIM), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Dense(FEATURE_DIM, 10))

    def forward(self, x):
        """The logits (N, 10) of images (N, 1, 28, 28)."""
        return self.head(self.features(x))


def reference_classifier_path():
    """Where the shipped weights live (inside the installed package)."""
    return importlib.resources.files("tinyae") / "assets" / ASSET


def load_reference_classifier(path=None):
    """The reference classifier with its trained weights, in eval mode, on the active backend.

    ``path``: a checkpoint written by ``benchmarks/train_classifier.py``; default the
    one shipped in ``tinyae/assets``. Raises FileNotFoundError, saying how to make
    the file, when it is missing.

    Example::

        classifier = load_reference_classifier()
        outputs = classifier_outputs(x_test, classifier)
    """
    if path is not None:
        return _load_classifier(path)
    with importlib.resources.as_file(reference_classifier_path()) as file:
        return _load_classifier(file)


def _load_classifier(path):
    try:
        state = checkpoint.load(path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"the reference MNIST classifier's weights are missing: {path} does not exist. "
            "Train them with `python -m benchmarks.train_classifier` (from the repository "
            "root; it writes tinyae/assets/mnist_classifier.npz), or reinstall tinyae, "
            "whose package ships the file.") from None
    found = state.get("architecture") if isinstance(state, dict) else None
    if found != ARCHITECTURE:
        raise ValueError(f"{path}: holds weights for architecture {found!r}, but this tinyae "
                         f"builds {ARCHITECTURE!r}; retrain with "
                         "`python -m benchmarks.train_classifier`")
    model = MNISTClassifier()
    model.load_state_dict(state["model"])
    model.eval()
    model.info = {key: value for key, value in state.items() if key != "model"}
    return model


def as_digit_images(images, name="images"):
    """Host float32 images of shape (N, 1, 28, 28) from (N, 784), (N, 28, 28) or
    (N, 1, 28, 28) arrays or Tensors, in [0, 1] as the data."""
    if isinstance(images, Tensor):
        images = images.data
    images = numpy.asarray(backend.to_numpy(images), dtype=numpy.float32)
    if images.ndim < 2 or math.prod(images.shape[1:]) != math.prod(IMAGE_SHAPE):
        raise ValueError(f"{name}: the reference classifier takes 28x28 digits, shape "
                         f"(N, 1, 28, 28) or (N, 784); got shape {images.shape}")
    images = images.reshape((len(images),) + IMAGE_SHAPE)
    if images.size and (images.min() < -0.05 or images.max() > 1.05):
        raise ValueError(f"{name}: pixel values run from {images.min():.3g} to "
                         f"{images.max():.3g}, but the classifier expects images in [0, 1] "
                         "like the data. (GAN samples from model.sample are already mapped "
                         "back to [0, 1]; raw tanh outputs g need (g + 1) / 2.)")
    return images


ClassifierOutputs = collections.namedtuple("ClassifierOutputs", "features probabilities")
ClassifierOutputs.__doc__ = """What the reference classifier sees in a set of images:
``features`` (N, 128), the penultimate-layer activations, and ``probabilities``
(N, 10), the softmax p(y | x); host float64 arrays."""


def classifier_outputs(images, classifier=None, batch_size=500):
    """Features and class probabilities of ``images`` under the classifier, batch by batch.

    ``classifier``: default ``load_reference_classifier()``. Runs in eval mode
    without a graph, on the active backend; returns host arrays.

    Example::

        outputs = classifier_outputs(model.sample(1000).numpy())
        outputs.probabilities.argmax(axis=1)       # the digit each sample shows
    """
    classifier = load_reference_classifier() if classifier is None else classifier
    images = as_digit_images(images)
    features, logits = [], []
    with nn.evaluating(classifier):
        for start in range(0, len(images), int(batch_size)):
            batch = Tensor(backend.to_backend(images[start:start + batch_size]))
            h = classifier.features(batch)
            features.append(h.numpy())
            logits.append(classifier.head(h).numpy())
    if not features:
        return ClassifierOutputs(numpy.zeros((0, FEATURE_DIM)), numpy.zeros((0, 10)))
    logits = numpy.concatenate(logits).astype(numpy.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = numpy.exp(shifted)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return ClassifierOutputs(numpy.concatenate(features).astype(numpy.float64), probabilities)
