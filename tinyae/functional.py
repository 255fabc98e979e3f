"""Layer operations as functions: linear, convolution, batch norm, dropout, activations.

These are what the layers in ``tinyae.nn`` call with their parameters; they can
also be called directly with tensors you own (as ``torch.nn.functional``)::

    import tinyae.functional as F
    y = F.conv2d(x, weight, bias, stride=2, padding=1)

Each operation is one ``Function`` class with ``forward`` on arrays and
``backward`` right beside it; the docstring states the derivative and names
the tutorial that derives it. Layouts and output sizes are PyTorch's:
images are (N, C, H, W), a conv weight is (out_channels, in_channels, KH, KW),
a transposed-conv weight is (in_channels, out_channels, KH, KW).

Convolution is lowered to one matrix product through the column matrix of
``kernels.im2col`` (C*KH*KW, N*OH*OW); ``kernels.col2im`` is its adjoint.
"""
import operator

import kernels
import numpy

from . import backend
from .autograd import Function, Tensor, numel
from .ops import leaky_relu, relu, sigmoid, softplus, tanh  # noqa: F401  (re-exported)

__all__ = ["linear", "conv2d", "conv_transpose2d", "batch_norm", "dropout", "manual_seed",
           "reparameterize", "relu", "leaky_relu", "sigmoid", "tanh", "softplus"]


def _pair(value, name):
    """An int or a pair of ints as a (height, width) tuple of Python ints."""
    try:
        size = operator.index(value)
        return (size, size)
    except TypeError:
        pass
    try:
        pair = tuple(operator.index(v) for v in value)
    except TypeError:
        pair = ()
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints (height, width), got {value!r}")
    return pair


def _shape_text(shape):
    return str(tuple(int(n) for n in shape))


def _product_gradient(fn, i, a, b):
    """a @ b as the gradient of ``fn``'s input i, in that input's shape. An input that keeps
    its gradient in a buffer (``Function.gradient_buffer``) gets the product there: written
    while it holds no gradient, added to it in the same product when it does."""
    out = fn.gradient_buffer(i, accumulate=True)
    if out is None:
        return (a @ b).reshape(fn.inputs[i].shape)
    if fn.inputs[i].grad is None:
        fn.xp.matmul(a, b, out=out.reshape(a.shape[0], b.shape[1]))
    else:
        kernels.matmul_accumulate(a, b, out.reshape(a.shape[0], b.shape[1]))
    return out


# ---------------------------------------------------------------- linear
class Linear(Function):
    """y = act(z), z = x @ W^T + b;  dL/dz = dL/dy * act'(z) (read off y),
    dL/dx = dL/dz @ W, dL/dW = dL/dz^T @ x, dL/db = sum of dL/dz over the batch.
    Tutorial 03 (and 04 for act').

    Bias and activation run as one fused pass each way (``kernels.bias_act_forward``
    and ``_backward``); act is one of "identity", "relu", "leaky_relu", "sigmoid", "tanh"."""

    def __init__(self, activation="identity", negative_slope=0.01):
        self.activation, self.slope = activation, negative_slope

    def forward(self, x, weight, bias=None):
        if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[1]:
            raise ValueError(
                f"linear: input of shape {_shape_text(x.shape)} does not fit weight of shape "
                f"{_shape_text(weight.shape)} (out_features, in_features): the input's last "
                f"dimension must be in_features")
        if bias is not None and tuple(bias.shape) != (weight.shape[0],):
            raise ValueError(f"linear: bias of shape {_shape_text(bias.shape)}, expected "
                             f"({weight.shape[0]},) (out_features,)")
        self.x, self.weight, self.has_bias = x, weight, bias is not None
        z = x.reshape(-1, weight.shape[1]) @ weight.T      # every leading axis counts as batch
        if bias is None and self.activation == "identity":
            self.y = z
        else:
            if bias is None:
                bias = self.xp.zeros(weight.shape[0], dtype=z.dtype)
            self.y = kernels.bias_act_forward(z, bias, self.activation, self.slope)
        return self.y.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, gy):
        in_features, out_features = self.weight.shape[1], self.weight.shape[0]
        gy = gy.reshape(-1, out_features)
        gbias = self.gradient_buffer(2) if self.has_bias else None
        if self.activation == "identity":
            gz, gbias = gy, (gy.sum(axis=0, out=gbias) if self.has_bias else None)
        else:
            gz, gbias = kernels.bias_act_backward(gy, self.y, self.activation, self.slope, gbias)
        gx = (gz @ self.weight).reshape(self.x.shape) if self.needs_grad(0) else None
        gweight = _product_gradient(self, 1, gz.T, self.x.reshape(-1, in_features))  # gz^T x
        if self.has_bias:
            return gx, gweight, gbias
        return gx, gweight


