"""Loss functions: how far predictions are from their targets, as a number to minimise.

Every loss takes ``reduction``, and there are two kinds of loss, which differ in
what ``"mean"`` averages over:

* **per-element** losses (``mse``, ``bce``, ``bce_with_logits`` and the GAN
  losses), as in PyTorch: ``"none"`` returns one loss per element (the input's
  shape), ``"sum"`` adds them all, ``"mean"`` divides that sum by the number of
  elements.
* **per-example** losses (``euclidean``, ``kl_normal``, ``cross_entropy``): the
  first axis is the batch and each example gets one loss (summed over its other
  axes). ``"none"`` returns the N losses (shape ``(N,)``), ``"sum"`` adds them,
  ``"mean"`` divides by N, the batch size. This is the usual convention of
  autoencoder and VAE papers: reconstruction + KL per example, averaged over the
  batch.

The losses with a natural fused gradient are single ``Function`` classes: the
derivative of the loss is simpler, cheaper and more stable than the chain rule
through its pieces (``bce_with_logits`` backward is just ``sigmoid(x) - y``).
Tutorial 05 derives each one. ``bce_with_logits`` and ``kl_normal`` compute loss
and gradient together in one fused kernel (``kernels.sigmoid_bce_with_logits``,
``kernels.kl_normal_forward_backward``; the plain formulas are in kernels/reference.py).

Predictions and targets must have the same shape (no broadcasting: a (N, 1)
against (N,) mistake would silently build an (N, N) loss). A target of another
dtype (integer labels, float64 data) is cast to the prediction's dtype, so a
float32 model stays in float32.
"""
import math

import kernels

from .autograd import Function, Tensor, as_tensor, numel
from .backend import get_array_module

REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(loss, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{loss}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _check_same_shape(loss, a, b, names=("input", "target")):
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"{loss}: {names[0]} has shape {tuple(a.shape)} but {names[1]} has shape "
            f"{tuple(b.shape)}; they must be equal (losses do not broadcast)")


def _check_has_batch_axis(loss, x):
    if x.ndim < 1:
        raise ValueError(f"{loss}: needs a batch axis first, got a 0-d array; "
                         "reshape a single example to (1, ...)")


def _cast_like(target, x):
    """The target in the prediction's dtype (no float64 upcast of a float32 model)."""
    return target.astype(x.dtype, copy=False)


def _sum_per_example(values):
    """Sum over every axis but the first (the batch): shape (N,)."""
    return values.sum(axis=tuple(range(1, values.ndim)))


class ReducedLoss(Function):
    """A loss Function: forward computes the unreduced losses and calls ``reduce``.

    ``spread`` is the backward of the reduction: the output's gradient for each
    unreduced loss (``gy`` itself for "none" and "sum", ``gy / count`` for "mean").
    ``target_gradient`` returns the gradient of the second input only when that
    input asks for one, so that data and labels cost nothing in backward.
    """

    name = "loss"

    def __init__(self, reduction="mean"):
        _check_reduction(self.name, reduction)
        self.reduction = reduction

    def reduce(self, losses):
        """The per-element losses reduced as ``self.reduction`` says (remembering the count)."""
        self.count = numel(losses.shape)
        if self.reduction == "none":
            return losses
        total = losses.sum()
        if self.reduction == "mean":
            total = total / self.count
        return self.xp.asarray(total)

    def spread(self, gy):
        """The reduction's backward: the upstream gradient per element (divided by the count
        for "mean").
        """
        return gy / self.count if self.reduction == "mean" else gy

    def spread_per_example(self, gy, ndim):
        """``spread`` for (N,) per-example losses, shaped to broadcast over (N, ...)."""
        g = self.spread(gy)
        if self.reduction == "none":
            g = g.reshape(tuple(g.shape) + (1,) * (ndim - 1))
        return g

    def target_gradient(self, grad):
        """The gradient for the target input, in its dtype, or None when the target needs none."""
        target = self.inputs[1]
        if not target.requires_grad:
            return None
        return grad.astype(target.dtype, copy=False)


