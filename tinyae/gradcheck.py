"""Numerical checks: central-difference gradient checking and finiteness checks.

``gradcheck`` compares the gradient that backward computes with the central
difference  (f(x + eps) - f(x - eps)) / (2 eps)  for every element of every
input, in float64 (tutorial 01 explains why float32 is too coarse for this).
A non-scalar output is reduced to a scalar with a fixed random weighting
L = sum(w * f(x)), which checks the whole Jacobian-vector product at once.
"""
import numpy

from . import backend
from .autograd import Tensor, no_grad


class GradcheckError(AssertionError):
    """The analytic and the numeric gradient disagree."""


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-4, seed=0):
    """Check ``fn``'s backward against central differences; True or GradcheckError.

    ``inputs`` are float64 Tensors; those with ``requires_grad=True`` are checked.
    On failure the error names the input, the worst element, and both values.

    Example::

        x = tinyae.tensor(np.random.randn(3, 4), requires_grad=True, dtype="float64")
        tinyae.gradcheck(lambda x: (x * x).sum(), x)
    """
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, nothing to check")
    for i in checked:
        if inputs[i].dtype != numpy.float64:
            raise TypeError(f"gradcheck: input {i} is {inputs[i].dtype}; use float64 "
                            "(central differences in float32 are too coarse to trust)")
    out = fn(*inputs)
    xp = backend.get_array_module(out.data)
    rng = numpy.random.default_rng(seed)
    weights = xp.asarray(rng.standard_normal(out.shape))

    def scalar_loss():
        with no_grad():
            return float((fn(*inputs).data * weights).sum())

    for i in checked:
        inputs[i].grad = None
    (out * Tensor(weights)).sum().backward()

    for i in checked:
        x = inputs[i]
        analytic = x.grad if x.grad is not None else xp.zeros(x.shape)
        numeric = numpy.zeros(x.shape)
        flat = x.data.reshape(-1)  # a view: perturbing it perturbs x
        for k in range(flat.size):
            old = float(flat[k])
            flat[k] = old + eps
            plus = scalar_loss()
            flat[k] = old - eps
            minus = scalar_loss()
            flat[k] = old
            numeric.reshape(-1)[k] = (plus - minus) / (2 * eps)
        analytic = backend.to_numpy(analytic)
        error = numpy.abs(analytic - numeric) - (atol + rtol * numpy.abs(numeric))
        if error.size and error.max() > 0:
            worst = numpy.unravel_index(int(error.argmax()), error.shape)
            raise GradcheckError(
                f"gradcheck: input {i} (shape {x.shape}), element {tuple(int(j) for j in worst)}: "
                f"analytic {analytic[worst]:.10g} vs numeric {numeric[worst]:.10g} "
                f"(atol={atol}, rtol={rtol})")
    return True


def check_finite(tensor, what="tensor"):
    """Raise FloatingPointError if ``tensor`` holds NaN or Inf; ``what`` names it."""
    data = tensor.data if isinstance(tensor, Tensor) else tensor
    xp = backend.get_array_module(data)
    bad = ~xp.isfinite(data)
    count = int(bad.sum())
    if count:
        nans = int(xp.isnan(data).sum())
        raise FloatingPointError(
            f"{what} is not finite: {nans} NaN and {count - nans} Inf among "
            f"{int(data.size)} values. Lower the learning rate, check the input data, "
            "or use a numerically stable loss (e.g. bce_with_logits).")
    return tensor
