"""Numba versions of the hot kernels, for NumPy arrays on the CPU.

Each public function here has the signature of its plain counterpart in
``kernels.reference`` (read that first) and a test in tests/test_kernels.py that
the two agree. The public functions are thin Python wrappers: they make the
inputs C-contiguous, cast scalars to the array dtype and allocate the outputs;
the loops live in the ``_..._kernel`` functions below them.

How the kernels are built, and why:

* ``@njit(cache=True)``: compiled on first use, once per dtype (float32 and
  float64; the wrappers keep every other argument type fixed), and cached in
  ``__pycache__`` so that the next process loads the machine code instead of
  compiling it again. ``import kernels`` imports neither Numba nor this module.
* ``parallel=True`` with ``prange`` where the loop is big enough to pay;
  ``run_parallel`` keeps small calls on one thread. Reductions are split into a
  fixed number of chunks, each with its own float64 partial sum, so the result
  does not depend on the thread count.
* exp, log1p and tanh come from NumPy, not from Numba: without Intel's SVML
  library Numba calls scalar libm functions, much slower than NumPy's SIMD
  loops. So the kernels that need them call NumPy for that one step and fuse
  the rest.
* fastmath stays off, so results follow the reference's arithmetic; the one
  exception is the sums in ``_sum``, ``_sum_of_squares`` and
  ``_sum_and_centered_dot``, where ``reassoc`` lets LLVM keep partial sums in
  SIMD lanes (it changes only the order of a float64 sum). Constants are
  float32 (``ONE``, ``HALF``) so float32 arithmetic stays float32, as NumPy's.
* Sums are accumulated in float64 even for float32 data, so float32 sums are
  often closer to the exact value than the float32 reference is.
* ``NUMBA_DISABLE_JIT=1`` turns all of this back into plain (slow) Python that
  a debugger can step through.
"""
import math
import os

import numba
import numpy as np
from numba import njit, prange

from . import reference
from .reference import conv_output_size

# Activations travel into the kernels as small integers: one compiled kernel for all.
IDENTITY, RELU, LEAKY_RELU, SIGMOID, TANH = range(5)
ACTIVATION_CODES = {name: code for code, name in enumerate(reference.FUSED_ACTIVATIONS)}

# Reductions and plane loops are cut into at most this many chunks (see _chunk_count).
CHUNKS = 32

# Parallel kernels run on one thread below this many elements, and on KERNEL_THREADS
# threads above it (default 1: see run_parallel for why).
PARALLEL_MIN_WORK = 1 << 17
KERNEL_THREADS = max(1, int(os.environ.get("TINYAE_KERNEL_THREADS", "1")))

# float32 constants: float32 arithmetic stays float32 (float64 arrays promote them exactly).
ZERO, HALF, ONE = np.float32(0), np.float32(0.5), np.float32(1)

# A flat index converted to unsigned: Numba then skips its negative-index
# (wraparound) test on every access, which in the copy loops of im2col and
# col2im cost more than the copy itself, and lets LLVM vectorize offset loops.
unsigned = np.uintp


def run_parallel(kernel, work, *args):
    """kernel(*args) on KERNEL_THREADS threads, and on one below PARALLEL_MIN_WORK elements.

    One thread by default, because NumPy's BLAS threads keep spinning after a
    matrix product and a parallel region launched right after one waits for a
    core (benchmarks/RESULTS.md has the measurements); small arrays do not pay
    for waking a worker at all. ``TINYAE_KERNEL_THREADS=N`` gives big kernels N
    threads. (Numba cannot cache a kernel that calls numba.set_num_threads, so
    the limit is set here, around the call.)
    """
    threads = numba.get_num_threads()
    wanted = KERNEL_THREADS if work >= PARALLEL_MIN_WORK else 1
    if wanted >= threads:
        return kernel(*args)
    numba.set_num_threads(wanted)
    try:
        return kernel(*args)
    finally:
        numba.set_num_threads(threads)


def _contiguous(array, dtype=None):
    return np.ascontiguousarray(array, dtype=dtype)


def _rows(array, dtype=None):
    """A C-contiguous (N, C*S) view of an (N, C) or (N, C, H, W) array, and S (1 or H*W)."""
    array = _contiguous(array, dtype)
    return array.reshape(array.shape[0], -1), math.prod(array.shape[2:])