# ---------------------------------------------------------------- regression
class MeanSquaredError(ReducedLoss):
    """l = (x - y)^2 per element;  dl/dx = 2 (x - y), dl/dy = -2 (x - y). Tutorial 05."""

    name = "mse"

    def forward(self, x, y):
        _check_same_shape(self.name, x, y)
        self.diff = x - _cast_like(y, x)
        return self.reduce(self.diff * self.diff)

    def backward(self, gy):
        gx = 2 * self.spread(gy) * self.diff
        return gx, self.target_gradient(-gx)


class SquaredEuclidean(ReducedLoss):
    """l_n = sum_i (x_ni - y_ni)^2 per example n;  dl_n/dx_ni = 2 (x_ni - y_ni). Tutorial 05."""

    name = "euclidean"

    def forward(self, x, y):
        _check_same_shape(self.name, x, y)
        _check_has_batch_axis(self.name, x)
        self.diff = x - _cast_like(y, x)
        return self.reduce(_sum_per_example(self.diff * self.diff))

    def backward(self, gy):
        gx = 2 * self.spread_per_example(gy, self.diff.ndim) * self.diff
        return gx, self.target_gradient(-gx)


def mse(input, target, reduction="mean"):
    """Mean squared error, per element: (input - target)^2, as torch.nn.functional.mse_loss.

    "mean" averages over all elements; "none" returns the input's shape.

    Example::

        loss = tinyae.losses.mse(reconstruction, x)
    """
    return MeanSquaredError(reduction).apply(input, target)


def euclidean(input, target, reduction="mean"):
    """Squared L2 distance per example: ||input_n - target_n||^2 over all non-batch axes.

    The reconstruction error of an autoencoder, ||F(X) - X||^2. "none" returns
    shape (N,); "mean" averages over the batch only (not over pixels, unlike mse).

    Example::

        loss = tinyae.losses.euclidean(model(x), x)   # mean over the batch
    """
    return SquaredEuclidean(reduction).apply(input, target)


# ---------------------------------------------------------------- binary cross-entropy
class BinaryCrossEntropy(ReducedLoss):
    """l = -(y log p + (1 - y) log(1 - p));  dl/dp = (p - y) / (p (1 - p)),
    dl/dy = log(1 - p) - log p. Tutorial 05.

    As PyTorch's BCELoss, both logs are clamped at -100, so p = 0 or 1 gives a
    loss of at most 100 per element instead of inf, and the denominator
    p (1 - p) of the gradient is kept above 1e-12 instead of dividing by zero.
    Forward and backward are one fused kernel each (``kernels.bce_forward`` and
    ``kernels.bce_backward``; plain formulas in kernels/reference.py). A p outside
    [0, 1] makes the loss NaN, so the input is searched for one only then.
    """

    name = "bce"

    def forward(self, p, y):
        _check_same_shape(self.name, p, y)
        self.p, self.y, self.count = p, _cast_like(y, p), numel(p.shape)
        loss = kernels.bce_forward(p, self.y, self.reduction)
        if (self.reduction == "none" or math.isnan(float(loss))) and \
                bool(((p < 0) | (p > 1)).any()):
            raise ValueError(
                "bce: input must be probabilities in [0, 1], found values outside; "
                "for raw scores (logits) use bce_with_logits, which is also more stable")
        return loss

    def backward(self, gy):
        gp = kernels.bce_backward(gy, self.p, self.y, self.reduction)
        if not self.needs_grad(1):
            return gp, None
        log_p, log_1mp = kernels.reference.clamped_logs(self.p)
        return gp, self.target_gradient(self.spread(gy) * (log_1mp - log_p))


