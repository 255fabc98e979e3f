"""Looking inside the latent space: interpolation, attribute vectors, PCA, neighbours.

These work on codes as host NumPy arrays (what ``model.embed(x).numpy()``
gives) and return host arrays; the few that need a model call its ``embed``
(the deterministic code: the mean for a VAE) and ``decode``. The study
``tinyae study autoencoder-gmm`` shows each on MNIST.

- ``interpolate``: the straight line between two codes.
- ``attribute_vector`` / ``latent_arithmetic``: "smiling minus not smiling",
  added to a code in steps.
- ``morph``: decode the line between two images' codes.
- ``decode_basis``: what each latent direction draws on its own.
- ``pca``: how many directions the codes really use.
- ``nearest_neighbours``: is a generated image new, or a copy of a training one?

A point on an interpolation or an attribute step is a code nobody drew, and it
may lie where no training code does, or in another class's region. A
``GMMSampler`` fitted to the training codes says which: ``sampler.check(codes)``
gives each code's most probable class, its posterior p(c | z), and ``far``,
its density below that of almost every training code (tutorial 12).
"""
import collections

import numpy

from .. import backend, nn
from ..autograd import Tensor


def _host(array, name, ndim=None):
    """``array`` (NumPy, CuPy or Tensor) as a float32 host array, optionally checking ndim."""
    if isinstance(array, Tensor):
        array = array.numpy()
    array = numpy.asarray(backend.to_numpy(array), dtype=numpy.float32)
    if ndim is not None and array.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimensions, got "
                         f"shape {array.shape}")
    return array


def interpolate(z_a, z_b, steps):
    """``steps`` codes evenly spaced on the segment from ``z_a`` to ``z_b``, endpoints included.

    z_t = (1 - t) z_a + t z_b for t = 0, 1/(steps-1), ..., 1. Returns (steps, *z_a.shape).

    Example::

        line = interpolate(code_of_a_3, code_of_an_8, steps=8)   # (8, latent_dim)
        sampler.check(line).far        # True where the line leaves the training codes
    """
    z_a, z_b = _host(z_a, "z_a"), _host(z_b, "z_b")
    if z_a.shape != z_b.shape:
        raise ValueError(f"interpolate: z_a has shape {z_a.shape} but z_b has {z_b.shape}")
    if int(steps) < 2:
        raise ValueError(f"interpolate: steps must be at least 2 (the two endpoints), got {steps}")
    t = numpy.linspace(0.0, 1.0, int(steps), dtype=numpy.float32).reshape(
        (-1,) + (1,) * z_a.ndim)
    return (1 - t) * z_a + t * z_b


def attribute_vector(codes_with, codes_without):
    """The mean code of examples with an attribute minus the mean of those without it."""
    codes_with = _host(codes_with, "codes_with", ndim=(2,))
    codes_without = _host(codes_without, "codes_without", ndim=(2,))
    if codes_with.shape[1] != codes_without.shape[1] or not len(codes_with) or not len(
            codes_without):
        raise ValueError(f"attribute_vector: need two non-empty sets of codes of one size, got "
                         f"shapes {codes_with.shape} and {codes_without.shape}")
    return codes_with.mean(axis=0) - codes_without.mean(axis=0)


def latent_arithmetic(z, vector, scales):
    """z + s * vector for each s in ``scales``.

    ``z`` of shape (d,) gives (len(scales), d); a batch (n, d) gives (n, len(scales), d).
    ``sampler.check`` of the result flags the steps that went too far (tutorial 12).
    """
    z = _host(z, "z", ndim=(1, 2))
    vector = _host(vector, "vector", ndim=(1,))
    if vector.shape[0] != z.shape[-1]:
        raise ValueError(f"latent_arithmetic: vector has {vector.shape[0]} dimensions but the "
                         f"codes have {z.shape[-1]}")
    scales = numpy.asarray(scales, dtype=numpy.float32).reshape(-1, 1)
    return z[..., None, :] + scales * vector


def morph(model, image_a, image_b, steps):
    """Decode the codes on the line between two images' codes: (steps, *image_shape) host images.

    Uses ``model.embed`` (for a VAE the mean of q(z|x)) and ``model.decode``.
    """
    pair = numpy.stack([_host(image_a, "image_a"), _host(image_b, "image_b")])
    codes = model.embed(pair).numpy()
    return decode_codes(model, interpolate(codes[0], codes[1], steps))


def decode_basis(model, latent_dim, scale=1.0):
    """Decode scale * e_i for every standard basis vector e_i: (latent_dim, *image_shape)."""
    basis = numpy.eye(int(latent_dim), dtype=numpy.float32) * numpy.float32(scale)
    return decode_codes(model, basis)