def _check_fused_activation(op, activation, negative_slope):
    """The ValueError for an activation an op cannot fuse (linear and batch_norm)."""
    if activation not in kernels.FUSED_ACTIVATIONS:
        raise ValueError(f"{op}: unknown activation {activation!r}; choose one of "
                         f"{kernels.FUSED_ACTIVATIONS}")
    if activation == "leaky_relu" and not negative_slope > 0:
        # The backward reads the mask off the output (y > 0 exactly where z > 0), which
        # only holds for a positive slope.
        raise ValueError(f"{op}: a fused leaky_relu needs negative_slope > 0, got "
                         f"{negative_slope}; apply tinyae.leaky_relu to {op}'s output instead")


def linear(x, weight, bias=None, activation="identity", negative_slope=0.01):
    """y = activation(x @ weight.T + bias), weight (out_features, in_features) as in PyTorch.

    ``x`` is (N, in_features), or more generally (..., in_features). ``activation``
    ("identity", "relu", "leaky_relu", "sigmoid" or "tanh") is applied in the same
    fused pass as the bias; ``nn.Sequential`` uses it for a Dense followed by one of
    those activation layers.

    Example::

        y = F.linear(x, weight, bias)                      # (N, 3) @ (4, 3).T + (4,) -> (N, 4)
        h = F.linear(x, weight, bias, activation="relu")   # relu(x @ W.T + b) in one pass
    """
    _check_fused_activation("linear", activation, negative_slope)
    fn = Linear(activation, negative_slope)
    if bias is None:
        return fn.apply(x, weight)
    return fn.apply(x, weight, bias)


# ---------------------------------------------------------------- convolution
def _check_conv_input(op, x, weight, bias, weight_channels_axis):
    """Shapes of a convolution's arrays; ``weight_channels_axis`` holds the input channels."""
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"{op}: needs input (N, C, H, W) and a 4-d weight, got input of "
                         f"shape {_shape_text(x.shape)} and weight of shape "
                         f"{_shape_text(weight.shape)}")
    if x.shape[1] != weight.shape[weight_channels_axis]:
        raise ValueError(
            f"{op}: input has {x.shape[1]} channels (shape {_shape_text(x.shape)}) but the "
            f"weight of shape {_shape_text(weight.shape)} expects "
            f"{weight.shape[weight_channels_axis]}")
    out_channels = weight.shape[1 - weight_channels_axis]
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise ValueError(f"{op}: bias of shape {_shape_text(bias.shape)}, expected "
                         f"({out_channels},) (out_channels,)")


def _check_stride_padding(stride, padding):
    if min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"stride must be >= 1 and padding >= 0, got stride={stride}, "
                         f"padding={padding}")


