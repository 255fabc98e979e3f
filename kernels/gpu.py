"""CuPy versions of the hot kernels, for CuPy arrays on an NVIDIA GPU.

Each public function has the signature of its plain counterpart in
``kernels.reference`` (read that first) and is tested against it by the
``cupy`` case of tests/test_kernels.py. This module is imported only when a
fused kernel first meets a CuPy array, so ``import kernels`` works without CuPy.

The kernels are CuPy ``ElementwiseKernel`` / ``ReductionKernel`` objects: CUDA C
for the body of one element, with CuPy writing the loop, the broadcasting and
the indexing (``n``, ``i`` and names starting with ``_`` are CuPy's own, so
the kernels avoid them). Per-channel vectors (bias, batch-norm statistics) are reshaped
to (1, C, 1, 1) and broadcast by CuPy rather than indexed by hand; ``raw``
arrays, indexed by hand with the flat output index ``i``, appear only where a
kernel gathers (im2col, col2im) or updates an optional buffer (RMSprop). Each
kernel is compiled by NVRTC on its first call for a dtype and cached in
~/.cupy/kernel_cache, so a second process does not compile again.

Sums use CuPy's reductions (CUB tree sums in the array dtype). NVRTC may
contract a * b + c into one FMA, so unlike the Numba kernels these are not bit
for bit equal to the reference: float64 within 1e-12, float32 within the
float32 tolerances documented per kernel in kernels.cpu (the test uses the same
tolerances on both backends).
"""
import cupy
from cupy import cublas

from . import reference
from .reference import channel_shape, channel_sum_axes, conv_output_size

IDENTITY, RELU, LEAKY_RELU, SIGMOID, TANH = range(5)
ACTIVATION_CODES = {name: code for code, name in enumerate(reference.FUSED_ACTIVATIONS)}


def _contiguous(array, dtype=None):
    return cupy.ascontiguousarray(array, dtype=dtype)


def _per_channel(vector, like):
    """A (C,) vector as (1, C, 1, 1) (or (1, C)) in like's dtype, to broadcast over like."""
    return cupy.asarray(vector, dtype=like.dtype).reshape(channel_shape(like.ndim))


# ---------------------------------------------------------- im2col / col2im
_im2col_kernel = cupy.ElementwiseKernel(
    "raw T x, int32 batch, int32 c, int32 h, int32 w, int32 kh, int32 kw, "
    "int32 sh, int32 sw, int32 ph, int32 pw, int32 oh, int32 ow",
    "T cols",
    """
    // cols[(ch, ki, kj), (b, oy, ox)] = x[b, ch, oy*sh - ph + ki, ox*sw - pw + kj], 0 outside
    const long long ncols = (long long)batch * oh * ow;
    const long long row = i / ncols, col = i % ncols;
    const int ox = col % ow, oy = (col / ow) % oh, b = col / ((long long)oh * ow);
    const int kj = row % kw, ki = (row / kw) % kh, ch = row / ((long long)kh * kw);
    const int iy = oy * sh - ph + ki, ix = ox * sw - pw + kj;
    if (iy >= 0 && iy < h && ix >= 0 && ix < w) {
        cols = x[(((long long)b * c + ch) * h + iy) * w + ix];
    } else {
        cols = 0;
    }
    """,
    "tinyae_im2col")


def im2col(x, kh, kw, sh, sw, ph, pw):
    """x (N, C, H, W) -> cols (C*kh*kw, N*OH*OW); one thread per entry of cols. Exact copy."""
    x = _contiguous(x)
    n, c, h, w = x.shape
    oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    cols = cupy.empty((c * kh * kw, n * oh * ow), dtype=x.dtype)
    _im2col_kernel(x.ravel(), n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, cols)
    return cols


_col2im_kernel = cupy.ElementwiseKernel(
    "raw T cols, int32 batch, int32 c, int32 h, int32 w, int32 kh, int32 kw, "
    "int32 sh, int32 sw, int32 ph, int32 pw, int32 oh, int32 ow",
    "T x",
    """
    // Gather: pixel (b, ch, iy, ix) sums every column entry that im2col copied from it.
    const int ix = i % w, iy = (i / w) % h;
    const int ch = (i / ((long long)h * w)) % c, b = i / ((long long)c * h * w);
    const long long ncols = (long long)batch * oh * ow;
    T total = 0;
    for (int ki = 0; ki < kh; ++ki) {
        const int ty = iy + ph - ki;              // = oy * sh for a window that covers iy
        if (ty < 0 || ty % sh != 0 || ty / sh >= oh) continue;
        for (int kj = 0; kj < kw; ++kj) {
            const int tx = ix + pw - kj;
            if (tx < 0 || tx % sw != 0 || tx / sw >= ow) continue;
            const long long row = ((long long)ch * kh + ki) * kw + kj;
            total += cols[row * ncols + ((long long)b * oh + ty / sh) * ow + tx / sw];
        }
    }
    x = total;
    """,
    "tinyae_col2im")