def _chunk_count(items, work):
    """How many chunks a reduction over ``items`` rows (``work`` elements) is cut into.

    Enough for the threads when the work is big, one when it is small (every
    chunk adds a row of partial sums); it depends on the shape only, so results
    do not change with the number of threads.
    """
    return max(1, min(items, CHUNKS, work // (PARALLEL_MIN_WORK // 8)))


def _flat_inplace(array, name):
    """A flat view of ``array`` that writes through to it, or a clear error."""
    if not (isinstance(array, np.ndarray) and array.flags.c_contiguous and array.flags.writeable):
        raise ValueError(f"{name} must be a writeable C-contiguous NumPy array to be updated "
                         "in place; use numpy.ascontiguousarray when you create it")
    return array.reshape(-1)


def _exp_neg_abs(t):
    """exp(-|t|) in a new array, by NumPy's SIMD exp: never overflows."""
    e = np.abs(t)
    np.negative(e, out=e)
    return np.exp(e, out=e)


# ------------------------------------------------------------ small helpers
@njit(cache=True)
def _chunk_bounds(size, chunks, chunk):
    """[start, stop) of chunk number ``chunk`` when range(size) is cut into ``chunks``."""
    return chunk * size // chunks, (chunk + 1) * size // chunks


@njit(cache=True, fastmath={"reassoc"})
def _sum(row):
    total = 0.0
    for k in range(row.size):
        total += row[k]
    return total


@njit(cache=True, fastmath={"reassoc"})
def _sum_of_squares(row, shift):
    """(sum of row - shift, sum of (row - shift)^2), in float64."""
    total, total_sq = 0.0, 0.0
    for k in range(row.size):
        d = row[k] - shift
        total += d
        total_sq += d * d
    return total, total_sq


@njit(cache=True, fastmath={"reassoc"})
def _sum_and_centered_dot(gy, x, shift):
    """(sum of gy, sum of gy (x - shift)), in float64."""
    total, total_dot = 0.0, 0.0
    for k in range(gy.size):
        g = float(gy[k])
        total += g
        total_dot += g * (x[k] - shift)
    return total, total_dot


# ---------------------------------------------------------- im2col / col2im
def im2col(x, kh, kw, sh, sw, ph, pw):
    """x (N, C, H, W) -> cols (C*kh*kw, N*OH*OW); reference.im2col, in parallel.

    A pure copy: equal to the reference bit for bit (tolerance 0, both dtypes).
    """
    x = _contiguous(x)
    n, c, h, w = x.shape
    oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    cols = np.empty((c * kh * kw, n * oh * ow), dtype=x.dtype)
    run_parallel(_im2col_kernel, cols.size,
                 x, int(kh), int(kw), int(sh), int(sw), int(ph), int(pw), oh, ow, cols)
    return cols


@njit(parallel=True, cache=True)
def _im2col_kernel(x, kh, kw, sh, sw, ph, pw, oh, ow, cols):
    n, c, h, w = x.shape
    hp, wp = h + 2 * ph, w + 2 * pw
    x_flat, cols_flat = x.reshape(x.size), cols.reshape(cols.size)
    per_sample, ncols = oh * ow, n * oh * ow
    planes = c * n                     # plane p is channel p // n of sample p % n
    chunks = min(planes, CHUNKS)
    for chunk in prange(chunks):
        # A zero-bordered copy of one (sample, channel) plane, kept in L1: its
        # border stands in for the padding, so the copy loops need no bounds test.
        padded = np.zeros(hp * wp, dtype=x.dtype)
        first, last = _chunk_bounds(planes, chunks, chunk)
        for plane in range(first, last):
            ch, b = plane // n, plane % n
            source = (b * c + ch) * h * w
            for iy in range(h):
                for ix in range(w):
                    padded[unsigned((iy + ph) * wp + pw + ix)] = \
                        x_flat[unsigned(source + iy * w + ix)]
            # Row (ch, i, j) of cols, columns of sample b: padded[oy*sh + i, ox*sw + j].
            for i in range(kh):
                for j in range(kw):
                    dst = ((ch * kh + i) * kw + j) * ncols + b * per_sample
                    for oy in range(oh):
                        src = (oy * sh + i) * wp + j
                        for ox in range(ow):
                            cols_flat[unsigned(dst + ox)] = padded[unsigned(src + ox * sw)]
                        dst += ow


def col2im(cols, x_shape, kh, kw, sh, sw, ph, pw):
    """Adjoint of im2col: cols (C*kh*kw, N*OH*OW) -> (N, C, H, W), overlaps summed.

    Parallel over (channel, sample) planes, so no two threads add to one pixel.
    Each pixel adds its windows in the reference's order, starting from zero,
    so the result is bit for bit the reference's (tolerance 0, both dtypes).
    """
    cols = _contiguous(cols)
    n, c, h, w, oh, ow = reference.col2im_sizes(cols, x_shape, kh, kw, sh, sw, ph, pw)
    x = np.empty((n, c, h, w), dtype=cols.dtype)
    run_parallel(_col2im_kernel, cols.size,
                 cols, int(kh), int(kw), int(sh), int(sw), int(ph), int(pw), oh, ow, x)
    return x


@njit(parallel=True, cache=True)
def _col2im_kernel(cols, kh, kw, sh, sw, ph, pw, oh, ow, x):
    n, c, h, w = x.shape
    hp, wp = h + 2 * ph, w + 2 * pw
    x_flat, cols_flat = x.reshape(x.size), cols.reshape(cols.size)
    per_sample, ncols = oh * ow, n * oh * ow
    planes = c * n
    chunks = min(planes, CHUNKS)
    for chunk in prange(chunks):
        padded = np.empty(hp * wp, dtype=x.dtype)   # one plane with its padding, in L1
        first, last = _chunk_bounds(planes, chunks, chunk)
        for plane in range(first, last):
            ch, b = plane // n, plane % n
            padded[:] = 0
            for i in range(kh):
                for j in range(kw):
                    src = ((ch * kh + i) * kw + j) * ncols + b * per_sample
                    for oy in range(oh):
                        dst = (oy * sh + i) * wp + j
                        for ox in range(ow):
                            padded[unsigned(dst + ox * sw)] += cols_flat[unsigned(src + ox)]
                        src += ow
            target = (b * c + ch) * h * w
            for iy in range(h):
                for ix in range(w):
                    x_flat[unsigned(target + iy * w + ix)] = \
                        padded[unsigned((iy + ph) * wp + pw + ix)]


# ------------------------------------------------------------ matrix product
# NumPy's matmul has no "add to out" (BLAS beta = 1): the plain version runs.
matmul_accumulate = reference.matmul_accumulate


# ------------------------------------------------------------- activations
@njit(cache=True)
def _sigmoid_from_exp(v, e):
    """reference.sigmoid_from_exp for one element, e = exp(-|v|)."""
    return ONE / (ONE + e) if v >= 0 else e / (ONE + e)


@njit(cache=True)
def _activate_row(t, act, slope, y):
    """y = relu(t) or leaky_relu(t) on 1-D rows (y may be t itself); other acts: no-op."""
    if act == RELU:
        for k in range(t.size):
            v = t[k]
            y[k] = ZERO if v < 0 else v
    elif act == LEAKY_RELU:
        for k in range(t.size):
            v = t[k]
            y[k] = v if v > 0 else v * slope


@njit(cache=True)
def _derivative_row(gy, y, act, slope, gz):
    """gz = gy act'(z) on 1-D rows, act' read off the output y; one loop per activation."""
    if act == RELU:
        for k in range(gy.size):
            gz[k] = gy[k] if y[k] > 0 else ZERO
    elif act == LEAKY_RELU:
        for k in range(gy.size):
            gz[k] = gy[k] if y[k] > 0 else gy[k] * slope
    elif act == SIGMOID:
        for k in range(gy.size):
            gz[k] = gy[k] * y[k] * (ONE - y[k])
    elif act == TANH:
        for k in range(gy.size):
            gz[k] = gy[k] * (ONE - y[k] * y[k])


def _sigmoid(t, out):
    """out = sigmoid(t) (out may be t): NumPy's exp(-|t|), then one Numba pass."""
    e = _exp_neg_abs(t)
    run_parallel(_sigmoid_from_exp_kernel, t.size, t.reshape(-1), e.reshape(-1), out.reshape(-1))
    return out


@njit(parallel=True, cache=True)
def _sigmoid_from_exp_kernel(t, e, y):
    for k in prange(t.size):
        y[k] = _sigmoid_from_exp(t[k], e[k])


def activation_forward(x, act, slope=0.01):
    """y = act(x); reference.activation_forward.

    relu and leaky_relu: one Numba pass; sigmoid: NumPy's exp(-|x|), then one
    Numba pass; tanh: NumPy's tanh. Bit for bit the reference's (same
    arithmetic); tolerance 1e-12 / 1e-6 allows for other NumPy builds.
    """
    reference.check_activation(act)
    code = ACTIVATION_CODES[act]
    if code == IDENTITY:
        return x
    if code == TANH:
        return np.tanh(x)
    flat = _contiguous(x).reshape(-1)
    y = np.empty_like(flat)
    if code == SIGMOID:
        _sigmoid(flat, out=y)
    else:
        run_parallel(_activation_forward_kernel, flat.size, flat, code, flat.dtype.type(slope),
                     _chunk_count(flat.size, flat.size), y)
    return y.reshape(np.shape(x))


@njit(parallel=True, cache=True)
def _activation_forward_kernel(x, act, slope, chunks, y):
    for chunk in prange(chunks):
        first, last = _chunk_bounds(x.size, chunks, chunk)
        _activate_row(x[first:last], act, slope, y[first:last])


def activation_backward(gy, y, act, slope=0.01):
    """gx = gy act'(x) from y in one Numba pass; reference.activation_backward, bit for bit."""
    reference.check_activation(act)
    code = ACTIVATION_CODES[act]
    if code == IDENTITY:
        return gy
    g = _contiguous(gy).reshape(-1)
    gx = np.empty_like(g)
    run_parallel(_activation_backward_kernel, g.size, g, _contiguous(y, g.dtype).reshape(-1),
                 code, g.dtype.type(slope), _chunk_count(g.size, g.size), gx)
    return gx.reshape(np.shape(gy))


@njit(parallel=True, cache=True)
def _activation_backward_kernel(gy, y, act, slope, chunks, gx):
    for chunk in prange(chunks):
        first, last = _chunk_bounds(gy.size, chunks, chunk)
        _derivative_row(gy[first:last], y[first:last], act, slope, gx[first:last])


# ------------------------------------------------------- bias + activation
def bias_act_forward(z, bias, act, slope=0.01):
    """y = act(z + bias); reference.bias_act_forward.

    One Numba pass adds the bias and applies identity, relu or leaky_relu;
    tanh then runs NumPy's tanh in place, sigmoid ``_sigmoid`` in place.
    Bit for bit the reference's; tolerance 1e-12 (float64) / 1e-6 (float32)
    allows for other NumPy builds.
    """
    reference.check_activation(act)
    z2, spatial = _rows(z)
    y = np.empty_like(z2)
    code = ACTIVATION_CODES[act]
    run_parallel(_bias_act_forward_kernel, z2.size,
                 z2, _contiguous(bias, z2.dtype), spatial,
                 code if code in (RELU, LEAKY_RELU) else IDENTITY, z2.dtype.type(slope), y)
    if act == "sigmoid":
        _sigmoid(y, out=y)
    elif act == "tanh":
        np.tanh(y, out=y)
    return y.reshape(np.shape(z))


@njit(parallel=True, cache=True)
def _bias_act_forward_kernel(z, bias, spatial, act, slope, y):
    n, c = z.shape[0], bias.size
    for b in prange(n):
        z_row, y_row = z[b], y[b]
        if spatial == 1:                          # dense (N, F): one value per feature
            for ch in range(c):
                y_row[ch] = z_row[ch] + bias[ch]
        else:
            for ch in range(c):
                bias_ch, start = bias[ch], ch * spatial
                for k in range(spatial):
                    y_row[unsigned(start + k)] = z_row[unsigned(start + k)] + bias_ch
        _activate_row(y_row, act, slope, y_row)   # the row is still in cache


def bias_act_backward(gy, y, act, slope=0.01, gbias_out=None):
    """(gz, gbias) in one pass over gy and y; reference.bias_act_backward.

    gz is gy itself for "identity" (as in the reference); otherwise gz equals the
    reference bit for bit. gbias is summed in float64: float64 within 1e-12,
    float32 within 1e-5 of the float32 reference sum (relative to its largest entry).
    """
    reference.check_activation(act)
    gy2, spatial = _rows(gy)
    code = ACTIVATION_CODES[act]
    if code == IDENTITY:
        gz, y2 = gy2, gy2           # nothing to write; y is not read
    else:
        gz, y2 = np.empty_like(gy2), _rows(y, gy2.dtype)[0]
    c = gy2.shape[1] // spatial
    partial = np.zeros((_chunk_count(gy2.shape[0], gy2.size), c))
    run_parallel(_bias_act_backward_kernel, gy2.size,
                 gy2, y2, spatial, code, gy2.dtype.type(slope), gz, partial)
    gbias = partial.sum(axis=0).astype(gy2.dtype)
    if gbias_out is not None:
        gbias_out[...] = gbias
        gbias = gbias_out
    return (gy if code == IDENTITY else gz.reshape(np.shape(gy))), gbias


@njit(parallel=True, cache=True)
def _bias_act_backward_kernel(gy, y, spatial, act, slope, gz, partial):
    n = gy.shape[0]
    chunks, c = partial.shape
    width = gy.shape[1]
    gy_flat, y_flat, gz_flat = gy.reshape(gy.size), y.reshape(y.size), gz.reshape(gz.size)
    for chunk in prange(chunks):
        first, last = _chunk_bounds(n, chunks, chunk)
        if act != IDENTITY:          # the chunk's rows are one contiguous block
            block = slice(first * width, last * width)
            _derivative_row(gy_flat[block], y_flat[block], act, slope, gz_flat[block])
        for b in range(first, last):
            g = gz[b]
            if spatial == 1:
                for ch in range(c):
                    partial[chunk, ch] += g[ch]
            else:
                for ch in range(c):
                    partial[chunk, ch] += _sum(g[ch * spatial:(ch + 1) * spatial])


# ------------------------------------------------------------------ losses
def sigmoid_bce_with_logits(logits, targets, reduction="mean"):
    """(loss, dloss/dlogits); reference.sigmoid_bce_with_logits.

    NumPy computes e = exp(-|x|) and log1p(e) (see the module docstring); one
    Numba pass then makes the per-element loss and the gradient from x, y, e
    and sums the loss in float64. The gradient and the per-element losses equal
    the reference bit for bit; the summed loss is within 1e-12 (float64) /
    1e-5 relative (float32, where the reference sums in float32).
    """
    reference.check_reduction(reduction)
    x = _contiguous(logits).reshape(-1)
    y = _contiguous(targets, x.dtype).reshape(-1)
    if y.size != x.size:
        raise ValueError(f"sigmoid_bce_with_logits: targets of shape {np.shape(targets)} "
                         f"do not match logits of shape {np.shape(logits)}")
    divisor = x.size if reduction == "mean" else 1
    e = _exp_neg_abs(x)
    loss = np.log1p(e)                    # becomes the per-element loss in the kernel
    grad = np.empty_like(x)
    partial = np.zeros(_chunk_count(x.size, x.size))
    run_parallel(_bce_kernel, x.size, x, y, e, x.dtype.type(divisor), loss, grad, partial)
    grad = grad.reshape(np.shape(logits))
    if reduction == "none":
        return loss.reshape(np.shape(logits)), grad
    return np.asarray(partial.sum() / divisor, dtype=x.dtype), grad


@njit(parallel=True, cache=True)
def _bce_kernel(x, y, e, divisor, loss, grad, partial):
    chunks = partial.size
    for chunk in prange(chunks):
        first, last = _chunk_bounds(x.size, chunks, chunk)
        for k in range(first, last):
            v, t, ek = x[k], y[k], e[k]
            # loss[k] holds log1p(e) on entry
            loss[k] = ((v if v > 0 else ZERO) - v * t) + loss[k]
            grad[k] = (_sigmoid_from_exp(v, ek) - t) / divisor
        partial[chunk] = _sum(loss[first:last])


def bce_forward(p, targets, reduction="mean"):
    """Binary cross-entropy of probabilities; reference.bce_forward.

    NumPy takes log p and log u with u = 1 - p (its SIMD log; its log1p is a scalar
    loop, five times slower). One Numba pass then gets log(1 - p) = log1p(-p) from
    them as log(u) * (-p) / (u - 1), exact to a few ulps even where u rounds (-p
    itself where u == 1), clamps both logs at -100, forms -(y log p + (1 - y) log(1 - p))
    and sums it in float64. A p outside [0, 1] gives a NaN log, which the clamp keeps.
    Within 1e-12 (float64) / 1e-5 relative (float32) of the reference.
    """
    reference.check_reduction(reduction)
    flat = _contiguous(p).reshape(-1)
    y = _contiguous(targets, flat.dtype).reshape(-1)
    with np.errstate(divide="ignore", invalid="ignore"):   # log 0 = -inf: clamped below
        loss = np.log(flat)                  # becomes the per-element loss in the kernel
        log_u = 1 - flat
        np.log(log_u, out=log_u)             # log u, in u's own array
    partial = np.zeros(_chunk_count(flat.size, flat.size))
    run_parallel(_bce_probabilities_kernel, flat.size, flat, y, loss, log_u, partial)
    if reduction == "none":
        return loss.reshape(np.shape(p))
    total = partial.sum() / (flat.size if reduction == "mean" else 1)
    return np.asarray(total, dtype=flat.dtype)


@njit(parallel=True, cache=True)
def _bce_probabilities_kernel(p, y, loss, log_u, partial):
    chunks = partial.size
    floor = loss.dtype.type(-100)
    for chunk in prange(chunks):
        first, last = _chunk_bounds(y.size, chunks, chunk)
        for k in range(first, last):
            u = ONE - p[k]
            log_p = loss[k]                         # loss[k] holds log p on entry
            log_q = -p[k] if u == ONE else log_u[k] * -p[k] / (u - ONE)   # log1p(-p)
            if log_p < floor:                       # not for NaN: it stays NaN
                log_p = floor
            if log_q < floor:
                log_q = floor
            loss[k] = -(y[k] * log_p + (ONE - y[k]) * log_q)
        partial[chunk] = _sum(loss[first:last])


def bce_backward(gy, p, targets, reduction="mean"):
    """dL/dp in one Numba pass; reference.bce_backward, bit for bit (the same float
    arithmetic in the same order)."""
    reference.check_reduction(reduction)
    flat = _contiguous(p).reshape(-1)
    y = _contiguous(targets, flat.dtype).reshape(-1)
    g = _contiguous(gy, flat.dtype).reshape(-1)
    if reduction == "mean":
        g = g / flat.dtype.type(flat.size)   # a 0-d gy, divided as the reference does
    gp = np.empty_like(flat)
    run_parallel(_bce_probabilities_backward_kernel, flat.size, g, flat, y,
                 flat.dtype.type(1e-12), _chunk_count(flat.size, flat.size), gp)
    return gp.reshape(np.shape(p))


@njit(parallel=True, cache=True)
def _bce_probabilities_backward_kernel(g, p, y, floor, chunks, gp):
    scalar = g.size == 1                         # "mean" and "sum": one upstream value
    for chunk in prange(chunks):
        first, last = _chunk_bounds(p.size, chunks, chunk)
        for k in range(first, last):
            gk = g[0] if scalar else g[k]
            denominator = p[k] * (ONE - p[k])
            if denominator < floor:
                denominator = floor
            gp[k] = gk * (p[k] - y[k]) / denominator


# ------------------------------------------------------ VAE: KL and sampling
def reparameterize(mu, logvar, eps):
    """(z, std) with std = exp(logvar / 2), z = mu + std eps; reference.reparameterize.

    std from NumPy's exp, then one serial Numba pass for z ((batch, latent)
    arrays are too small for threads to pay). Bit for bit the reference's;
    tolerance 1e-12 / 1e-6 allows for other NumPy builds.
    """
    mu = _contiguous(mu)
    std = np.exp(np.multiply(_contiguous(logvar, mu.dtype), 0.5))
    z = np.empty_like(mu)
    _reparameterize_kernel(mu.reshape(-1), std.reshape(-1), _contiguous(eps, mu.dtype).reshape(-1),
                           z.reshape(-1))
    return z, std


@njit(cache=True)
def _reparameterize_kernel(mu, std, eps, z):
    for k in range(mu.size):
        z[k] = mu[k] + std[k] * eps[k]


def reparameterize_backward(gz, eps, std):
    """(gmu, glogvar) = (gz, gz eps std / 2); reference.reparameterize_backward.

    Products in the reference's order: equal bit for bit (tolerance 0).
    """
    gz = _contiguous(gz)
    gmu, glogvar = gz.copy(), np.empty_like(gz)
    _reparameterize_backward_kernel(gz.reshape(-1), _contiguous(eps, gz.dtype).reshape(-1),
                                    _contiguous(std, gz.dtype).reshape(-1), glogvar.reshape(-1))
    return gmu, glogvar


@njit(cache=True)
def _reparameterize_backward_kernel(gz, eps, std, glogvar):
    for k in range(gz.size):
        glogvar[k] = gz[k] * eps[k] * std[k] * HALF


def kl_normal_forward_backward(mu, logvar):
    """(kl (N,), dkl/dmu, dkl/dlogvar); reference.kl_normal_forward_backward.

    exp(logvar) from NumPy, then one serial Numba pass for the per-example sums
    (in float64) and both gradients. Gradients bit for bit; kl within 1e-12
    (float64) / 1e-5 relative (float32).
    """
    mu = _contiguous(mu)
    mu2 = mu.reshape(mu.shape[0], -1)
    logvar2 = _contiguous(logvar, mu.dtype).reshape(mu2.shape)
    kl = np.empty(mu.shape[0], dtype=mu.dtype)
    dmu, dlogvar = np.empty_like(mu), np.empty_like(mu)
    _kl_normal_kernel(mu2, logvar2, np.exp(logvar2), kl, dmu.reshape(mu2.shape),
                      dlogvar.reshape(mu2.shape))
    return kl, dmu, dlogvar


@njit(cache=True)
def _kl_normal_kernel(mu, logvar, var, kl, dmu, dlogvar):
    n, d = mu.shape
    for b in range(n):
        total = 0.0
        for j in range(d):
            m, lv, v = mu[b, j], logvar[b, j], var[b, j]
            total += m * m + v - ONE - lv
            dmu[b, j] = m
            dlogvar[b, j] = HALF * (v - ONE)
        kl[b] = 0.5 * total


# ------------------------------------------------------------- batch norm
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """(y, mean, invstd) in two passes; reference.batchnorm_forward.

    Pass 1 reads x once for the sums of x - K and (x - K)^2 in float64, K the
    channel's first value (the "shifted data" variance: exact enough unless K
    lies thousands of standard deviations from the mean); pass 2 writes y.
    Images (N, C, H, W): parallel over channels. Dense (N, F): serial, row by
    row. float64 within 1e-12; float32 within 1e-5 (the statistics are float64).
    """
    x2, spatial = _rows(x)
    c = x2.shape[1] // spatial
    y = np.empty_like(x2)
    mean, invstd = np.empty(c, dtype=x2.dtype), np.empty(c, dtype=x2.dtype)
    gamma, beta = _contiguous(gamma, x2.dtype), _contiguous(beta, x2.dtype)
    if spatial == 1:
        _batchnorm_forward_dense_kernel(x2, gamma, beta, float(eps), y, mean, invstd)
    else:
        x3, y3 = x2.reshape(x2.shape[0], c, spatial), y.reshape(x2.shape[0], c, spatial)
        run_parallel(_batchnorm_forward_kernel, x2.size,
                     x3, gamma, beta, float(eps), y3, mean, invstd)
    return y.reshape(np.shape(x)), mean, invstd


@njit(parallel=True, cache=True)
def _batchnorm_forward_kernel(x, gamma, beta, eps, y, mean, invstd):
    n, c, s = x.shape
    m = n * s
    for ch in prange(c):
        shift = float(x[0, ch, 0])
        total, total_sq = 0.0, 0.0
        for b in range(n):
            row_total, row_sq = _sum_of_squares(x[b, ch], shift)
            total += row_total
            total_sq += row_sq
        shifted_mean = total / m
        var = max(total_sq / m - shifted_mean * shifted_mean, 0.0)
        mu = shift + shifted_mean
        inv = 1 / np.sqrt(var + eps)
        mean[ch], invstd[ch] = mu, inv
        scale, offset = gamma[ch] * inv, float(beta[ch])
        for b in range(n):
            x_row, y_row = x[b, ch], y[b, ch]
            for k in range(s):
                y_row[k] = (x_row[k] - mu) * scale + offset


@njit(cache=True)
def _batchnorm_forward_dense_kernel(x, gamma, beta, eps, y, mean, invstd):
    n, c = x.shape
    shift = np.empty(c)
    for ch in range(c):
        shift[ch] = x[0, ch]
    total, total_sq = np.zeros(c), np.zeros(c)
    for b in range(n):                   # row by row: the inner loops run along memory
        for ch in range(c):
            d = x[b, ch] - shift[ch]
            total[ch] += d
            total_sq[ch] += d * d
    mu, scale, offset = np.empty(c), np.empty(c), np.empty(c)
    for ch in range(c):
        shifted_mean = total[ch] / n
        var = max(total_sq[ch] / n - shifted_mean * shifted_mean, 0.0)
        mu[ch] = shift[ch] + shifted_mean
        inv = 1 / np.sqrt(var + eps)
        mean[ch], invstd[ch] = mu[ch], inv
        scale[ch], offset[ch] = gamma[ch] * inv, beta[ch]
    for b in range(n):
        for ch in range(c):
            y[b, ch] = (x[b, ch] - mu[ch]) * scale[ch] + offset[ch]


# (C,) vectors: too small for a kernel to pay; the plain version runs.
batchnorm_update_running = reference.batchnorm_update_running


def batchnorm_backward(gy, x, gamma, mean, invstd, ggamma_out=None, gbeta_out=None):
    """(gx, ggamma, gbeta) in two passes; reference.batchnorm_backward.

    Pass 1 sums gy and gy x_hat (x_hat recomputed from x) in float64, pass 2
    writes gx. Parallel over channels for images, serial for dense.
    float64 within 1e-12 (relative to the largest entry); float32 within 1e-5.
    """
    x2, spatial = _rows(x)
    gy2 = _rows(gy, x2.dtype)[0]
    c = x2.shape[1] // spatial
    gx = np.empty_like(x2)
    ggamma = np.empty(c, dtype=x2.dtype) if ggamma_out is None else ggamma_out
    gbeta = np.empty(c, dtype=x2.dtype) if gbeta_out is None else gbeta_out
    statistics = (_contiguous(gamma, x2.dtype), _contiguous(mean, x2.dtype),
                  _contiguous(invstd, x2.dtype))
    if spatial == 1:
        _batchnorm_backward_dense_kernel(gy2, x2, *statistics, gx, ggamma, gbeta)
    else:
        shape3 = (x2.shape[0], c, spatial)
        run_parallel(_batchnorm_backward_kernel, x2.size, gy2.reshape(shape3),
                     x2.reshape(shape3), *statistics, gx.reshape(shape3), ggamma, gbeta)
    return gx.reshape(np.shape(x)), ggamma, gbeta


@njit(parallel=True, cache=True)
def _batchnorm_backward_kernel(gy, x, gamma, mean, invstd, gx, ggamma, gbeta):
    n, c, s = x.shape
    m = n * s
    for ch in prange(c):
        mu, inv = float(mean[ch]), float(invstd[ch])
        sum_gy, sum_gy_x = 0.0, 0.0         # sum gy and sum gy (x - mu)
        for b in range(n):
            row_gy, row_gy_x = _sum_and_centered_dot(gy[b, ch], x[b, ch], mu)
            sum_gy += row_gy
            sum_gy_x += row_gy_x
        sum_gy_xhat = sum_gy_x * inv
        gbeta[ch], ggamma[ch] = sum_gy, sum_gy_xhat
        scale = gamma[ch] * inv / m
        for b in range(n):
            gy_row, x_row, gx_row = gy[b, ch], x[b, ch], gx[b, ch]
            for k in range(s):
                x_hat = (x_row[k] - mu) * inv
                gx_row[k] = scale * (m * gy_row[k] - sum_gy - x_hat * sum_gy_xhat)


@njit(cache=True)
def _batchnorm_backward_dense_kernel(gy, x, gamma, mean, invstd, gx, ggamma, gbeta):
    n, c = x.shape
    sum_gy, sum_gy_x = np.zeros(c), np.zeros(c)
    for b in range(n):
        for ch in range(c):
            g = float(gy[b, ch])
            sum_gy[ch] += g
            sum_gy_x[ch] += g * (x[b, ch] - mean[ch])
    scale, sum_gy_xhat = np.empty(c), np.empty(c)
    for ch in range(c):
        sum_gy_xhat[ch] = sum_gy_x[ch] * invstd[ch]
        gbeta[ch], ggamma[ch] = sum_gy[ch], sum_gy_xhat[ch]
        scale[ch] = gamma[ch] * float(invstd[ch]) / n
    for b in range(n):
        for ch in range(c):
            x_hat = (x[b, ch] - float(mean[ch])) * invstd[ch]
            gx[b, ch] = scale[ch] * (n * gy[b, ch] - sum_gy[ch] - x_hat * sum_gy_xhat[ch])


# ------------------------------------------------------------------ dropout
# Three NumPy passes that Numba would not beat by much; the plain version runs.
dropout_forward = reference.dropout_forward


# -------------------------------------------------------------- optimizers
def adam_update(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999,
                eps=1e-8, weight_decay=0.0):
    """One Adam step in place over flat views; reference.adam_update (PyTorch's rule).

    The scalars are rounded to the array dtype first, as PyTorch and NumPy do,
    and the arithmetic runs in the reference's order without FMA, so the result
    equals the reference bit for bit in both dtypes (tolerance 0).
    """
    p = _flat_inplace(param, "adam_update: param")
    m = _flat_inplace(exp_avg, "adam_update: exp_avg")
    v = _flat_inplace(exp_avg_sq, "adam_update: exp_avg_sq")
    g = _contiguous(grad, p.dtype).reshape(-1)
    t = p.dtype.type
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    run_parallel(_adam_kernel, p.size,
                 p, g, m, v, t(weight_decay), t(1 - beta1), (1 - beta1) < 0.5, t(1 - (1 - beta1)),
                 t(beta2), t(1 - beta2), t(lr / bias_correction1), t(bias_correction2 ** 0.5),
                 t(eps))


@njit(cache=True)
def _lerp(start, end, weight, weight_is_small, one_minus_weight):
    """torch.lerp_'s rounding: start + w (end - start) if w < 0.5, else end - (end - start)(1 - w).

    ``one_minus_weight`` is 1 - w computed from the rounded w, as the reference computes it.
    """
    if weight_is_small:
        return start + weight * (end - start)
    return end - (end - start) * one_minus_weight


@njit(parallel=True, cache=True)
def _adam_kernel(param, grad, exp_avg, exp_avg_sq, weight_decay, one_minus_beta1,
                 lerp_small, lerp_complement, beta2, one_minus_beta2, step_size,
                 bias_correction2_sqrt, eps):
    for k in prange(param.size):
        g = grad[k]
        if weight_decay != 0:
            g = g + weight_decay * param[k]
        m = _lerp(exp_avg[k], g, one_minus_beta1, lerp_small, lerp_complement)
        v = exp_avg_sq[k] * beta2 + one_minus_beta2 * g * g
        exp_avg[k], exp_avg_sq[k] = m, v
        denom = np.sqrt(v) / bias_correction2_sqrt + eps
        param[k] = param[k] - step_size * (m / denom)


def rmsprop_update(param, grad, square_avg, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
                   momentum=0.0, momentum_buffer=None, centered=False, grad_avg=None):
    """One RMSprop step in place over flat views; reference.rmsprop_update (PyTorch's rule).

    Like adam_update: scalars rounded to the dtype, reference order, no FMA:
    bit for bit equal to the reference (tolerance 0).
    """
    reference.check_rmsprop_buffers(momentum, momentum_buffer, centered, grad_avg)
    p = _flat_inplace(param, "rmsprop_update: param")
    s = _flat_inplace(square_avg, "rmsprop_update: square_avg")
    g = _contiguous(grad, p.dtype).reshape(-1)
    unused = np.empty(0, dtype=p.dtype)   # stands in for a buffer that is not used
    buf, avg = unused, unused
    if momentum > 0:
        buf = _flat_inplace(momentum_buffer, "rmsprop_update: momentum_buffer")
    if centered:
        avg = _flat_inplace(grad_avg, "rmsprop_update: grad_avg")
    t = p.dtype.type
    run_parallel(_rmsprop_kernel, p.size,
                 p, g, s, t(lr), t(alpha), t(eps), t(weight_decay), t(momentum), buf,
                 bool(centered), avg, t(1 - alpha), (1 - alpha) < 0.5, t(1 - (1 - alpha)))


@njit(parallel=True, cache=True)
def _rmsprop_kernel(param, grad, square_avg, lr, alpha, eps, weight_decay, momentum,
                    momentum_buffer, centered, grad_avg, one_minus_alpha, lerp_small,
                    lerp_complement):
    for k in prange(param.size):
        g = grad[k]
        if weight_decay != 0:
            g = g + weight_decay * param[k]
        s = square_avg[k] * alpha + one_minus_alpha * g * g
        square_avg[k] = s
        if centered:
            a = _lerp(grad_avg[k], g, one_minus_alpha, lerp_small, lerp_complement)
            grad_avg[k] = a
            avg = np.sqrt(s - a * a) + eps
        else:
            avg = np.sqrt(s) + eps
        if momentum > 0:
            b = momentum_buffer[k] * momentum + g / avg
            momentum_buffer[k] = b
            param[k] = param[k] - lr * b
        else:
            param[k] = param[k] - lr * (g / avg)