class Conv2d(Function):
    """y = W * x (cross-correlation) computed as W.reshape(OC, -1) @ im2col(x);
    dL/dW = dL/dY @ cols^T,  dL/dx = col2im(W^T @ dL/dY),  dL/db = sum of dL/dy over
    N, H, W. Tutorial 06."""

    def __init__(self, stride, padding):
        self.stride, self.padding = stride, padding

    def forward(self, x, weight, bias=None):
        _check_conv_input("conv2d", x, weight, bias, 1)
        out_channels, _, kh, kw = weight.shape
        (sh, sw), (ph, pw) = self.stride, self.padding
        n, _, h, w = x.shape
        oh = kernels.conv_output_size(h, kh, sh, ph)
        ow = kernels.conv_output_size(w, kw, sw, pw)
        if oh < 1 or ow < 1:
            raise ValueError(
                f"conv2d: input of spatial size ({h}, {w}) with padding ({ph}, {pw}) is "
                f"smaller than the kernel ({kh}, {kw}); use a smaller kernel or more padding")
        self.x_shape, self.weight, self.has_bias = x.shape, weight, bias is not None
        self.cols = kernels.im2col(x, kh, kw, sh, sw, ph, pw)        # (C*KH*KW, N*OH*OW)
        y = weight.reshape(out_channels, -1) @ self.cols              # (OC, N*OH*OW)
        y = y.reshape(out_channels, n, oh, ow).transpose(1, 0, 2, 3)  # (N, OC, OH, OW)
        if bias is not None:
            return y + bias.reshape(1, -1, 1, 1)
        return self.xp.ascontiguousarray(y)

    def backward(self, gy):
        out_channels, _, kh, kw = self.weight.shape
        (sh, sw), (ph, pw) = self.stride, self.padding
        gy_rows = gy.transpose(1, 0, 2, 3).reshape(out_channels, -1)  # (OC, N*OH*OW)
        gweight = _product_gradient(self, 1, gy_rows, self.cols.T)
        gx = None
        if self.needs_grad(0):
            gcols = self.weight.reshape(out_channels, -1).T @ gy_rows  # (C*KH*KW, N*OH*OW)
            gx = kernels.col2im(gcols, self.x_shape, kh, kw, sh, sw, ph, pw)
        if self.has_bias:
            return gx, gweight, gy.sum(axis=(0, 2, 3), out=self.gradient_buffer(2))
        return gx, gweight


def conv2d(x, weight, bias=None, stride=1, padding=0):
    """2-d convolution (cross-correlation, as PyTorch) of x (N, C, H, W) with weight
    (out_channels, C, KH, KW); output (N, out_channels, OH, OW) with
    OH = (H + 2 padding - KH) // stride + 1 (likewise OW).

    ``stride`` and ``padding`` are an int or a (height, width) pair.

    Example::

        y = F.conv2d(x, weight, bias, stride=2, padding=1)  # (8, 1, 28, 28) -> (8, 16, 14, 14)
    """
    fn = Conv2d(_pair(stride, "stride"), _pair(padding, "padding"))
    _check_stride_padding(fn.stride, fn.padding)
    return fn.apply(x, weight) if bias is None else fn.apply(x, weight, bias)