def col2im(cols, x_shape, kh, kw, sh, sw, ph, pw):
    """Adjoint of im2col; one thread per pixel gathers its windows (no atomics).

    The windows are added in the reference's order: equal to it bit for bit.
    """
    cols = _contiguous(cols)
    n, c, h, w, oh, ow = reference.col2im_sizes(cols, x_shape, kh, kw, sh, sw, ph, pw)
    x = cupy.empty((n, c, h, w), dtype=cols.dtype)
    _col2im_kernel(cols.ravel(), n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, x)
    return x


# ------------------------------------------------------------ matrix product
def matmul_accumulate(a, b, out):
    """out += a @ b as one cuBLAS GEMM with beta = 1 (out C-contiguous; a and b C- or
    F-contiguous, e.g. transposed views, go in without a copy)."""
    t = out.dtype.type
    cublas.gemm("N", "N", a.astype(out.dtype, copy=False), b.astype(out.dtype, copy=False),
                out=out, alpha=t(1), beta=t(1))


# ------------------------------------------------------------- activations
# The formulas, once for every kernel below: CUDA device functions (reference.py
# has the plain versions). act is an ACTIVATION_CODES value.
_ACTIVATIONS_CUDA = r"""
template <typename T>
__device__ T tinyae_sigmoid_from_exp(T x, T e) {     // e = exp(-|x|): never overflows
    return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

template <typename T>
__device__ T tinyae_activate(T t, int act, T slope) {
    if (act == 1) return t < 0 ? (T)0 : t;                            // relu
    if (act == 2) return t > 0 ? t : t * slope;                       // leaky_relu
    if (act == 3) return tinyae_sigmoid_from_exp(t, (T)exp(-fabs(t)));  // sigmoid
    if (act == 4) return tanh(t);                                     // tanh
    return t;                                                         // identity
}

template <typename T>
__device__ T tinyae_derivative(T gy, T y, int act, T slope) {         // gy act', from y
    if (act == 1) return y > 0 ? gy : (T)0;
    if (act == 2) return y > 0 ? gy : gy * slope;
    if (act == 3) return gy * y * (1 - y);
    if (act == 4) return gy * (1 - y * y);
    return gy;
}
"""

_activation_forward_kernel = cupy.ElementwiseKernel(
    "T x, int32 act, T slope", "T y", "y = tinyae_activate(x, act, slope)",
    "tinyae_activation_forward", preamble=_ACTIVATIONS_CUDA)

_activation_backward_kernel = cupy.ElementwiseKernel(
    "T gy, T y, int32 act, T slope", "T gx", "gx = tinyae_derivative(gy, y, act, slope)",
    "tinyae_activation_backward", preamble=_ACTIVATIONS_CUDA)


def activation_forward(x, act, slope=0.01):
    """y = act(x): one kernel."""
    reference.check_activation(act)
    if act == "identity":
        return x
    return _activation_forward_kernel(x, ACTIVATION_CODES[act], x.dtype.type(slope))


def activation_backward(gy, y, act, slope=0.01):
    """gx = gy act'(x), read off y: one kernel."""
    reference.check_activation(act)
    if act == "identity":
        return gy
    return _activation_backward_kernel(gy, y.astype(gy.dtype, copy=False), ACTIVATION_CODES[act],
                                       gy.dtype.type(slope))


# ------------------------------------------------------- bias + activation
_bias_act_forward_kernel = cupy.ElementwiseKernel(
    "T z, T bias, int32 act, T slope", "T y", "y = tinyae_activate(z + bias, act, slope)",
    "tinyae_bias_act_forward", preamble=_ACTIVATIONS_CUDA)