class BinaryCrossEntropyWithLogits(ReducedLoss):
    """l = max(x, 0) - x y + log(1 + exp(-|x|)), i.e. bce(sigmoid(x), y);
    dl/dx = sigmoid(x) - y, dl/dy = -x. Tutorial 05.

    Only exp(-|x|) <= 1 is ever computed, so no logit overflows (|x| = 1e4 is fine).
    Forward gets the losses and dl/dx (already divided by the count for "mean")
    from one kernel, ``kernels.sigmoid_bce_with_logits``; backward scales dl/dx by gy.
    """

    name = "bce_with_logits"

    def forward(self, x, y):
        _check_same_shape(self.name, x, y)
        self.x, self.count = x, numel(x.shape)
        loss, self.grad = kernels.sigmoid_bce_with_logits(x, _cast_like(y, x), self.reduction)
        return loss

    def backward(self, gy):
        gx = gy * self.grad     # gy (sigmoid(x) - y), "mean" already divided by the count
        return gx, self.target_gradient(-self.spread(gy) * self.x)


def bce(input, target, reduction="mean"):
    """Binary cross-entropy on probabilities, as torch.nn.functional.binary_cross_entropy.

    ``input`` holds probabilities in [0, 1] (e.g. a sigmoid output); ``target`` values
    in [0, 1]. Safe at exactly 0 and 1: the logs are clamped at -100, as in PyTorch.
    "mean" averages over all elements; "none" returns the input's shape. Prefer
    ``bce_with_logits`` on the pre-sigmoid scores: it is exact where this one clamps.

    Example::

        loss = tinyae.losses.bce(tinyae.sigmoid(logits), x, reduction="sum")
    """
    return BinaryCrossEntropy(reduction).apply(input, target)


def bce_with_logits(input, target, reduction="mean"):
    """Binary cross-entropy on logits: bce(sigmoid(input), target), computed stably.

    As torch.nn.functional.binary_cross_entropy_with_logits. "mean" averages over
    all elements; "none" returns the input's shape.

    Example::

        loss = tinyae.losses.bce_with_logits(decoder(z), x)
    """
    return BinaryCrossEntropyWithLogits(reduction).apply(input, target)


# ---------------------------------------------------------------- VAE: KL divergence
class KLNormal(ReducedLoss):
    """KL_n = -1/2 sum_j (1 + logvar_nj - mu_nj^2 - exp(logvar_nj)) per example n;
    dKL/dmu = mu, dKL/dlogvar = (exp(logvar) - 1) / 2. Tutorial 05.

    Both the per-example KL and its two gradients come from one kernel,
    ``kernels.kl_normal_forward_backward``."""

    name = "kl_normal"

    def forward(self, mu, logvar):
        _check_same_shape(self.name, mu, logvar, names=("mu", "logvar"))
        _check_has_batch_axis(self.name, mu)
        kl, self.dmu, self.dlogvar = kernels.kl_normal_forward_backward(mu, _cast_like(logvar, mu))
        return self.reduce(kl)

    def backward(self, gy):
        g = self.spread_per_example(gy, self.dmu.ndim)
        return g * self.dmu, g * self.dlogvar


def kl_normal(mu, logvar, reduction="mean"):
    """KL(N(mu, exp(logvar)) || N(0, I)) in closed form, one value per example.

    ``logvar`` is the log of the *variance* (not of the standard deviation).
    Sums over the latent axes; "none" returns shape (N,), "mean" averages over
    the batch.

    Example::

        mu, logvar = encoder(x)
        loss = tinyae.losses.euclidean(decoder(z), x) + tinyae.losses.kl_normal(mu, logvar)
    """
    return KLNormal(reduction).apply(mu, logvar)


# ---------------------------------------------------------------- classification
class CrossEntropy(ReducedLoss):
    """l_n = logsumexp(x_n) - x_n[c_n] = -log softmax(x_n)[c_n];
    dl_n/dx_n = softmax(x_n) - onehot(c_n). Tutorial 05.

    Subtracting each row's maximum first keeps exp from overflowing.
    """

    name = "cross_entropy"

    def forward(self, logits, labels):
        xp = self.xp
        _check_class_labels(logits, labels)
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp_shifted = xp.exp(shifted)
        total = exp_shifted.sum(axis=1)
        self.rows, self.labels = xp.arange(logits.shape[0]), labels
        self.probs = exp_shifted / total[:, None]
        return self.reduce(xp.log(total) - shifted[self.rows, labels])

    def backward(self, gy):
        grad = self.probs.copy()
        grad[self.rows, self.labels] -= 1
        return self.spread_per_example(gy, 2) * grad, None


