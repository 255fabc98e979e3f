"""Hot kernels for tinyae: a plain reference, a Numba version and a CuPy version of each.

``kernels.im2col(...)`` and friends dispatch on the arrays they are given and on
the kernel mode: ``"fused"`` (default: Numba on NumPy arrays, CuPy kernels on
CuPy arrays) or ``"reference"`` (the plain versions in ``kernels.reference``,
for teaching and debugging). Choose with ``TINYAE_KERNELS=reference`` in the
environment or ``kernels.set_mode("reference")``.

The three implementations of every kernel share one signature:

=================  ==========================  ===============================
module             runs on                     loaded
=================  ==========================  ===============================
kernels.reference  NumPy or CuPy, plain code   always
kernels.cpu        NumPy, Numba @njit          on the first fused call (Numba)
kernels.gpu        CuPy, CUDA kernels          on the first fused CuPy call
=================  ==========================  ===============================

Importing ``kernels`` imports neither Numba nor CuPy, and nothing is compiled
until a kernel is first called (then once per dtype, cached on disk).
Arrays of dtypes other than float32 and float64 always take the reference path.
Every kernel here has a caller in tinyae (ops, functional, losses, optim, models).
"""
import contextlib
import importlib
import os

from . import reference

MODES = ("fused", "reference")
_mode = [os.environ.get("TINYAE_KERNELS", "fused").strip().lower() or "fused"]
if _mode[0] not in MODES:
    raise ValueError(f"TINYAE_KERNELS={_mode[0]!r}: choose one of {MODES}")

FUSED_DTYPES = ("float32", "float64")


def set_mode(mode):
    """Select "fused" (fast) or "reference" (plain) kernels."""
    if mode not in MODES:
        raise ValueError(f"unknown kernel mode {mode!r}; choose one of {MODES}")
    _mode[0] = mode


def get_mode():
    """The kernel mode in force: "fused" or "reference"."""
    return _mode[0]


@contextlib.contextmanager
def using_mode(mode):
    """Run a block with kernel ``mode``; the previous mode afterwards."""
    previous = get_mode()
    set_mode(mode)
    try:
        yield
    finally:
        set_mode(previous)


def implementation(array):
    """The module whose kernels run for ``array`` now: reference, cpu or gpu."""
    if _mode[0] == "reference" or str(array.dtype) not in FUSED_DTYPES:
        return reference
    name = "gpu" if type(array).__module__.startswith("cupy") else "cpu"
    return importlib.import_module(f"{__name__}.{name}")


conv_output_size = reference.conv_output_size
FUSED_ACTIVATIONS = reference.FUSED_ACTIVATIONS  # the act names the kernels below take


# ---------------------------------------------------------- im2col / col2im
def im2col(x, kh, kw, sh, sw, ph, pw):
    """x (N, C, H, W) -> column matrix (C*kh*kw, N*OH*OW); see kernels.reference."""
    return implementation(x).im2col(x, kh, kw, sh, sw, ph, pw)


def col2im(cols, x_shape, kh, kw, sh, sw, ph, pw):
    """Adjoint of im2col: column matrix -> (N, C, H, W) with overlaps summed."""
    return implementation(cols).col2im(cols, x_shape, kh, kw, sh, sw, ph, pw)


# ------------------------------------------------------------ matrix product
def matmul_accumulate(a, b, out):
    """out += a @ b in place; on the GPU one GEMM (beta = 1) instead of a product and an add."""
    implementation(out).matmul_accumulate(a, b, out)


# ------------------------------------------------------------- activations
def activation_forward(x, act, slope=0.01):
    """y = act(x) elementwise, any shape; act one of FUSED_ACTIVATIONS (tinyae.ops.ReLU ...)."""
    return implementation(x).activation_forward(x, act, slope)


def activation_backward(gy, y, act, slope=0.01):
    """gx = gy act'(x), read off the output y; the formulas are in kernels.reference."""
    return implementation(gy).activation_backward(gy, y, act, slope)


# ------------------------------------------------------- bias + activation
def bias_act_forward(z, bias, act, slope=0.01):
    """y = act(z + bias), bias per feature of (N, F) or per channel of (N, C, H, W).

    act: "identity", "relu", "leaky_relu" (negative slope ``slope``), "sigmoid", "tanh".
    """
    return implementation(z).bias_act_forward(z, bias, act, slope)


