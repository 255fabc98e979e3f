"""The layers: parameters, their PyTorch names and default initialisation, and a forward
that checks its input and calls ``tinyae.functional``.

Initialisation draws from one seeded NumPy Generator on the host (``manual_seed``)
and moves the values to the active backend, so a model starts from the same
weights on NumPy and CuPy, run after run.
"""
import math
import operator

import numpy

from .. import backend
from .. import functional as F
from ..autograd import Parameter, Tensor
from ..ops import reshape
from .module import Module

_init_rng = [numpy.random.default_rng(0)]


def manual_seed(seed):
    """Seed parameter initialisation and dropout's default generators.

    Example::

        tinyae.nn.manual_seed(0)
        model = Sequential(Dense(4, 2))   # the same weights every run
    """
    _init_rng[0] = numpy.random.default_rng(seed)
    F.manual_seed(seed)


def _uniform_parameter(shape, bound, dtype):
    """A Parameter drawn from U(-bound, bound) on the host, on the active backend."""
    values = _init_rng[0].uniform(-bound, bound, size=shape).astype(dtype)
    return Parameter(backend.to_backend(values))


def _constant_parameter(shape, value, dtype):
    return Parameter(backend.xp().full(shape, value, dtype=dtype))


def _float_dtype(dtype):
    dtype = numpy.dtype("float32" if dtype is None else dtype)
    if dtype.kind != "f":
        raise TypeError(f"parameters must be floating point, got dtype {dtype}")
    return dtype


def _size(layer, name, value):
    """``value`` as a Python int >= 1, or a ValueError naming the layer and the argument."""
    try:
        size = operator.index(value)
    except TypeError:
        raise TypeError(f"{layer}: {name} must be an int, got {value!r} "
                        f"({type(value).__name__})") from None
    if size < 1:
        raise ValueError(f"{layer}: {name} must be at least 1, got {size}")
    return size


def _shape_text(shape):
    return str(tuple(int(n) for n in shape))


def _wrong_input(layer, expected, x):
    """The ValueError a layer raises for an input it cannot take."""
    return ValueError(f"{layer!r}: expected input of shape {expected}, got {_shape_text(x.shape)}")


_pair = F._pair  # an int or a (height, width) pair -> a tuple of two ints


# ---------------------------------------------------------------- dense and convolution
class Dense(Module):
    """y = x @ weight.T + bias, weight (out_features, in_features); also ``Linear``.

    Initialised as PyTorch: weight and bias ~ U(-1/sqrt(in_features), 1/sqrt(in_features))
    (kaiming_uniform with a = sqrt(5)).

    Example::

        layer = Dense(784, 32)
        y = layer(x)                      # (N, 784) -> (N, 32)
    """

    def __init__(self, in_features, out_features, bias=True, dtype=None):
        super().__init__()
        self.in_features = _size("Dense", "in_features", in_features)
        self.out_features = _size("Dense", "out_features", out_features)
        dtype = _float_dtype(dtype)
        bound = 1 / math.sqrt(self.in_features)
        self.weight = _uniform_parameter((self.out_features, self.in_features), bound, dtype)
        self.bias = _uniform_parameter((self.out_features,), bound, dtype) if bias else None

    def forward(self, x, activation="identity", negative_slope=0.01):
        """``activation``: the name of an activation applied in the same fused pass
        (Sequential passes it for the pairs in ``nn.module.FUSIONS``)."""
        if x.ndim < 2 or x.shape[-1] != self.in_features:
            raise _wrong_input(self, f"(N, {self.in_features})", x)
        return F.linear(x, self.weight, self.bias, activation, negative_slope)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


Linear = Dense


