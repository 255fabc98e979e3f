"""Plain reference versions of the hot kernels, written for reading.

Every fast kernel in this package (Numba on the CPU, CuPy on the GPU) has its
plain counterpart here, on whatever array module its inputs use, and a test
that the two agree. Read these first.

Convolution is lowered to one matrix product through the *column matrix*:

    cols[(c, i, j), (n, oh, ow)] = x_padded[n, c, oh*sh + i, ow*sw + j]

of shape (C*KH*KW, N*OH*OW), so that conv2d is  W.reshape(OC, -1) @ cols.
``col2im`` is the adjoint of ``im2col``: it adds every column entry back to the
pixel it came from (overlapping windows add up). Tutorial 06 derives both.
"""


def _array_module(x):
    if type(x).__module__.startswith("cupy"):
        import cupy
        return cupy
    import numpy
    return numpy


def conv_output_size(size, kernel, stride, padding, dilation=1):
    """PyTorch's output size of a convolution along one axis."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def col2im_sizes(cols, x_shape, kh, kw, sh, sw, ph, pw):
    """(n, c, h, w, oh, ow) for col2im, after checking that ``cols`` fits ``x_shape``."""
    n, c, h, w = (int(s) for s in x_shape)
    oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    if tuple(cols.shape) != (c * kh * kw, n * oh * ow):
        raise ValueError(f"col2im: cols of shape {tuple(cols.shape)} do not match x_shape "
                         f"{tuple(x_shape)} with a {kh}x{kw} kernel: expected "
                         f"{(c * kh * kw, n * oh * ow)}")
    return n, c, h, w, oh, ow


def im2col(x, kh, kw, sh, sw, ph, pw):
    """x (N, C, H, W) -> cols (C*kh*kw, N*OH*OW), the column matrix above."""
    xp = _array_module(x)
    n, c, h, w = x.shape
    oh = conv_output_size(h, kh, sh, ph)
    ow = conv_output_size(w, kw, sw, pw)
    padded = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = xp.empty((c, kh, kw, n, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            window = padded[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
            cols[:, i, j] = window.transpose(1, 0, 2, 3)
    return cols.reshape(c * kh * kw, n * oh * ow)


def col2im(cols, x_shape, kh, kw, sh, sw, ph, pw):
    """The adjoint of im2col: cols (C*kh*kw, N*OH*OW) -> x (N, C, H, W), overlaps summed."""
    xp = _array_module(cols)
    n, c, h, w = x_shape
    oh = conv_output_size(h, kh, sh, ph)
    ow = conv_output_size(w, kw, sw, pw)
    cols = cols.reshape(c, kh, kw, n, oh, ow)
    padded = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            padded[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += \
                cols[:, i, j].transpose(1, 0, 2, 3)
    return padded[:, :, ph:ph + h, pw:pw + w]


def matmul_accumulate(a, b, out):
    """out += a @ b for 2-d arrays, in place (a gradient added to the one already there)."""
    out += a @ b


# ------------------------------------------------------------- activations
FUSED_ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh")


def check_activation(act):
    """Refuse an activation name the fused kernels do not know."""
    if act not in FUSED_ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; choose one of {FUSED_ACTIVATIONS}")


def sigmoid_from_exp(x, e):
    """sigmoid(x) from e = exp(-|x|): 1 / (1 + e) for x >= 0, e / (1 + e) below.

    Only exp(-|x|) <= 1 is ever computed, so no x overflows (tutorial 04).
    """
    xp = _array_module(x)
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid(x):
    """1 / (1 + exp(-x)), stable for any x."""
    xp = _array_module(x)
    return sigmoid_from_exp(x, xp.exp(-xp.abs(x)))


def activation_forward(x, act, slope=0.01):
    """y = act(x) elementwise, any shape; act is one of FUSED_ACTIVATIONS.

    ``slope`` is leaky_relu's negative slope (> 0, so that y > 0 exactly where x > 0).
    """
    check_activation(act)
    xp = _array_module(x)
    if act == "identity":
        return x
    if act == "relu":
        return xp.maximum(x, 0)
    if act == "leaky_relu":
        return xp.where(x > 0, x, x * slope)
    if act == "sigmoid":
        return sigmoid(x)
    return xp.tanh(x)


def activation_backward(gy, y, act, slope=0.01):
    """gx = gy act'(x), with act'(x) read off the output y = act(x):

    relu 1[y > 0];  leaky_relu 1 or slope by y > 0;  sigmoid y (1 - y);  tanh 1 - y^2.
    """
    check_activation(act)
    xp = _array_module(gy)
    if act == "identity":
        return gy
    if act == "relu":
        return xp.where(y > 0, gy, 0)
    if act == "leaky_relu":
        return xp.where(y > 0, gy, gy * slope)
    if act == "sigmoid":
        return gy * y * (1 - y)
    return gy * (1 - y * y)


# ------------------------------------------------------- bias + activation
def channel_shape(ndim):
    """The shape that broadcasts a per-channel vector over axis 1 of an ndim array."""
    return (1, -1) + (1,) * (ndim - 2)


def channel_sum_axes(ndim):
    """Every axis but the channel axis 1: (0,) for (N, F), (0, 2, 3) for (N, C, H, W)."""
    return (0,) + tuple(range(2, ndim))


def bias_act_forward(z, bias, act, slope=0.01):
    """y = act(z + bias), bias per column of (N, F) or per channel of (N, C, H, W)."""
    return activation_forward(z + bias.reshape(channel_shape(z.ndim)), act, slope)


def bias_act_backward(gy, y, act, slope=0.01, gbias_out=None):
    """(gz, gbias) for y = act(z + bias), from the output y alone.

    gz = activation_backward(gy, y); gbias sums gz over every axis but axis 1
    (into ``gbias_out`` when given: the backward kernels write a parameter's
    gradient straight into its optimizer's buffer).
    """
    gz = activation_backward(gy, y, act, slope)
    return gz, gz.sum(axis=channel_sum_axes(gy.ndim), out=gbias_out)


# ------------------------------------------------------------------ losses
REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction):
    """Refuse a reduction other than "mean", "sum" or "none"."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def sigmoid_bce_with_logits(logits, targets, reduction="mean"):
    """Binary cross-entropy on logits x with targets y, and its gradient dL/dx.

    Per element  l = max(x, 0) - x y + log1p(exp(-|x|))  (never overflows), and
    dl/dx = sigmoid(x) - y.  Returns (loss, grad): loss the per-element losses
    ("none"), their sum as a 0-d array of x's dtype ("sum"), or their mean
    ("mean", then grad is divided by x.size too).
    """
    check_reduction(reduction)
    xp = _array_module(logits)
    x, y = logits, targets
    e = xp.exp(-xp.abs(x))
    loss = xp.maximum(x, 0) - x * y + xp.log1p(e)
    grad = sigmoid_from_exp(x, e) - y
    if reduction == "none":
        return loss, grad
    loss = xp.sum(loss)
    if reduction == "mean":
        loss, grad = loss / x.size, grad / x.size
    return xp.asarray(loss, dtype=x.dtype), grad


def clamped_logs(p):
    """(log p, log(1 - p)), each clamped at -100 as in PyTorch's BCELoss; log(1 - p) is
    log1p(-p), exact for small p. Both NaN where p lies outside [0, 1]."""
    import numpy
    xp = _array_module(p)
    with numpy.errstate(divide="ignore", invalid="ignore"):  # log 0 = -inf: clamped here
        return xp.maximum(xp.log(p), -100), xp.maximum(xp.log1p(-p), -100)


def bce_forward(p, targets, reduction="mean"):
    """Binary cross-entropy of probabilities p against targets y, reduced.

    Per element  l = -(y log p + (1 - y) log(1 - p)), the logs clamped (clamped_logs).
    A p outside [0, 1] makes its l NaN, and so the sum: tinyae.losses.bce looks for
    such p only then. Returns the per-element losses ("none"), or their sum or mean
    ("sum", "mean") as a 0-d array of p's dtype.
    """
    check_reduction(reduction)
    xp = _array_module(p)
    log_p, log_1mp = clamped_logs(p)
    loss = -(targets * log_p + (1 - targets) * log_1mp)
    if reduction == "none":
        return loss
    total = xp.sum(loss)
    if reduction == "mean":
        total = total / p.size
    return xp.asarray(total, dtype=p.dtype)


def bce_backward(gy, p, targets, reduction="mean"):
    """dL/dp of bce_forward times the upstream gy:  gy' (p - y) / max(p (1 - p), 1e-12),
    gy' = gy / p.size for "mean" (else gy, per element for "none"); the floor keeps
    p = 0 or 1 from dividing by zero, as PyTorch."""
    check_reduction(reduction)
    xp = _array_module(p)
    g = gy / p.size if reduction == "mean" else gy
    return g * (p - targets) / xp.maximum(p * (1 - p), 1e-12)


# ------------------------------------------------------ VAE: KL and sampling
def reparameterize(mu, logvar, eps):
    """z = mu + std * eps with std = exp(logvar / 2); returns (z, std)."""
    xp = _array_module(mu)
    std = xp.exp(0.5 * logvar)
    return mu + std * eps, std


def reparameterize_backward(gz, eps, std):
    """(gmu, glogvar) for z = mu + exp(logvar / 2) eps:  gmu = gz,  glogvar = gz eps std / 2.

    gmu is a copy of gz, so that accumulating into it leaves gz alone.
    """
    return gz.copy(), gz * eps * std * 0.5


def kl_normal_forward_backward(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, 1)) per example, and its gradients.

    kl[n] = 1/2 sum_j (mu^2 + exp(logvar) - 1 - logvar) over every axis but 0;
    dkl/dmu = mu (a copy);  dkl/dlogvar = (exp(logvar) - 1) / 2.
    Returns (kl (N,), dmu, dlogvar).
    """
    xp = _array_module(mu)
    var = xp.exp(logvar)
    axes = tuple(range(1, mu.ndim))
    kl = 0.5 * xp.sum(mu * mu + var - 1 - logvar, axis=axes)
    return kl, mu.copy(), 0.5 * (var - 1)


# ------------------------------------------------------------- batch norm
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Training-mode batch norm over every axis but the channel axis 1.

    y = gamma (x - mean) invstd + beta,  invstd = 1 / sqrt(var + eps), var biased
    (divided by M = x.size / C), as PyTorch normalises. Returns (y, mean, invstd),
    mean and invstd of shape (C,).
    """
    xp = _array_module(x)
    axes, shape = channel_sum_axes(x.ndim), channel_shape(x.ndim)
    mean = x.mean(axis=axes)
    var = x.var(axis=axes)
    invstd = 1 / xp.sqrt(var + eps)
    x_hat = (x - mean.reshape(shape)) * invstd.reshape(shape)
    return x_hat * gamma.reshape(shape) + beta.reshape(shape), mean, invstd