def bias_act_forward(z, bias, act, slope=0.01):
    """y = act(z + bias): one kernel, bias broadcast over the channel axis."""
    reference.check_activation(act)
    return _bias_act_forward_kernel(z, _per_channel(bias, z), ACTIVATION_CODES[act],
                                    z.dtype.type(slope))


def bias_act_backward(gy, y, act, slope=0.01, gbias_out=None):
    """(gz, gbias): activation_backward's kernel for gz, then CuPy's sum over all axes but 1."""
    gz = activation_backward(gy, y, act, slope)
    return gz, gz.sum(axis=channel_sum_axes(gy.ndim), out=gbias_out)


# ------------------------------------------------------------------ losses
_bce_kernel = cupy.ElementwiseKernel(
    "T x, T t, T divisor",
    "T loss, T grad",
    """
    const T e = exp(-fabs(x));
    loss = (x > 0 ? x : (T)0) - x * t + log1p(e);
    grad = (tinyae_sigmoid_from_exp(x, e) - t) / divisor;
    """,
    "tinyae_sigmoid_bce_with_logits", preamble=_ACTIVATIONS_CUDA)


def sigmoid_bce_with_logits(logits, targets, reduction="mean"):
    """(loss, grad): one kernel writes both per-element loss and grad, then one sum."""
    reference.check_reduction(reduction)
    divisor = logits.size if reduction == "mean" else 1
    loss, grad = _bce_kernel(logits, targets.astype(logits.dtype, copy=False),
                             logits.dtype.type(divisor))
    if reduction == "none":
        return loss, grad
    return (loss.sum() / divisor).astype(logits.dtype), grad


_BCE_CUDA = r"""
template <typename T>
__device__ T tinyae_clamp_log(T log_value) {   // max(log_value, -100); NaN stays NaN
    return log_value < (T)-100 ? (T)-100 : log_value;
}
"""

_bce_loss_kernel = cupy.ReductionKernel(
    "T p, T t, T divisor", "T loss",
    "-(t * tinyae_clamp_log(log(p)) + (1 - t) * tinyae_clamp_log(log1p(-p)))",   # map
    "a + b",                                                                       # reduce
    "loss = a / divisor",                                                          # post-map
    "0", "tinyae_bce_loss", preamble=_BCE_CUDA)

_bce_backward_kernel = cupy.ElementwiseKernel(
    "T gy, T p, T t, T divisor", "T gp",
    "gp = gy / divisor * (p - t) / max(p * (1 - p), (T)1e-12)",
    "tinyae_bce_backward")


def bce_forward(p, targets, reduction="mean"):
    """The reduced loss in one ReductionKernel (map, sum, divide); "none" runs the plain
    version (several kernels)."""
    reference.check_reduction(reduction)
    if reduction == "none":
        return reference.bce_forward(p, targets, reduction)
    divisor = p.size if reduction == "mean" else 1
    return _bce_loss_kernel(p, targets.astype(p.dtype, copy=False), p.dtype.type(divisor))


def bce_backward(gy, p, targets, reduction="mean"):
    """dL/dp in one kernel; gy is 0-d ("mean", "sum") or p's shape ("none")."""
    reference.check_reduction(reduction)
    divisor = p.size if reduction == "mean" else 1
    return _bce_backward_kernel(gy.astype(p.dtype, copy=False), p,
                                targets.astype(p.dtype, copy=False), p.dtype.type(divisor))


# ------------------------------------------------------ VAE: KL and sampling
_reparameterize_kernel = cupy.ElementwiseKernel(
    "T mu, T logvar, T eps",
    "T z, T sd",
    """
    sd = exp(logvar * (T)0.5);      // the standard deviation
    z = mu + sd * eps;
    """,
    "tinyae_reparameterize")


def reparameterize(mu, logvar, eps):
    """(z, std) in one kernel."""
    return _reparameterize_kernel(mu, logvar.astype(mu.dtype, copy=False),
                                  eps.astype(mu.dtype, copy=False))


_reparameterize_backward_kernel = cupy.ElementwiseKernel(
    "T gz, T eps, T sd", "T glogvar", "glogvar = gz * eps * sd * (T)0.5",
    "tinyae_reparameterize_backward")


def reparameterize_backward(gz, eps, std):
    """(gmu, glogvar) = (copy of gz, gz eps std / 2)."""
    return gz.copy(), _reparameterize_backward_kernel(gz, eps.astype(gz.dtype, copy=False),
                                                      std.astype(gz.dtype, copy=False))


