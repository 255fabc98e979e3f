"""How well a model explains held-out images: reconstruction error, ELBO, IWAE log-likelihood.

- ``reconstruction_error``: per-pixel BCE and MSE of ``model.reconstruct(x)``
  against ``x``, for any autoencoder-like model (a VAE reconstructs from the
  mean code).
- ``elbo``: the VAE's negative evidence lower bound per image,
  E_q[-log p(x | z)] + KL(q(z | x) || N(0, I)), with one sample z per image:
  the test loss, in nats, that ``model.loss_components`` minimises in training.
- ``iwae_log_likelihood``: Burda et al.'s importance-weighted bound with k
  samples, log p(x) >= E[log (1/k) sum_i p(x, z_i) / q(z_i | x)], which
  tightens towards log p(x) as k grows; k = 1 is the ELBO.

The likelihood is the one the VAEs train with: a Bernoulli decoder,
log p(x | z) = -BCE summed over the pixels, applied to grey-level MNIST as is
usual in tutorials (so it is a score to compare models by, not a density of
continuous images). Models trained with another reconstruction loss are refused.

Computation is batched on the active backend; numbers are host float64.
"""
import math

import numpy

from .. import backend
from ..autograd import Tensor
from ..nn import evaluating
from ..models.vae import VAE

LOG_2PI = math.log(2 * math.pi)


def _host_images(images, name="images"):
    """``images`` (array or Tensor) as a host float32 array (N, ...)."""
    if isinstance(images, Tensor):
        images = images.data
    images = numpy.asarray(backend.to_numpy(images), dtype=numpy.float32)
    if images.ndim < 2:
        raise ValueError(f"{name}: needs a batch axis first, (N, ...); got shape {images.shape}")
    return images


def _host_labels(labels, count):
    labels = numpy.asarray(backend.to_numpy(labels.data if isinstance(labels, Tensor)
                                            else labels)).reshape(-1)
    if len(labels) != count:
        raise ValueError(f"{count} images but {len(labels)} labels; give one label per image")
    return labels.astype(numpy.int64)


def _conditioning(model, labels, count):
    """A function rows -> the extra arguments (the condition) that ``model`` needs for
    those rows of the data: none for an unconditional model, the one-hot labels for a
    label-conditioned ConditionalVAE."""
    condition = getattr(model, "condition", None)
    if condition is None:
        return lambda rows, like: ()
    if condition != "label":
        raise ValueError(f"{type(model).__name__}(condition={condition!r}): these metrics "
                         "need an unconditional model or a label-conditioned one")
    if labels is None:
        raise ValueError(f"{type(model).__name__} is conditioned on labels: pass labels=y")
    labels = _host_labels(labels, count)
    return lambda rows, like: (model.label_condition(
        numpy.ascontiguousarray(labels[rows]), like),)


def bernoulli_log_likelihood(probabilities, images):
    """log p(x | p) = sum over pixels of x log p + (1 - x) log(1 - p), one value per image.

    As ``tinyae.losses.bce``, each log is clamped at -100, so a probability of
    exactly 0 or 1 costs at most 100 nats per pixel instead of infinity.
    Host arrays of shape (N, ...); returns (N,) float64.
    """
    p = numpy.clip(numpy.asarray(probabilities, numpy.float64), 0.0, 1.0)
    x = numpy.asarray(images, numpy.float64)
    p, x = p.reshape(len(p), -1), x.reshape(len(x), -1)
    with numpy.errstate(divide="ignore"):
        log_p = numpy.maximum(numpy.log(p), -100.0)
        log_not_p = numpy.maximum(numpy.log1p(-p), -100.0)
    return (x * log_p + (1 - x) * log_not_p).sum(axis=1)


def reconstruction_error(model, images, labels=None, batch_size=500):
    """Mean per-pixel BCE and MSE of the model's reconstructions of ``images``.

    ``model`` is anything with ``reconstruct`` (an Autoencoder, a VAE: from the
    mean code); a label-conditioned ConditionalVAE also needs ``labels``.
    Reconstructions outside [0, 1] (a model without a sigmoid) are clipped for BCE.
    Returns {"bce": ..., "mse": ...}, each averaged over pixels and images.

    Example::

        reconstruction_error(model, x_test)     # {'bce': 0.081, 'mse': 0.0094}
    """
    if not hasattr(model, "reconstruct") or not hasattr(model, "encode"):
        raise TypeError(f"reconstruction_error: a {type(model).__name__} has no encoder "
                        "to reconstruct images with")
    images = _host_images(images)
    condition = _conditioning(model, labels, len(images))
    bce_total, mse_total = 0.0, 0.0
    for start in range(0, len(images), int(batch_size)):
        rows = slice(start, start + int(batch_size))
        x = Tensor(backend.to_backend(images[rows]))
        x_hat = model.reconstruct(x, *condition(rows, x)).numpy().reshape(x.shape)
        bce_total -= bernoulli_log_likelihood(x_hat, images[rows]).sum()
        mse_total += ((x_hat.astype(numpy.float64) - images[rows]) ** 2).sum()
    pixels = images.size
    return {"bce": float(bce_total / pixels), "mse": float(mse_total / pixels)}


def _check_vae(model, what):
    if not isinstance(model, VAE):
        raise TypeError(f"{what} needs a VAE (an encoder to q(z | x)), got a "
                        f"{type(model).__name__}")
    if model.loss != "bce":
        raise ValueError(f"{what}: this VAE was trained with loss={model.loss!r}; the "
                         "likelihood here is the Bernoulli one of loss='bce'")