def batchnorm_update_running(running_mean, running_var, mean, invstd, momentum, count, eps):
    """Running statistics in place, as PyTorch: running = (1 - m) running + m batch.

    The batch variance is the forward's, var = 1 / invstd^2 - eps (biased), made
    unbiased: var count / (count - 1), count the values per channel.
    """
    var = 1 / (invstd * invstd) - eps
    running_mean *= 1 - momentum
    running_mean += momentum * mean
    running_var *= 1 - momentum
    running_var += (momentum * count / (count - 1)) * var


def batchnorm_backward(gy, x, gamma, mean, invstd, ggamma_out=None, gbeta_out=None):
    """(gx, ggamma, gbeta) of training-mode batch norm, from x and the saved statistics.

    With x_hat = (x - mean) invstd and M values per channel:
    gbeta = sum gy,  ggamma = sum gy x_hat,
    gx = gamma invstd / M (M gy - gbeta - x_hat ggamma).
    ggamma and gbeta go into ``ggamma_out`` and ``gbeta_out`` when given.
    """
    axes, shape = channel_sum_axes(x.ndim), channel_shape(x.ndim)
    m = x.size // x.shape[1]
    x_hat = (x - mean.reshape(shape)) * invstd.reshape(shape)
    gbeta = gy.sum(axis=axes, out=gbeta_out)
    ggamma = (gy * x_hat).sum(axis=axes, out=ggamma_out)
    scale = (gamma * invstd / m).reshape(shape)
    gx = scale * (m * gy - gbeta.reshape(shape) - x_hat * ggamma.reshape(shape))
    return gx, ggamma, gbeta