class ConvTranspose2d(Function):
    """The adjoint of conv2d: y = col2im(W^T @ x) with W (C_in, C_out*KH*KW);
    dL/dx = W @ im2col(dL/dy),  dL/dW = x @ im2col(dL/dy)^T,  dL/db = sum of dL/dy over
    N, H, W. Tutorial 06."""

    def __init__(self, stride, padding, output_padding):
        self.stride, self.padding, self.output_padding = stride, padding, output_padding

    def forward(self, x, weight, bias=None):
        _check_conv_input("conv_transpose2d", x, weight, bias, 0)
        in_channels, out_channels, kh, kw = weight.shape
        (sh, sw), (ph, pw), (oph, opw) = self.stride, self.padding, self.output_padding
        n, _, h, w = x.shape
        oh = (h - 1) * sh - 2 * ph + kh + oph
        ow = (w - 1) * sw - 2 * pw + kw + opw
        if oh < 1 or ow < 1:
            raise ValueError(f"conv_transpose2d: the output size ({oh}, {ow}) is not positive; "
                             f"padding ({ph}, {pw}) is too large for input ({h}, {w})")
        self.x_shape, self.weight, self.has_bias = x.shape, weight, bias is not None
        self.x_rows = x.transpose(1, 0, 2, 3).reshape(in_channels, -1)  # (C_in, N*H*W)
        cols = weight.reshape(in_channels, -1).T @ self.x_rows            # (C_out*KH*KW, N*H*W)
        y = kernels.col2im(cols, (n, out_channels, oh, ow), kh, kw, sh, sw, ph, pw)
        if bias is not None:
            return y + bias.reshape(1, -1, 1, 1)
        return self.xp.ascontiguousarray(y)

    def backward(self, gy):
        in_channels, _, kh, kw = self.weight.shape
        (sh, sw), (ph, pw) = self.stride, self.padding
        n, _, h, w = self.x_shape
        gcols = kernels.im2col(gy, kh, kw, sh, sw, ph, pw)          # (C_out*KH*KW, N*H*W)
        gweight = _product_gradient(self, 1, self.x_rows, gcols.T)
        gx = None
        if self.needs_grad(0):
            gx = self.weight.reshape(in_channels, -1) @ gcols        # (C_in, N*H*W)
            gx = self.xp.ascontiguousarray(gx.reshape(in_channels, n, h, w).transpose(1, 0, 2, 3))
        if self.has_bias:
            return gx, gweight, gy.sum(axis=(0, 2, 3), out=self.gradient_buffer(2))
        return gx, gweight


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0):
    """Transposed convolution (the adjoint of conv2d, "deconvolution") of x (N, C_in, H, W)
    with weight (C_in, C_out, KH, KW); output (N, C_out, OH, OW) with
    OH = (H - 1) stride - 2 padding + KH + output_padding (likewise OW), as PyTorch.

    ``output_padding`` (smaller than ``stride``) picks among the output sizes that a
    stride-s convolution maps to the same input size.

    Example::

        y = F.conv_transpose2d(z, weight, bias, stride=2, padding=1, output_padding=1)
        # (8, 16, 14, 14) -> (8, 1, 28, 28) with a 3x3 kernel
    """
    fn = ConvTranspose2d(_pair(stride, "stride"), _pair(padding, "padding"),
                         _pair(output_padding, "output_padding"))
    _check_stride_padding(fn.stride, fn.padding)
    if any(not 0 <= op < s for op, s in zip(fn.output_padding, fn.stride)):
        raise ValueError(f"conv_transpose2d: output_padding {fn.output_padding} must be "
                         f">= 0 and smaller than the stride {fn.stride}")
    return fn.apply(x, weight) if bias is None else fn.apply(x, weight, bias)


# ---------------------------------------------------------------- batch normalisation
def _array(value):
    return value.data if isinstance(value, Tensor) else value