def bias_act_backward(gy, y, act, slope=0.01, gbias_out=None):
    """(gz, gbias) of y = act(z + bias), computed from the output y; gbias is written
    into ``gbias_out`` when given (a parameter's gradient buffer) and returned."""
    return implementation(gy).bias_act_backward(gy, y, act, slope, gbias_out)


# ------------------------------------------------------------------ losses
def sigmoid_bce_with_logits(logits, targets, reduction="mean"):
    """(loss, dloss/dlogits) of binary cross-entropy on logits (tinyae.losses.bce_with_logits).

    reduction "mean" or "sum": loss a 0-d array; "none": the per-element losses.
    """
    return implementation(logits).sigmoid_bce_with_logits(logits, targets, reduction)


def bce_forward(p, targets, reduction="mean"):
    """Binary cross-entropy of probabilities (tinyae.losses.bce), reduced; NaN where a p
    lies outside [0, 1]. "mean" or "sum": a 0-d array; "none": the per-element losses."""
    return implementation(p).bce_forward(p, targets, reduction)


def bce_backward(gy, p, targets, reduction="mean"):
    """dL/dp of bce_forward's loss L, times the upstream gradient gy."""
    return implementation(p).bce_backward(gy, p, targets, reduction)


# ------------------------------------------------------ VAE: KL and sampling
def reparameterize(mu, logvar, eps):
    """(z, std): z = mu + exp(logvar / 2) eps (tinyae.functional.reparameterize)."""
    return implementation(mu).reparameterize(mu, logvar, eps)


def reparameterize_backward(gz, eps, std):
    """(gmu, glogvar) = (gz, gz eps std / 2)."""
    return implementation(gz).reparameterize_backward(gz, eps, std)


def kl_normal_forward_backward(mu, logvar):
    """(kl per example (N,), dkl/dmu = mu, dkl/dlogvar = (exp(logvar) - 1) / 2).

    The closed-form KL(N(mu, exp(logvar)) || N(0, I)) of tinyae.losses.kl_normal.
    """
    return implementation(mu).kl_normal_forward_backward(mu, logvar)


# ------------------------------------------------------------- batch norm
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Training batch norm over all axes but 1: (y, mean, invstd), biased variance."""
    return implementation(x).batchnorm_forward(x, gamma, beta, eps)


def batchnorm_update_running(running_mean, running_var, mean, invstd, momentum, count, eps):
    """running = (1 - momentum) running + momentum batch, in place, unbiased batch variance."""
    implementation(running_mean).batchnorm_update_running(running_mean, running_var, mean,
                                                          invstd, momentum, count, eps)


def batchnorm_backward(gy, x, gamma, mean, invstd, ggamma_out=None, gbeta_out=None):
    """(gx, ggamma, gbeta) of training batch norm, from x and the saved mean, invstd;
    ggamma and gbeta are written into ``ggamma_out`` and ``gbeta_out`` when given."""
    return implementation(x).batchnorm_backward(gy, x, gamma, mean, invstd, ggamma_out,
                                                gbeta_out)


# ------------------------------------------------------------------ dropout
def dropout_forward(x, uniform, p):
    """(y, mask) of inverted dropout, keeping x where uniform >= p (tinyae.functional.dropout)."""
    return implementation(x).dropout_forward(x, uniform, p)


# -------------------------------------------------------------- optimizers
def adam_update(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999,
                eps=1e-8, weight_decay=0.0):
    """One Adam step in place (PyTorch's rule); ``step`` is the new step count t >= 1."""
    implementation(param).adam_update(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2,
                                      eps, weight_decay)


def rmsprop_update(param, grad, square_avg, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
                   momentum=0.0, momentum_buffer=None, centered=False, grad_avg=None):
    """One RMSprop step in place (PyTorch's rule); buffers are zeros before step 1."""
    implementation(param).rmsprop_update(param, grad, square_avg, lr, alpha, eps, weight_decay,
                                         momentum, momentum_buffer, centered, grad_avg)