# ------------------------------------------------------------------ dropout
def dropout_forward(x, uniform, p):
    """Inverted dropout: (y, mask), mask = 1 / (1 - p) where uniform >= p, else 0 (all 0
    for p = 1), y = x mask; ``uniform`` holds draws of U[0, 1) shaped like x."""
    scale = 0.0 if p == 1 else 1 / (1 - p)
    mask = (uniform >= p).astype(x.dtype) * scale
    return x * mask, mask


# -------------------------------------------------------------- optimizers
def lerp_(start, end, weight):
    """start += weight (end - start) in place, rounded the way torch.lerp_ rounds."""
    if weight < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1 - weight)


def adam_update(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999,
                eps=1e-8, weight_decay=0.0):
    """One Adam step in place, PyTorch's rule (torch.optim.Adam, amsgrad off).

    step is the new step count t >= 1.  g = grad + weight_decay param;
    m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;
    param -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
    """
    xp = _array_module(param)
    if weight_decay != 0:
        grad = grad + weight_decay * param
    lerp_(exp_avg, grad, 1 - beta1)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * grad * grad
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    step_size = lr / bias_correction1
    denom = xp.sqrt(exp_avg_sq) / bias_correction2 ** 0.5 + eps
    param -= step_size * (exp_avg / denom)