class BatchNorm(Function):
    """y = act(z), z = gamma * xhat + beta, xhat = (x - mean) / sqrt(var + eps) per channel
    (axis 1); with g = dL/dz = dL/dy * act'(z) (read off y, as Linear):
    dL/dgamma = sum(g * xhat), dL/dbeta = sum(g), and with batch statistics
    dL/dx = gamma / sqrt(var + eps) * (g - mean(g) - xhat * mean(g * xhat))
    (sums and means over every axis but the channel), or
    dL/dx = gamma / sqrt(var + eps) * g with running statistics. Tutorial 07.

    The training-mode arithmetic is ``kernels.batchnorm_forward`` / ``_backward``
    and ``kernels.batchnorm_update_running`` (the plain versions are in
    kernels/reference.py, the fused ones make one or two passes over the data).
    ``activation`` (one of kernels.FUSED_ACTIVATIONS) lets Sequential run a BatchNorm
    and the activation after it as one op, which keeps x and y alive but not z."""

    def __init__(self, training, eps, running_mean=None, running_var=None, momentum=0.1,
                 activation="identity", negative_slope=0.01):
        self.training, self.eps, self.momentum = training, eps, momentum
        self.running_mean, self.running_var = running_mean, running_var
        self.activation, self.slope = activation, negative_slope

    def forward(self, x, weight, bias):
        self.axes = (0,) + tuple(range(2, x.ndim))             # every axis but the channel
        self.count = numel(x.shape[a] for a in self.axes)       # values per channel
        if self.training:
            if self.count < 2:
                raise ValueError(
                    f"batch_norm: expected more than 1 value per channel in training, got "
                    f"input of shape {_shape_text(x.shape)}; use a batch of 2 or more, or "
                    f"eval mode")
            x_shape = x.shape
            if x.ndim not in (2, 4):  # the kernels take (N, C) or (N, C, H, W)
                x = x.reshape(x.shape[0], x.shape[1], -1, 1)
            z, mean, invstd = kernels.batchnorm_forward(x, weight, bias, self.eps)
            self.x, self.weight, self.mean, self.invstd = x, weight, mean, invstd
            if self.running_mean is not None:
                kernels.batchnorm_update_running(self.running_mean, self.running_var, mean,
                                                 invstd, self.momentum, self.count, self.eps)
            z = z.reshape(x_shape)
        else:
            shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)       # broadcasts per channel
            inv_std = 1 / self.xp.sqrt(self.running_var.reshape(shape) + self.eps)
            self.xhat = (x - self.running_mean.reshape(shape)) * inv_std
            self.scale = weight.reshape(shape) * inv_std         # gamma / sigma
            z = self.xhat * weight.reshape(shape) + bias.reshape(shape)
        self.y = kernels.activation_forward(z, self.activation, self.slope)
        return self.y

    def backward(self, gy):
        g = kernels.activation_backward(gy, self.y, self.activation, self.slope)  # dL/dz
        if self.training:
            gx, gweight, gbias = kernels.batchnorm_backward(
                g.reshape(self.x.shape), self.x, self.weight, self.mean, self.invstd,
                self.gradient_buffer(1), self.gradient_buffer(2))
            return gx.reshape(gy.shape), gweight, gbias
        gbias = g.sum(axis=self.axes)
        gweight = (g * self.xhat).sum(axis=self.axes)
        return self.scale * g, gweight, gbias


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, activation="identity", negative_slope=0.01):
    """Batch normalisation over channel axis 1 of x (N, C) or (N, C, H, W) (or (N, C, L)).

    In training it normalises with the batch mean and biased variance, and updates
    ``running_mean`` and ``running_var`` (tensors or arrays of shape (C,), or None) in
    place, as PyTorch: running = (1 - momentum) running + momentum batch, using the
    unbiased variance for ``running_var``. In eval it normalises with the running
    statistics. ``weight`` (gamma) and ``bias`` (beta) have shape (C,); None means 1 and 0.
    ``activation`` ("identity", "relu", "leaky_relu", "sigmoid" or "tanh") is applied to
    the result in the same op; ``nn.Sequential`` uses it for a BatchNorm followed by one
    of those activation layers.

    Example::

        y = F.batch_norm(x, bn_mean, bn_var, gamma, beta, training=True)
        h = F.batch_norm(x, bn_mean, bn_var, gamma, beta, True, activation="relu")
    """
    _check_fused_activation("batch_norm", activation, negative_slope)
    data = _array(x)
    if data.ndim < 2:
        raise ValueError(f"batch_norm: needs input (N, C, ...), got shape "
                         f"{_shape_text(data.shape)}")
    channels = data.shape[1]
    xp = backend.get_array_module(data)
    if weight is None:
        weight = xp.ones(channels, dtype=data.dtype)
    if bias is None:
        bias = xp.zeros(channels, dtype=data.dtype)
    running_mean, running_var = _array(running_mean), _array(running_var)
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm: eval mode (training=False) needs running_mean and "
                         "running_var")
    for name, value in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                        ("running_var", running_var)):
        if value is not None and tuple(value.shape) != (channels,):
            raise ValueError(f"batch_norm: {name} of shape {_shape_text(value.shape)}, "
                             f"expected ({channels},) for input of shape "
                             f"{_shape_text(data.shape)}")
    fn = BatchNorm(training, eps, running_mean, running_var, momentum, activation,
                   negative_slope)
    return fn.apply(x, weight, bias)