class _ConvNd(Module):
    """What Conv2d and ConvTranspose2d share: sizes, initialisation and repr."""

    def _setup(self, in_channels, out_channels, kernel_size, stride, padding, bias, dtype,
               weight_shape, fan_in):
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(f"{type(self).__name__}: kernel_size and stride must be >= 1 and "
                             f"padding >= 0, got kernel_size={self.kernel_size}, "
                             f"stride={self.stride}, padding={self.padding}")
        output_padding = getattr(self, "output_padding", (0, 0))
        if any(not 0 <= op < s for op, s in zip(output_padding, self.stride)):
            raise ValueError(f"{type(self).__name__}: output_padding must be >= 0 and smaller "
                             f"than the stride, got output_padding={output_padding}, "
                             f"stride={self.stride}")
        dtype = _float_dtype(dtype)
        bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)), as PyTorch
        self.weight = _uniform_parameter(weight_shape, bound, dtype)
        self.bias = _uniform_parameter((self.out_channels,), bound, dtype) if bias else None

    def _check_input(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise _wrong_input(self, f"(N, {self.in_channels}, H, W)", x)

    def extra_repr(self):
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if getattr(self, "output_padding", (0, 0)) != (0, 0):
            text += f", output_padding={self.output_padding}"
        if self.bias is None:
            text += ", bias=False"
        return text


class Conv2d(_ConvNd):
    """2-d convolution; weight (out_channels, in_channels, KH, KW), bias (out_channels,).

    Output (N, out_channels, OH, OW), OH = (H + 2 padding - KH) // stride + 1.
    ``kernel_size``, ``stride`` and ``padding`` are an int or a (height, width) pair.
    Initialised as PyTorch: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in_channels*KH*KW.

    Example::

        conv = Conv2d(1, 16, kernel_size=3, stride=2, padding=1)
        y = conv(x)                      # (N, 1, 28, 28) -> (N, 16, 14, 14)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 bias=True, dtype=None):
        super().__init__()
        kh, kw = _pair(kernel_size, "kernel_size")
        self._setup(in_channels, out_channels, (kh, kw), stride, padding, bias, dtype,
                    weight_shape=(int(out_channels), int(in_channels), kh, kw),
                    fan_in=int(in_channels) * kh * kw)

    def forward(self, x):
        self._check_input(x)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)


class ConvTranspose2d(_ConvNd):
    """Transposed convolution (the adjoint of Conv2d, "deconvolution"); weight
    (in_channels, out_channels, KH, KW) as PyTorch, bias (out_channels,).

    Output (N, out_channels, OH, OW), OH = (H - 1) stride - 2 padding + KH + output_padding.
    Initialised as PyTorch, whose fan_in for this weight is weight.shape[1]*KH*KW
    = out_channels*KH*KW.

    Example::

        up = ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1)
        y = up(z)                        # (N, 16, 14, 14) -> (N, 1, 28, 28)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, bias=True, dtype=None):
        super().__init__()
        kh, kw = _pair(kernel_size, "kernel_size")
        self.output_padding = _pair(output_padding, "output_padding")
        self._setup(in_channels, out_channels, (kh, kw), stride, padding, bias, dtype,
                    weight_shape=(int(in_channels), int(out_channels), kh, kw),
                    fan_in=int(out_channels) * kh * kw)

    def forward(self, x):
        self._check_input(x)
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding)


# ---------------------------------------------------------------- batch normalisation
class _BatchNorm(Module):
    """Batch normalisation over channel axis 1 with learned scale and shift.

    Parameters ``weight`` (gamma, ones) and ``bias`` (beta, zeros); buffers
    ``running_mean`` (zeros), ``running_var`` (ones) and ``num_batches_tracked``.
    Training normalises with batch statistics and updates the running ones
    (running = (1 - momentum) running + momentum batch, unbiased variance);
    eval normalises with the running statistics. ``momentum=None`` gives the
    cumulative average over all batches so far, as PyTorch.
    """

    expected_input = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=None):
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        dtype = _float_dtype(dtype)
        xp = backend.xp()
        self.weight = _constant_parameter((self.num_features,), 1, dtype)
        self.bias = _constant_parameter((self.num_features,), 0, dtype)
        self.register_buffer("running_mean", Tensor(xp.zeros(self.num_features, dtype=dtype)))
        self.register_buffer("running_var", Tensor(xp.ones(self.num_features, dtype=dtype)))
        self.register_buffer("num_batches_tracked", Tensor(xp.zeros((), dtype=numpy.int64)))

    def _input_fits(self, x):
        raise NotImplementedError

    def forward(self, x, activation="identity", negative_slope=0.01):
        """``activation``: the name of an activation applied in the same op
        (Sequential passes it for the pairs in ``nn.module.FUSIONS``)."""
        if not self._input_fits(x):
            raise _wrong_input(self, self.expected_input.format(C=self.num_features), x)
        momentum = self.momentum
        if self.training:
            self.num_batches_tracked.data += 1
            if momentum is None:  # cumulative moving average
                momentum = 1 / int(self.num_batches_tracked.data)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=self.training, momentum=momentum, eps=self.eps,
                            activation=activation, negative_slope=negative_slope)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) features (or (N, C, L) sequences), per feature C.

    Example::

        bn = BatchNorm1d(32)
        h = bn(h)                        # (N, 32) -> (N, 32)
    """

    expected_input = "(N, {C}) or (N, {C}, L)"

    def _input_fits(self, x):
        return x.ndim in (2, 3) and x.shape[1] == self.num_features


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) images, per channel C (statistics over N, H, W).

    Example::

        bn = BatchNorm2d(16)
        h = bn(h)                        # (N, 16, H, W) -> (N, 16, H, W)
    """

    expected_input = "(N, {C}, H, W)"

    def _input_fits(self, x):
        return x.ndim == 4 and x.shape[1] == self.num_features


# ---------------------------------------------------------------- activations
# Sequential runs the ones that follow a Dense or a BatchNorm inside that layer's op
# (nn.module.FUSIONS).
class ReLU(Module):
    """max(x, 0), elementwise (tinyae.relu); d/dx = 1 where x > 0, else 0.

    Example::

        act = ReLU()
        y = act(x)                       # same shape as x
    """

    def forward(self, x):
        return F.relu(x)