def rmsprop_update(param, grad, square_avg, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
                   momentum=0.0, momentum_buffer=None, centered=False, grad_avg=None):
    """One RMSprop step in place, PyTorch's rule (torch.optim.RMSprop).

    g = grad + weight_decay param;  s = alpha s + (1 - alpha) g^2;
    centered: a = alpha a + (1 - alpha) g (grad_avg) and avg = sqrt(s - a^2), else sqrt(s);
    momentum > 0: b = momentum b + g / (avg + eps), param -= lr b (momentum_buffer);
    otherwise param -= lr g / (avg + eps).  The buffers start as zeros.
    """
    xp = _array_module(param)
    check_rmsprop_buffers(momentum, momentum_buffer, centered, grad_avg)
    if weight_decay != 0:
        grad = grad + weight_decay * param
    square_avg *= alpha
    square_avg += (1 - alpha) * grad * grad
    if centered:
        lerp_(grad_avg, grad, 1 - alpha)
        avg = xp.sqrt(square_avg - grad_avg * grad_avg)
    else:
        avg = xp.sqrt(square_avg)
    avg += eps
    if momentum > 0:
        momentum_buffer *= momentum
        momentum_buffer += grad / avg
        param -= lr * momentum_buffer
    else:
        param -= lr * (grad / avg)


def check_rmsprop_buffers(momentum, momentum_buffer, centered, grad_avg):
    """Refuse a momentum or centred RMSprop step without the buffer it updates."""
    if momentum > 0 and momentum_buffer is None:
        raise ValueError("rmsprop_update: momentum > 0 needs a momentum_buffer "
                         "(zeros shaped like param on the first step)")
    if centered and grad_avg is None:
        raise ValueError("rmsprop_update: centered=True needs grad_avg "
                         "(zeros shaped like param on the first step)")