# ---------------------------------------------------------------- VAE sampling
class Reparameterize(Function):
    """z = mu + std eps with std = exp(logvar / 2) and a given eps ~ N(0, I);
    dz/dmu = 1,  dz/dlogvar = eps std / 2. Tutorial 10.

    One fused kernel each way: ``kernels.reparameterize`` and
    ``kernels.reparameterize_backward`` (plain versions in kernels/reference.py)."""

    def __init__(self, eps):
        self.eps = eps

    def forward(self, mu, logvar):
        z, self.std = kernels.reparameterize(mu, logvar, self.eps)
        return z

    def backward(self, gz):
        return kernels.reparameterize_backward(gz, self.eps, self.std)   # (gz, gz eps std / 2)


def reparameterize(mu, logvar, eps):
    """A sample z = mu + exp(logvar / 2) * eps of N(mu, exp(logvar)), differentiable in mu
    and logvar (the reparameterisation trick); ``eps`` holds draws of N(0, I) (a tensor
    or array, outside the graph) of the same shape.

    Example::

        eps = tinyae.tensor(rng.standard_normal(mu.shape))
        z = F.reparameterize(mu, logvar, eps)
    """
    eps = _array(eps)
    shapes = [tuple(int(n) for n in v.shape) for v in (mu, logvar, eps)]
    if shapes[0] != shapes[1] or shapes[0] != shapes[2]:
        raise ValueError(f"reparameterize: mu, logvar and eps must have one shape, got "
                         f"{shapes[0]}, {shapes[1]} and {shapes[2]}")
    return Reparameterize(eps).apply(mu, logvar)


# ---------------------------------------------------------------- dropout
# The default stream: the mask of call k comes from a Generator seeded with (seed, k), so
# the whole stream is two ints, which a checkpoint can hold on every backend.
_dropout_stream = {"seed": 0, "calls": 0}


def manual_seed(seed):
    """Seed the default random stream of ``dropout`` (the same on every backend)."""
    _dropout_stream.update(seed=int(seed), calls=0)


def dropout_stream_state():
    """The default stream's position as plain ints: {"seed": s, "calls": k}."""
    return dict(_dropout_stream)


def set_dropout_stream_state(state):
    """Continue the default stream from ``dropout_stream_state()``'s result."""
    _dropout_stream.update(seed=int(state["seed"]), calls=int(state["calls"]))


def default_generator(xp):
    """A Generator of array module ``xp`` for the next default ``dropout`` call: seeded
    with (seed, calls), after which calls goes up by one."""
    seed = numpy.random.SeedSequence([_dropout_stream["seed"], _dropout_stream["calls"]])
    _dropout_stream["calls"] += 1
    return xp.random.default_rng(int(seed.generate_state(1, numpy.uint64)[0]))


class Dropout(Function):
    """y = x * mask / (1 - p) with mask ~ Bernoulli(1 - p) (inverted dropout);
    dy/dx = mask / (1 - p). Tutorial 08. Mask and product are one fused kernel,
    ``kernels.dropout_forward``."""

    def __init__(self, p, rng):
        self.p, self.rng = p, rng

    def forward(self, x):
        if type(self.rng).__module__.split(".")[0] != self.xp.__name__:
            raise backend.BackendError("dropout: rng must be a Generator of the input's "
                                       "backend (numpy.random or cupy.random)")
        uniform = self.rng.random(x.shape, dtype=self.xp.float32)
        y, self.mask = kernels.dropout_forward(x, uniform, self.p)   # mask: 0 or 1 / (1 - p)
        return y

    def backward(self, gy):
        return gy * self.mask