def elbo(model, images, labels=None, batch_size=500, rng=0):
    """The VAE's negative ELBO per image on ``images``, with one sample z per image:

        -ELBO = E_q[-log p(x | z)] + KL(q(z | x) || N(0, I))     (nats; lower is better)

    The reconstruction term is the BCE summed over each image's pixels (one z
    drawn from ``rng``, a seed or Generator); the KL is in closed form. Returns
    {"negative_elbo": ..., "recon": ..., "kl": ...}, means over the images.

    Example::

        elbo(vae, x_test)        # {'negative_elbo': 104.3, 'recon': 79.0, 'kl': 25.3}
    """
    _check_vae(model, "elbo")
    images = _host_images(images)
    condition = _conditioning(model, labels, len(images))
    rng = numpy.random.default_rng(rng)
    recon_total, kl_total = 0.0, 0.0
    with evaluating(model):
        for start in range(0, len(images), int(batch_size)):
            rows = slice(start, start + int(batch_size))
            x = Tensor(backend.to_backend(images[rows]))
            extra = condition(rows, x)
            mu, logvar = (t.numpy().astype(numpy.float64) for t in model.encode(x, *extra))
            eps = rng.standard_normal(mu.shape)
            z = (mu + numpy.exp(0.5 * logvar) * eps).astype(numpy.float32)
            x_hat = model.decode(Tensor(backend.to_backend(z)), *extra).numpy()
            recon_total -= bernoulli_log_likelihood(x_hat, images[rows]).sum()
            kl_total += (-0.5 * (1 + logvar - mu ** 2 - numpy.exp(logvar))).sum()
    n = len(images)
    return {"negative_elbo": float((recon_total + kl_total) / n), "recon": float(recon_total / n),
            "kl": float(kl_total / n)}


def log_mean_exp(values, axis=0):
    """log(mean(exp(values))) along ``axis``, computed without overflow:
    m + log(mean(exp(values - m))) with m the maximum."""
    values = numpy.asarray(values, numpy.float64)
    top = values.max(axis=axis, keepdims=True)
    return (top + numpy.log(numpy.exp(values - top).mean(axis=axis, keepdims=True))).squeeze(axis)


def _log_importance_weights(model, images, mu, logvar, eps, condition, rows):
    """log w = log p(x | z) + log p(z) - log q(z | x) for z = mu + exp(logvar / 2) eps.

    images (n, D), mu and logvar (n, d), eps (s, n, d): s samples for each image; returns
    (s, n). ``condition`` and ``rows`` (the images' rows in the data) give the decoder's
    condition, if the model takes one.
    """
    s, n, d = eps.shape
    z = (mu + numpy.exp(0.5 * logvar) * eps).astype(numpy.float32)
    codes = Tensor(backend.to_backend(z.reshape(s * n, d)))
    x_hat = model.decode(codes, *condition(numpy.tile(rows, s), codes)).numpy()
    log_px_z = bernoulli_log_likelihood(x_hat, numpy.tile(images, (s, 1))).reshape(s, n)
    log_pz = -0.5 * ((z.astype(numpy.float64) ** 2).sum(axis=2) + d * LOG_2PI)
    log_qz = -0.5 * ((eps ** 2).sum(axis=2) + logvar.sum(axis=1) + d * LOG_2PI)
    return log_px_z + log_pz - log_qz


def iwae_log_likelihood(model, images, k=100, labels=None, batch_size=100, max_rows=2000,
                        rng=0, per_image=False):
    """Importance-weighted estimate of log p(x) per image (Burda et al., 2016), in nats.

        log p(x) >= log (1/k) sum_i w_i,   w_i = p(x | z_i) p(z_i) / q(z_i | x),
        z_i ~ q(z | x) = N(mu, exp(logvar)),

    with log p(x | z) the Bernoulli likelihood of the decoder's output,
    log p(z) = -1/2 (|z|^2 + d log 2 pi) and log q(z | x) = -1/2 (|eps|^2 +
    sum logvar + d log 2 pi) for z = mu + exp(logvar / 2) eps. The bound rises
    with k towards log p(x) (k >= 100 is usual; k = 1 is the ELBO).

    ``batch_size`` images are encoded at a time and their k samples are decoded
    ``max_rows`` codes at a time, so memory stays bounded whatever k is; the
    average of the w_i uses ``log_mean_exp``. Returns the mean over the images
    (higher is better), or the (N,) estimates with ``per_image=True``.

    Example::

        iwae_log_likelihood(vae, x_test[:1000], k=100)     # e.g. -98.7
    """
    _check_vae(model, "iwae_log_likelihood")
    k = int(k)
    if k < 1:
        raise ValueError(f"iwae_log_likelihood: k (samples per image) must be >= 1, got {k}")
    images = _host_images(images)
    condition = _conditioning(model, labels, len(images))
    rng = numpy.random.default_rng(rng)
    estimates = []
    with evaluating(model):
        for start in range(0, len(images), int(batch_size)):
            rows = numpy.arange(start, min(start + int(batch_size), len(images)))
            x = Tensor(backend.to_backend(images[rows]))
            mu, logvar = (t.numpy().astype(numpy.float64) for t in
                          model.encode(x, *condition(rows, x)))
            flat_images = images[rows].reshape(len(rows), -1)
            n, d = mu.shape
            log_w = numpy.empty((k, n))
            per_chunk = max(1, int(max_rows) // n)          # samples decoded together
            for first in range(0, k, per_chunk):
                eps = rng.standard_normal((min(per_chunk, k - first), n, d))
                log_w[first:first + len(eps)] = _log_importance_weights(
                    model, flat_images, mu, logvar, eps, condition, rows)
            estimates.append(log_mean_exp(log_w, axis=0))
    estimates = numpy.concatenate(estimates) if estimates else numpy.zeros(0)
    return estimates if per_image else float(estimates.mean())