_kl_normal_kernel = cupy.ReductionKernel(
    "T mu, T logvar", "T kl",
    "mu * mu + exp(logvar) - 1 - logvar",   # map: one term of the KL
    "a + b",                                  # reduce: sum over the latent axes
    "kl = a / 2",                             # post-map
    "0", "tinyae_kl_normal")

_kl_normal_grad_kernel = cupy.ElementwiseKernel(
    "T logvar", "T dlogvar", "dlogvar = (T)0.5 * (exp(logvar) - 1)", "tinyae_kl_normal_grad")


def kl_normal_forward_backward(mu, logvar):
    """(kl (N,), dmu, dlogvar): a ReductionKernel for kl and an ElementwiseKernel for dlogvar."""
    logvar = logvar.astype(mu.dtype, copy=False)
    kl = _kl_normal_kernel(mu, logvar, axis=tuple(range(1, mu.ndim)))
    return kl, mu.copy(), _kl_normal_grad_kernel(logvar)


# ------------------------------------------------------------- batch norm
_batchnorm_forward_kernel = cupy.ElementwiseKernel(
    "T x, T mean, T invstd, T gamma, T beta", "T y",
    "y = (x - mean) * invstd * gamma + beta",
    "tinyae_batchnorm_forward")


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """(y, mean, invstd): CuPy's mean and var reductions, then one normalising kernel."""
    axes = channel_sum_axes(x.ndim)
    mean = x.mean(axis=axes)
    invstd = 1 / cupy.sqrt(x.var(axis=axes) + eps)
    y = _batchnorm_forward_kernel(x, _per_channel(mean, x), _per_channel(invstd, x),
                                  _per_channel(gamma, x), _per_channel(beta, x))
    return y, mean, invstd


_batchnorm_ggamma_kernel = cupy.ReductionKernel(
    "T gy, T x, T mean, T invstd", "T ggamma",
    "gy * ((x - mean) * invstd)", "a + b", "ggamma = a", "0",
    "tinyae_batchnorm_ggamma")

_batchnorm_backward_kernel = cupy.ElementwiseKernel(
    "T gy, T x, T mean, T invstd, T gamma, T gbeta, T ggamma, T m", "T gx",
    """
    const T x_hat = (x - mean) * invstd;
    gx = gamma * invstd / m * (m * gy - gbeta - x_hat * ggamma);
    """,
    "tinyae_batchnorm_backward")


_batchnorm_running_kernel = cupy.ElementwiseKernel(
    "T mean, T invstd, T keep, T momentum, T unbiased_momentum, T eps",
    "T running_mean, T running_var",
    """
    running_mean = running_mean * keep + momentum * mean;            // keep = 1 - momentum
    running_var = running_var * keep + unbiased_momentum * (1 / (invstd * invstd) - eps);
    """,
    "tinyae_batchnorm_update_running")


def batchnorm_update_running(running_mean, running_var, mean, invstd, momentum, count, eps):
    """Both running statistics in one kernel over the channels."""
    t = running_mean.dtype.type
    _batchnorm_running_kernel(mean.astype(t, copy=False), invstd.astype(t, copy=False),
                              t(1 - momentum), t(momentum), t(momentum * count / (count - 1)),
                              t(eps), running_mean, running_var)


