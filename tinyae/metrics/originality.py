"""Are generated images new? Distances to the nearest training image and reconstruction.

A generator that copies its training set would score well on every quality
metric. The check: how far is each generated image from its nearest training
image, compared with how far new real images (held out from training) are?
Generated images much closer than held-out ones suggest memorised copies;
about as close means the model makes digits as new as fresh handwriting.
The same comparison against the model's reconstructions of training images asks
whether it only reproduces what its decoder can already draw from real codes.
"""
import numpy

from ..models.latent import nearest_neighbours


def nearest_distances(queries, references, batch_size=1024):
    """The Euclidean distance from each query image to its nearest reference: (N,) host.

    Batched (``tinyae.models.latent.nearest_neighbours``), so 60,000 references fit.
    """
    return nearest_neighbours(queries, references, metric="l2", k=1,
                              batch_size=batch_size).distances[:, 0].astype(numpy.float64)


def originality(generated, train_images, held_out, reconstructions=None, batch_size=1024):
    """Mean nearest-neighbour distances of generated and of held-out real images.

    generated: the model's samples; train_images: what it was trained on;
    held_out: real images it never saw (e.g. the test set), the yardstick;
    reconstructions: the model's reconstructions of (some) training images, or
        None for a model without an encoder.

    Returns a dict of mean Euclidean distances (pixels in [0, 1]):
    "generated_to_train", "held_out_to_train", their ratio "train_ratio" (below
    1: samples sit closer to the training set than new real digits do), and with
    reconstructions "generated_to_reconstruction", "held_out_to_reconstruction".

    Example::

        originality(samples, x_train, x_test[:1000], vae.reconstruct(x_train[:10000]).numpy())
    """
    to_train = nearest_distances(generated, train_images, batch_size).mean()
    real_to_train = nearest_distances(held_out, train_images, batch_size).mean()
    result = {"generated_to_train": float(to_train), "held_out_to_train": float(real_to_train),
              "train_ratio": float(to_train / real_to_train) if real_to_train else float("nan")}
    if reconstructions is not None:
        result["generated_to_reconstruction"] = float(
            nearest_distances(generated, reconstructions, batch_size).mean())
        result["held_out_to_reconstruction"] = float(
            nearest_distances(held_out, reconstructions, batch_size).mean())
    return result