def dropout(x, p=0.5, training=True, rng=None):
    """Zero each element with probability p and scale the rest by 1 / (1 - p), so the
    expected value is unchanged (inverted dropout); the identity in eval or when p = 0.

    ``rng`` is a Generator of the input's backend (``numpy.random.default_rng(seed)``
    or ``cupy.random.default_rng(seed)``); None uses the default one (``manual_seed``).

    Example::

        h = F.dropout(h, p=0.2, training=model.training)
    """
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p is a probability in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if rng is None:
        rng = default_generator(backend.get_array_module(_array(x)))
    return Dropout(p, rng).apply(x)


# ---------------------------------------------------------------- pooling
from .ops import log_softmax, softmax  # noqa: E402,F401  (re-exported, as torch.nn.functional)

__all__ += ["max_pool2d", "avg_pool2d", "softmax", "log_softmax"]


def _pool_geometry(op, x, kernel_size, stride, padding):
    """Check a pooling's arguments against x (N, C, H, W); return (OH, OW).

    OH = (H + 2 padding - KH) // stride + 1 (likewise OW), as PyTorch with ceil_mode=False.
    """
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    if x.ndim != 4:
        raise ValueError(f"{op}: needs input (N, C, H, W), got shape {_shape_text(x.shape)}")
    if min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0:
        raise ValueError(f"{op}: kernel_size and stride must be >= 1 and padding >= 0, got "
                         f"kernel_size={kernel_size}, stride={stride}, padding={padding}")
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"{op}: padding {padding} must be at most half of kernel_size "
                         f"{kernel_size} (as PyTorch), so every window holds real values")
    _, _, h, w = x.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"{op}: input of spatial size ({h}, {w}) with padding {padding} is "
                         f"smaller than the kernel {kernel_size}")
    return oh, ow


def _window_slices(kernel_size, stride, out_size):
    """For each of the KH*KW positions (i, j) in a window, in row-major order, the slices
    of the padded input that hold that position of every window: x_pad[..., rows, cols]
    has shape (N, C, OH, OW)."""
    (kh, kw), (sh, sw), (oh, ow) = kernel_size, stride, out_size
    return [(slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw))
            for i in range(kh) for j in range(kw)]


class MaxPool2d(Function):
    """y = the maximum of each KH x KW window of x (N, C, H, W), windows ``stride`` apart;
    dL/dx = dL/dy at the position of each window's maximum, 0 elsewhere (summed where
    windows overlap). On ties the first maximum of the window in row-major order takes
    the whole gradient, as PyTorch's CPU kernel. Padding is -inf (it never wins).
    Tutorial 06.

    The windows are gathered one position at a time (KH*KW strided slices), so the
    code reads the same on NumPy and CuPy; ``argmax`` remembers the winner.

    >>> import tinyae, tinyae.functional as F
    >>> x = tinyae.tensor([[[[1.0, 2.0], [4.0, 3.0]]]], requires_grad=True)
    >>> y = F.max_pool2d(x, 2); y.numpy()
    array([[[[4.]]]], dtype=float32)
    >>> y.sum().backward(); x.grad
    array([[[[0., 0.],
             [1., 0.]]]], dtype=float32)
    """

    def __init__(self, kernel_size, stride, padding):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        xp = self.xp
        out_size = _pool_geometry("max_pool2d", x, self.kernel_size, self.stride, self.padding)
        (ph, pw) = self.padding
        padded = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-xp.inf)
        self.slices = _window_slices(self.kernel_size, self.stride, out_size)
        windows = xp.stack([padded[:, :, rows, cols] for rows, cols in self.slices])
        self.winner = windows.argmax(axis=0)            # (N, C, OH, OW): first maximum wins
        self.x_shape, self.padded_shape = x.shape, padded.shape
        return xp.ascontiguousarray(windows.max(axis=0))

    def backward(self, gy):
        xp = self.xp
        gpadded = xp.zeros(self.padded_shape, dtype=gy.dtype)
        for k, (rows, cols) in enumerate(self.slices):
            gpadded[:, :, rows, cols] += gy * (self.winner == k)
        (ph, pw), (h, w) = self.padding, self.x_shape[2:]
        return xp.ascontiguousarray(gpadded[:, :, ph:ph + h, pw:pw + w])