def batchnorm_backward(gy, x, gamma, mean, invstd, ggamma_out=None, gbeta_out=None):
    """(gx, ggamma, gbeta): two channel reductions, then one kernel for gx."""
    axes = channel_sum_axes(x.ndim)
    gy = gy.astype(x.dtype, copy=False)
    mean_b, invstd_b = _per_channel(mean, x), _per_channel(invstd, x)
    gbeta = gy.sum(axis=axes, out=gbeta_out)
    ggamma = _batchnorm_ggamma_kernel(gy, x, mean_b, invstd_b, axis=axes, out=ggamma_out)
    gx = _batchnorm_backward_kernel(gy, x, mean_b, invstd_b, _per_channel(gamma, x),
                                    _per_channel(gbeta, x), _per_channel(ggamma, x),
                                    x.dtype.type(x.size // x.shape[1]))
    return gx, ggamma, gbeta


# ------------------------------------------------------------------ dropout
_dropout_kernel = cupy.ElementwiseKernel(
    "T x, float32 u, float32 p, T scale", "T y, T mask",
    """
    mask = u >= p ? scale : (T)0;
    y = x * mask;
    """,
    "tinyae_dropout_forward")


def dropout_forward(x, uniform, p):
    """(y, mask) in one kernel."""
    scale = 0.0 if p == 1 else 1 / (1 - p)
    return _dropout_kernel(x, uniform.astype("float32", copy=False), cupy.float32(p),
                           x.dtype.type(scale))


# -------------------------------------------------------------- optimizers
_adam_kernel = cupy.ElementwiseKernel(
    "T grad, T weight_decay, T one_minus_beta1, bool lerp_small, T lerp_complement, T beta2, "
    "T one_minus_beta2, T step_size, T bias_correction2_sqrt, T eps",
    "T param, T exp_avg, T exp_avg_sq",
    """
    T g = grad;
    if (weight_decay != 0) g = g + weight_decay * param;
    // exp_avg.lerp_(g, 1 - beta1), rounded as torch.lerp rounds
    const T m = lerp_small ? exp_avg + one_minus_beta1 * (g - exp_avg)
                           : g - (g - exp_avg) * lerp_complement;
    const T v = exp_avg_sq * beta2 + one_minus_beta2 * g * g;
    exp_avg = m;
    exp_avg_sq = v;
    param = param - step_size * (m / (sqrt(v) / bias_correction2_sqrt + eps));
    """,
    "tinyae_adam_update")


def adam_update(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999,
                eps=1e-8, weight_decay=0.0):
    """One Adam step in place: one kernel reads and writes param, exp_avg, exp_avg_sq once."""
    t = param.dtype.type
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    _adam_kernel(grad.astype(param.dtype, copy=False), t(weight_decay), t(1 - beta1),
                 (1 - beta1) < 0.5, t(1 - (1 - beta1)), t(beta2), t(1 - beta2),
                 t(lr / bias_correction1), t(bias_correction2 ** 0.5), t(eps),
                 param, exp_avg, exp_avg_sq)


_rmsprop_kernel = cupy.ElementwiseKernel(
    "T grad, T lr, T alpha, T eps, T weight_decay, T momentum, bool centered, "
    "T one_minus_alpha, bool lerp_small, T lerp_complement",
    "T param, T square_avg, raw T momentum_buffer, raw T grad_avg",
    """
    T g = grad;
    if (weight_decay != 0) g = g + weight_decay * param;
    const T s = square_avg * alpha + one_minus_alpha * g * g;
    square_avg = s;
    T avg;
    if (centered) {
        const T a0 = grad_avg[i];
        const T a = lerp_small ? a0 + one_minus_alpha * (g - a0) : g - (g - a0) * lerp_complement;
        grad_avg[i] = a;
        avg = sqrt(s - a * a) + eps;
    } else {
        avg = sqrt(s) + eps;
    }
    if (momentum > 0) {
        const T b = momentum_buffer[i] * momentum + g / avg;
        momentum_buffer[i] = b;
        param = param - lr * b;
    } else {
        param = param - lr * (g / avg);
    }
    """,
    "tinyae_rmsprop_update")


def _contiguous_buffer(buffer, param, name):
    if not buffer.flags.c_contiguous or buffer.shape != param.shape:
        raise ValueError(f"rmsprop_update: {name} must be a C-contiguous array shaped like "
                         f"param {param.shape}; got shape {buffer.shape}")
    return buffer


def rmsprop_update(param, grad, square_avg, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
                   momentum=0.0, momentum_buffer=None, centered=False, grad_avg=None):
    """One RMSprop step in place: one kernel; unused buffers are a 1-element stand-in."""
    reference.check_rmsprop_buffers(momentum, momentum_buffer, centered, grad_avg)
    if not param.flags.c_contiguous:
        raise ValueError("rmsprop_update: param must be C-contiguous (the buffers are indexed "
                         "by its flat index)")
    unused = cupy.empty(1, dtype=param.dtype)
    buf = _contiguous_buffer(momentum_buffer, param, "momentum_buffer") if momentum > 0 else unused
    avg = _contiguous_buffer(grad_avg, param, "grad_avg") if centered else unused
    t = param.dtype.type
    _rmsprop_kernel(grad.astype(param.dtype, copy=False), t(lr), t(alpha), t(eps),
                    t(weight_decay), t(momentum), bool(centered), t(1 - alpha), (1 - alpha) < 0.5,
                    t(1 - (1 - alpha)), param, square_avg, buf, avg)