class LeakyReLU(Module):
    """x where x > 0, else negative_slope * x, elementwise (tinyae.leaky_relu).

    Example::

        act = LeakyReLU(0.2)             # the slope most GANs use
        y = act(x)
    """


    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    """1 / (1 + exp(-x)), elementwise and stable for large |x| (tinyae.sigmoid).

    Example::

        decoder = Sequential(Dense(32, 784), Sigmoid())   # pixels in (0, 1)
    """

    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    """tanh(x), elementwise (tinyae.tanh).

    Example::

        act = Tanh()
        y = act(x)                       # values in (-1, 1)
    """

    def forward(self, x):
        return F.tanh(x)


class Softplus(Module):
    """log(1 + exp(x)), elementwise: a smooth ReLU (tinyae.softplus). Not fused with Dense.

    Example::

        act = Softplus()
        y = act(x)                       # positive values
    """

    def forward(self, x):
        return F.softplus(x)


# ---------------------------------------------------------------- regularisation and shapes
class Dropout(Module):
    """In training, zero each element with probability p and scale the rest by
    1 / (1 - p) (inverted dropout); the identity in eval mode.

    Example::

        drop = Dropout(0.2)
        h = drop(h)                      # model.eval() turns it off
    """

    def __init__(self, p=0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p is a probability in [0, 1], got {p}")
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1*d2*...): keeps the batch axis, merges the rest."""

    def forward(self, x):
        if x.ndim < 1:
            raise _wrong_input(self, "(N, ...)", x)
        return reshape(x, (x.shape[0], -1))


class Reshape(Module):
    """(N, ...) -> (N, *shape): ``shape`` excludes the batch axis, like Keras' Reshape or
    ``torch.nn.Unflatten(1, shape)``; one entry may be -1. The inverse of Flatten.

    Example::

        unflatten = Reshape(32, 7, 7)
        h = unflatten(h)                 # (N, 1568) -> (N, 32, 7, 7)
    """

    def __init__(self, *shape):
        super().__init__()
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        self.shape = tuple(int(n) for n in shape)

    def forward(self, x):
        known = math.prod(n for n in self.shape if n != -1)
        per_sample = math.prod(x.shape[1:]) if x.ndim >= 1 else 0
        if -1 in self.shape:
            fits, wanted = known > 0 and per_sample % known == 0, f"a multiple of {known}"
        else:
            fits, wanted = per_sample == known, f"{known}"
        if x.ndim < 1 or not fits:
            raise ValueError(f"{self!r}: expected input of shape (N, ...) with {wanted} "
                             f"values per sample, got {_shape_text(x.shape)} "
                             f"({per_sample} per sample)")
        return reshape(x, (x.shape[0],) + self.shape)

    def extra_repr(self):
        return ", ".join(str(n) for n in self.shape)


# ---------------------------------------------------------------- pooling and softmax
class _Pool2d(Module):
    """What MaxPool2d and AvgPool2d share: sizes, input check and repr."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(f"{type(self).__name__}: kernel_size and stride must be >= 1 and "
                             f"padding >= 0, got kernel_size={self.kernel_size}, "
                             f"stride={self.stride}, padding={self.padding}")
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{type(self).__name__}: padding {self.padding} must be at most "
                             f"half of kernel_size {self.kernel_size}")

    def _check_input(self, x):
        if x.ndim != 4:
            raise _wrong_input(self, "(N, C, H, W)", x)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}")


class MaxPool2d(_Pool2d):
    """The maximum of each kernel_size window of (N, C, H, W) images; stride defaults to
    kernel_size. No parameters. On ties the first maximum (row-major) gets the gradient.

    Example::

        pool = MaxPool2d(2)
        h = pool(h)                      # (N, 16, 28, 28) -> (N, 16, 14, 14)
    """

    def forward(self, x):
        self._check_input(x)
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool2d):
    """The mean of each kernel_size window of (N, C, H, W) images; stride defaults to
    kernel_size; zero padding, counted in the mean unless ``count_include_pad=False``.

    Example::

        pool = AvgPool2d(2)
        h = pool(h)                      # (N, 16, 28, 28) -> (N, 16, 14, 14)
    """

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True):
        super().__init__(kernel_size, stride, padding)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x):
        self._check_input(x)
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding,
                            self.count_include_pad)


class Softmax(Module):
    """softmax along ``axis`` (PyTorch's ``dim``): each slice becomes probabilities.

    Example::

        probabilities = Softmax(1)(logits)     # (N, C), rows sum to 1
    """

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = int(axis)

    def forward(self, x):
        return F.softmax(x, self.axis)

    def extra_repr(self):
        return f"axis={self.axis}"


class LogSoftmax(Softmax):
    """log softmax along ``axis`` (PyTorch's ``dim``), computed stably.

    Example::

        log_probabilities = LogSoftmax(1)(logits)
    """

    def forward(self, x):
        return F.log_softmax(x, self.axis)