def decode_codes(model, codes):
    """``model.decode`` on host codes, in eval mode and without a graph; host images back."""
    with nn.evaluating(model):
        return model.decode(codes).numpy()


PCAResult = collections.namedtuple("PCAResult", "eigenvalues components projection")
PCAResult.__doc__ = """What ``pca`` found: ``eigenvalues`` (variance along each component,
largest first), ``components`` (one direction per row) and ``projection`` (the codes
projected on the first two components, shape (n, 2))."""


def pca(codes, n_components=None):
    """Principal components of the codes (scikit-learn's PCA): eigenvalues, components, 2-D map.

    Eigenvalues that fall to almost zero after a few components say the codes
    use only that many directions.

    Example::

        result = pca(codes)
        plt.scatter(*result.projection.T, c=labels)
    """
    from sklearn.decomposition import PCA
    codes = _host(codes, "codes", ndim=(2,))
    fitted = PCA(n_components=n_components).fit(codes)
    projection = fitted.transform(codes)[:, :2].astype(numpy.float32)
    return PCAResult(fitted.explained_variance_.astype(numpy.float32),
                     fitted.components_.astype(numpy.float32), projection)


NeighbourResult = collections.namedtuple("NeighbourResult", "indices distances")


def nearest_neighbours(queries, references, metric="l2", k=1, batch_size=1024):
    """The ``k`` references nearest each query: indices and distances, each (n_queries, k).

    Metrics (images are flattened):
    - "l2": Euclidean distance ||q - r||.
    - "bce": mean binary cross-entropy of the query read as a prediction of the
      reference, -mean(r log q + (1 - r) log(1 - q)); q is clipped to [1e-7, 1 - 1e-7].

    The distance matrix is computed ``batch_size`` x ``batch_size`` blocks at a
    time on the active backend, keeping only the running k best, so memory stays
    small for 60,000 references.

    Example (the originality check: is a generated digit a copy?)::

        found = nearest_neighbours(samples, x_train, k=1)
        copies = x_train[found.indices[:, 0]]
    """
    if metric not in ("l2", "bce"):
        raise ValueError(f"nearest_neighbours: metric must be 'l2' or 'bce', got {metric!r}")
    queries = _host(queries, "queries")
    references = _host(references, "references")
    queries = queries.reshape(len(queries), -1)
    references = references.reshape(len(references), -1)
    if queries.shape[1] != references.shape[1]:
        raise ValueError(f"nearest_neighbours: queries have {queries.shape[1]} values each, "
                         f"references {references.shape[1]}; they must match")
    k = int(k)
    if not 1 <= k <= len(references):
        raise ValueError(f"nearest_neighbours: k must be between 1 and the number of "
                         f"references ({len(references)}), got {k}")
    xp = backend.xp()
    stable = {"kind": "stable"} if xp is numpy else {}  # CuPy's sort is always stable
    best_distance, best_index = [], []
    for start in range(0, len(queries), batch_size):
        q = xp.asarray(queries[start:start + batch_size])
        if metric == "l2":
            q_terms = (q * q).sum(axis=1, keepdims=True)
        else:
            q = xp.clip(q, 1e-7, 1 - 1e-7)
            log_q, log_not_q = xp.log(q), xp.log(1 - q)
        top_d = xp.full((len(q), 0), xp.inf, dtype=xp.float32)
        top_i = xp.zeros((len(q), 0), dtype=xp.int64)
        for ref_start in range(0, len(references), batch_size):
            r = xp.asarray(references[ref_start:ref_start + batch_size])
            if metric == "l2":
                # ||q - r||^2 = ||q||^2 - 2 q.r + ||r||^2, one matrix product per block
                squared = q_terms - 2 * (q @ r.T) + (r * r).sum(axis=1)[None, :]
                distance = xp.sqrt(xp.maximum(squared, 0))
            else:
                distance = -(log_q @ r.T + log_not_q @ (1 - r).T) / q.shape[1]
            index = xp.arange(ref_start, ref_start + len(r))[None, :].repeat(len(q), axis=0)
            top_d = xp.concatenate([top_d, distance.astype(xp.float32)], axis=1)
            top_i = xp.concatenate([top_i, index], axis=1)
            keep = xp.argsort(top_d, axis=1, **stable)[:, :k]
            top_d = xp.take_along_axis(top_d, keep, axis=1)
            top_i = xp.take_along_axis(top_i, keep, axis=1)
        best_distance.append(backend.to_numpy(top_d))
        best_index.append(backend.to_numpy(top_i))
    return NeighbourResult(numpy.concatenate(best_index), numpy.concatenate(best_distance))