class AvgPool2d(Function):
    """y = the mean of each KH x KW window of x (N, C, H, W), windows ``stride`` apart;
    dL/dx = dL/dy / count, spread over every position of the window (summed where
    windows overlap). Padding is zeros; ``count`` is KH*KW with
    ``count_include_pad`` (PyTorch's default), else the real values in the window.
    Tutorial 06.

    >>> import tinyae, tinyae.functional as F
    >>> x = tinyae.tensor([[[[1.0, 2.0], [4.0, 3.0]]]], requires_grad=True)
    >>> y = F.avg_pool2d(x, 2); y.numpy()
    array([[[[2.5]]]], dtype=float32)
    >>> y.sum().backward(); x.grad
    array([[[[0.25, 0.25],
             [0.25, 0.25]]]], dtype=float32)
    """

    def __init__(self, kernel_size, stride, padding, count_include_pad=True):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.count_include_pad = count_include_pad

    def forward(self, x):
        xp = self.xp
        out_size = _pool_geometry("avg_pool2d", x, self.kernel_size, self.stride, self.padding)
        (ph, pw) = self.padding
        width = ((0, 0), (0, 0), (ph, ph), (pw, pw))
        padded = xp.pad(x, width)
        self.slices = _window_slices(self.kernel_size, self.stride, out_size)
        total = sum(padded[:, :, rows, cols] for rows, cols in self.slices)
        if self.count_include_pad:
            self.count = numel(self.kernel_size)
        else:  # how many real (unpadded) values each window holds, shape (1, 1, OH, OW)
            real = xp.pad(xp.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype), width)
            self.count = sum(real[:, :, rows, cols] for rows, cols in self.slices)
        self.x_shape, self.padded_shape = x.shape, padded.shape
        return xp.ascontiguousarray(total / self.count)

    def backward(self, gy):
        xp = self.xp
        share = gy / self.count
        gpadded = xp.zeros(self.padded_shape, dtype=gy.dtype)
        for rows, cols in self.slices:
            gpadded[:, :, rows, cols] += share
        (ph, pw), (h, w) = self.padding, self.x_shape[2:]
        return xp.ascontiguousarray(gpadded[:, :, ph:ph + h, pw:pw + w])


def _pool_arguments(kernel_size, stride, padding):
    kernel_size = _pair(kernel_size, "kernel_size")
    stride = kernel_size if stride is None else _pair(stride, "stride")
    return kernel_size, stride, _pair(padding, "padding")


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max pooling of x (N, C, H, W) over KH x KW windows, as torch.nn.functional.max_pool2d;
    ``stride`` defaults to ``kernel_size`` (windows side by side). ``kernel_size``,
    ``stride`` and ``padding`` are an int or a (height, width) pair; padding is at most
    half the kernel. Output (N, C, OH, OW), OH = (H + 2 padding - KH) // stride + 1.

    Example::

        h = F.max_pool2d(h, 2)                  # (N, 16, 28, 28) -> (N, 16, 14, 14)
    """
    return MaxPool2d(*_pool_arguments(kernel_size, stride, padding)).apply(x)


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    """Average pooling of x (N, C, H, W) over KH x KW windows, as
    torch.nn.functional.avg_pool2d; arguments and output size as ``max_pool2d``.
    Padding adds zeros, counted in the mean unless ``count_include_pad=False``.

    Example::

        h = F.avg_pool2d(h, 2)                  # (N, 16, 28, 28) -> (N, 16, 14, 14)
    """
    return AvgPool2d(*_pool_arguments(kernel_size, stride, padding),
                     count_include_pad=count_include_pad).apply(x)