def _check_class_labels(logits, labels):
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must have shape (N, C), got "
                         f"{tuple(logits.shape)}")
    n, classes = logits.shape
    if tuple(labels.shape) != (n,):
        raise ValueError(f"cross_entropy: labels must have shape ({n},) for logits of shape "
                         f"{tuple(logits.shape)}, got {tuple(labels.shape)}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: labels must be integer class indices, got dtype "
                        f"{labels.dtype}; make them with dtype='int64'")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise ValueError(f"cross_entropy: labels must lie in [0, {classes}) for {classes} "
                         f"classes, got values from {int(labels.min())} to {int(labels.max())}")


def cross_entropy(logits, labels, reduction="mean"):
    """Softmax cross-entropy, as torch.nn.functional.cross_entropy with class indices.

    ``logits`` has shape (N, C) (raw scores, no softmax); ``labels`` holds N integer
    class indices (an integer array or Tensor). "none" returns shape (N,), "mean"
    averages over the batch.

    Example::

        loss = tinyae.losses.cross_entropy(classifier(x), labels)
    """
    return CrossEntropy(reduction).apply(logits, labels)


# ---------------------------------------------------------------- GAN losses (on logits)
def _full_like(x, value):
    """A constant tensor of x's shape, dtype and backend (a label for every logit)."""
    xp = get_array_module(x.data)
    return Tensor(xp.full(x.shape, value, dtype=x.dtype))


def gan_discriminator_loss(real_logits, fake_logits, real_label=1.0, reduction="mean"):
    """The discriminator's loss: -log D(x) - log(1 - D(G(z))), on logits.

    = bce_with_logits(real_logits, real_label) + bce_with_logits(fake_logits, 0).
    ``real_label`` below 1 (e.g. 0.9) is one-sided label smoothing: only the real
    targets are softened. Per element: "mean" averages each term over its own
    elements and adds the two; "sum" adds everything; "none" returns the pair
    (losses on real, losses on fake), as their batches need not match.

    Example::

        d_loss = gan_discriminator_loss(D(x), D(G(z).detach()), real_label=0.9)
    """
    _check_reduction("gan_discriminator_loss", reduction)
    real_logits, fake_logits = as_tensor(real_logits), as_tensor(fake_logits)
    real = bce_with_logits(real_logits, _full_like(real_logits, real_label), reduction)
    fake = bce_with_logits(fake_logits, _full_like(fake_logits, 0.0), reduction)
    return (real, fake) if reduction == "none" else real + fake


def gan_generator_loss(fake_logits, reduction="mean"):
    """The generator's non-saturating loss: -log D(G(z)) = bce_with_logits(fake_logits, 1).

    Its gradient stays large while the discriminator still wins (D(G(z)) near 0),
    which is why GANs are trained with it rather than the minimax form.
    Per element, like ``bce_with_logits``.

    Example::

        g_loss = gan_generator_loss(D(G(z)))
    """
    _check_reduction("gan_generator_loss", reduction)
    fake_logits = as_tensor(fake_logits)
    return bce_with_logits(fake_logits, _full_like(fake_logits, 1.0), reduction)


def gan_generator_loss_minimax(fake_logits, reduction="mean"):
    """The generator's loss from the original minimax game: log(1 - D(G(z))), minimised.

    = -bce_with_logits(fake_logits, 0). For teaching: its gradient vanishes when
    D(G(z)) is near 0, early in training, so prefer ``gan_generator_loss``.
    Per element, like ``bce_with_logits``.
    """
    _check_reduction("gan_generator_loss_minimax", reduction)
    fake_logits = as_tensor(fake_logits)
    return -bce_with_logits(fake_logits, _full_like(fake_logits, 0.0), reduction)
