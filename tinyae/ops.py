"""The differentiable operations on tensors.

Each operation is one ``Function`` class: ``forward`` on backend arrays, and
right beside it ``backward``, which turns the output's gradient ``gy`` into one
gradient per input. The docstring states the derivative in one line; the
tutorial named there derives it. The lower-case function below each class is
what users call (and what Tensor's operators call).

Broadcasting: an input that was broadcast in the forward pass receives the sum
of the gradient over the broadcast axes (``unbroadcast``, tutorial 02).
"""
import kernels

from . import backend
from .autograd import Function, Tensor, as_tensor, numel


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes along which an input of ``shape`` was broadcast."""
    shape = tuple(shape)
    if tuple(grad.shape) == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1)
    grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _broadcast_shapes(op, a, b):
    """The broadcast shape of a and b, or a ValueError naming the op and both shapes."""
    try:
        import numpy
        return numpy.broadcast_shapes(tuple(a.shape), tuple(b.shape))
    except ValueError:
        raise ValueError(
            f"{op}: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be broadcast "
            "together (NumPy broadcasting: trailing dimensions must match or be 1)") from None


# ---------------------------------------------------------------- arithmetic
class Add(Function):
    """y = a + b;  dy/da = 1, dy/db = 1 (summed over broadcast axes). Tutorial 02."""

    def forward(self, a, b):
        _broadcast_shapes("add", a, b)
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, gy):
        return (unbroadcast(gy, self.shapes[0]) if self.needs_grad(0) else None,
                unbroadcast(gy, self.shapes[1]) if self.needs_grad(1) else None)


class Sub(Function):
    """y = a - b;  dy/da = 1, dy/db = -1. Tutorial 02."""

    def forward(self, a, b):
        _broadcast_shapes("sub", a, b)
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, gy):
        return (unbroadcast(gy, self.shapes[0]) if self.needs_grad(0) else None,
                unbroadcast(-gy, self.shapes[1]) if self.needs_grad(1) else None)


class Mul(Function):
    """y = a * b;  dy/da = b, dy/db = a. Tutorial 02."""

    def forward(self, a, b):
        _broadcast_shapes("mul", a, b)
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        return (unbroadcast(gy * self.b, self.a.shape) if self.needs_grad(0) else None,
                unbroadcast(gy * self.a, self.b.shape) if self.needs_grad(1) else None)


class Div(Function):
    """y = a / b;  dy/da = 1/b, dy/db = -a/b^2 = -y/b. Tutorial 02."""

    def forward(self, a, b):
        _broadcast_shapes("div", a, b)
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        ga = gy / self.b
        gb = -ga * self.a / self.b
        return unbroadcast(ga, self.a.shape), unbroadcast(gb, self.b.shape)


class Neg(Function):
    """y = -x;  dy/dx = -1."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Pow(Function):
    """y = x^p for a constant p;  dy/dx = p x^(p-1). Tutorial 01."""

    def __init__(self, exponent):
        self.p = exponent

    def forward(self, x):
        self.x = x
        return x ** self.p

    def backward(self, gy):
        p = self.p
        return gy * p * self.x ** (p - 1)


class MatMul(Function):
    """Y = A @ B (2-D or batched);  dL/dA = dL/dY @ B^T, dL/dB = A^T @ dL/dY. Tutorial 03."""

    def forward(self, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(f"matmul: needs arrays of at least 2 dimensions, got shapes "
                             f"{tuple(a.shape)} and {tuple(b.shape)}")
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(
                f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} do not fit: the last "
                f"dimension of the first ({a.shape[-1]}) must equal the second-to-last of "
                f"the second ({b.shape[-2]})")
        _broadcast_shapes("matmul (batch dimensions)", a[..., :1, :1], b[..., :1, :1])
        self.a, self.b = a, b
        return self.xp.matmul(a, b)

    def backward(self, gy):
        xp = self.xp
        ga = xp.matmul(gy, xp.swapaxes(self.b, -1, -2))
        gb = xp.matmul(xp.swapaxes(self.a, -1, -2), gy)
        return unbroadcast(ga, self.a.shape), unbroadcast(gb, self.b.shape)


def add(a, b):
    """a + b elementwise, with broadcasting (Add).

    >>> tinyae.add(tinyae.tensor([1.0, 2.0]), tinyae.tensor([10.0]))
    tensor([11., 12.], dtype=float32)
    """
    return Add().apply(a, b)


def sub(a, b):
    """a - b elementwise, with broadcasting (Sub).

    >>> tinyae.sub(tinyae.tensor([1.0, 2.0]), tinyae.tensor([10.0]))
    tensor([-9., -8.], dtype=float32)
    """
    return Sub().apply(a, b)


def mul(a, b):
    """a * b elementwise, with broadcasting (Mul).

    >>> tinyae.mul(tinyae.tensor([1.0, 2.0]), tinyae.tensor([3.0]))
    tensor([3., 6.], dtype=float32)
    """
    return Mul().apply(a, b)


def div(a, b):
    """a / b elementwise, with broadcasting (Div).

    >>> tinyae.div(tinyae.tensor([1.0, 3.0]), tinyae.tensor([2.0]))
    tensor([0.5, 1.5], dtype=float32)
    """
    return Div().apply(a, b)


def neg(x):
    """-x (Neg).

    >>> tinyae.neg(tinyae.tensor([1.0, -2.0]))
    tensor([-1.,  2.], dtype=float32)
    """
    return Neg().apply(x)


def pow(x, exponent):
    """x ** exponent for a constant (Python number) exponent (Pow).

    >>> tinyae.pow(tinyae.tensor([2.0, 3.0]), 2)
    tensor([4., 9.], dtype=float32)
    """
    if isinstance(exponent, Tensor) or hasattr(exponent, "shape"):
        raise TypeError("pow: the exponent must be a Python number (scalar exponent)")
    return Pow(exponent).apply(x)


def matmul(a, b):
    """Matrix product a @ b, 2-D or batched with broadcast batch axes (MatMul).

    >>> tinyae.matmul(tinyae.tensor([[1.0, 2.0]]), tinyae.tensor([[3.0], [4.0]]))
    tensor([[11.]], dtype=float32)
    """
    return MatMul().apply(a, b)


# ---------------------------------------------------------------- elementwise functions
class Exp(Function):
    """y = exp(x);  dy/dx = y. Tutorial 04."""

    def forward(self, x):
        self.y = self.xp.exp(x)
        return self.y

    def backward(self, gy):
        return gy * self.y


class Log(Function):
    """y = log(x);  dy/dx = 1/x. Tutorial 04."""

    def forward(self, x):
        self.x = x
        return self.xp.log(x)

    def backward(self, gy):
        return gy / self.x


class Sqrt(Function):
    """y = sqrt(x);  dy/dx = 1 / (2 y). Tutorial 04."""

    def forward(self, x):
        self.y = self.xp.sqrt(x)
        return self.y

    def backward(self, gy):
        return gy / (2 * self.y)


class Tanh(Function):
    """y = tanh(x);  dy/dx = 1 - y^2. Tutorial 04.

    The derivative is read off the output: backward is gy * (1 - y * y), one fused
    pass (``kernels.activation_backward``; plain formula in kernels/reference.py).
    """

    def forward(self, x):
        self.y = self.xp.tanh(x)
        return self.y

    def backward(self, gy):
        return kernels.activation_backward(gy, self.y, "tanh")    # gy * (1 - y * y)


class Sigmoid(Function):
    """y = 1 / (1 + exp(-x));  dy/dx = y (1 - y). Tutorial 04.

    Stable for any x: only exp(-|x|) <= 1 is computed (``kernels.reference.sigmoid``).
    """

    def forward(self, x):
        self.y = kernels.activation_forward(x, "sigmoid")
        return self.y

    def backward(self, gy):
        return kernels.activation_backward(gy, self.y, "sigmoid")   # gy * y * (1 - y)


class ReLU(Function):
    """y = max(x, 0);  dy/dx = 1 where x > 0, else 0 (0 at x = 0, as PyTorch). Tutorial 04.

    The mask is read off the output: y > 0 exactly where x > 0.
    """

    def forward(self, x):
        self.y = kernels.activation_forward(x, "relu")             # max(x, 0)
        return self.y

    def backward(self, gy):
        return kernels.activation_backward(gy, self.y, "relu")     # where(y > 0, gy, 0)


class LeakyReLU(Function):
    """y = x if x > 0 else s x;  dy/dx = 1 where x > 0, else s. Tutorial 04.

    For s > 0 the mask is read off the output (y > 0 exactly where x > 0); for
    s <= 0 that fails, so the mask x > 0 is kept instead.
    """

    def __init__(self, negative_slope=0.01):
        self.slope = negative_slope

    def forward(self, x):
        if self.slope > 0:
            self.y = kernels.activation_forward(x, "leaky_relu", self.slope)
            return self.y
        self.positive = x > 0
        return self.xp.where(self.positive, x, x * self.slope)

    def backward(self, gy):
        if self.slope > 0:     # where(y > 0, gy, s gy)
            return kernels.activation_backward(gy, self.y, "leaky_relu", self.slope)
        return self.xp.where(self.positive, gy, gy * self.slope)


class Softplus(Function):
    """y = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|));  dy/dx = sigmoid(x). Tutorial 04."""

    def forward(self, x):
        xp = self.xp
        self.x = x
        return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, gy):
        return gy * kernels.activation_forward(self.x, "sigmoid")


class Clip(Function):
    """y = min(max(x, lo), hi);  dy/dx = 1 where lo <= x <= hi, else 0 (as torch.clamp)."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        inside = self.xp.ones(x.shape, dtype=bool)
        if self.lo is not None:
            inside &= x >= self.lo
        if self.hi is not None:
            inside &= x <= self.hi
        self.inside = inside
        return self.xp.clip(x, self.lo, self.hi)

    def backward(self, gy):
        return gy * self.inside


class _ElementwiseChoice(Function):
    """y = a or b elementwise, whichever ``wins``;  the gradient goes to the chosen
    input, half each on ties (as PyTorch's maximum/minimum)."""

    name = None

    def forward(self, a, b):
        _broadcast_shapes(self.name, a, b)
        self.shapes = a.shape, b.shape
        self.a_wins, self.tie = self.wins(a, b), a == b
        return getattr(self.xp, self.name)(a, b)

    def backward(self, gy):
        dtype = gy.dtype
        share_a = self.a_wins.astype(dtype) + self.tie.astype(dtype) * 0.5
        return (unbroadcast(gy * share_a, self.shapes[0]),
                unbroadcast(gy * (1 - share_a), self.shapes[1]))


class Maximum(_ElementwiseChoice):
    """y = max(a, b) elementwise;  the gradient goes to the larger input, half each on ties."""

    name = "maximum"

    @staticmethod
    def wins(a, b):
        """Where ``a`` is the maximum (ties go to ``a``): the mask its gradient flows through."""
        return a > b


class Minimum(_ElementwiseChoice):
    """y = min(a, b) elementwise;  the gradient goes to the smaller input, half each on ties."""

    name = "minimum"

    @staticmethod
    def wins(a, b):
        """Where ``a`` is the minimum (ties go to ``a``): the mask its gradient flows through."""
        return a < b


class AsType(Function):
    """y = x cast to another float dtype;  dy/dx = 1 (cast back)."""

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return gy.astype(self.in_dtype)


def exp(x):
    """exp(x) elementwise (Exp).

    >>> tinyae.exp(tinyae.tensor([0.0]))
    tensor([1.], dtype=float32)
    """
    return Exp().apply(x)


def log(x):
    """Natural logarithm, elementwise (Log).

    >>> tinyae.log(tinyae.tensor([1.0]))
    tensor([0.], dtype=float32)
    """
    return Log().apply(x)


def sqrt(x):
    """Square root, elementwise (Sqrt).

    >>> tinyae.sqrt(tinyae.tensor([4.0, 9.0]))
    tensor([2., 3.], dtype=float32)
    """
    return Sqrt().apply(x)


def tanh(x):
    """tanh(x) elementwise (Tanh).

    >>> tinyae.tanh(tinyae.tensor([0.0]))
    tensor([0.], dtype=float32)
    """
    return Tanh().apply(x)


def sigmoid(x):
    """1 / (1 + exp(-x)) elementwise, stable for large |x| (Sigmoid).

    >>> tinyae.sigmoid(tinyae.tensor([-1e4, 0.0, 1e4]))
    tensor([0. , 0.5, 1. ], dtype=float32)
    """
    return Sigmoid().apply(x)


def relu(x):
    """max(x, 0) elementwise (ReLU).

    >>> tinyae.relu(tinyae.tensor([-1.0, 2.0]))
    tensor([0., 2.], dtype=float32)
    """
    return ReLU().apply(x)


def leaky_relu(x, negative_slope=0.01):
    """x where x > 0, else negative_slope * x (LeakyReLU), as torch's leaky_relu.

    >>> tinyae.leaky_relu(tinyae.tensor([-2.0, 3.0]), 0.5)
    tensor([-1.,  3.], dtype=float32)
    """
    return LeakyReLU(negative_slope).apply(x)


def softplus(x):
    """log(1 + exp(x)) elementwise, a smooth relu, stable for large |x| (Softplus).

    >>> tinyae.softplus(tinyae.tensor([-1e4, 1e4]))
    tensor([    0., 10000.], dtype=float32)
    """
    return Softplus().apply(x)


def clip(x, lo=None, hi=None):
    """Limit x to [lo, hi] (either bound may be None), like torch.clamp (Clip).

    >>> tinyae.clip(tinyae.tensor([-2.0, 0.5, 2.0]), -1, 1)
    tensor([-1. ,  0.5,  1. ], dtype=float32)
    """
    return Clip(lo, hi).apply(x)


def maximum(a, b):
    """The larger of a and b elementwise, with broadcasting (Maximum).

    >>> tinyae.maximum(tinyae.tensor([1.0, 5.0]), tinyae.tensor([3.0]))
    tensor([3., 5.], dtype=float32)
    """
    return Maximum().apply(a, b)


def minimum(a, b):
    """The smaller of a and b elementwise, with broadcasting (Minimum).

    >>> tinyae.minimum(tinyae.tensor([1.0, 5.0]), tinyae.tensor([3.0]))
    tensor([1., 3.], dtype=float32)
    """
    return Minimum().apply(a, b)


def astype(x, dtype):
    """x cast to another floating dtype; the gradient is cast back (AsType).

    >>> astype(tinyae.tensor([1.5]), "float64").dtype
    dtype('float64')
    """
    return AsType(dtype).apply(x)


# ---------------------------------------------------------------- reductions
def _normalize_axis(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted(a % ndim for a in axes))


def _expand_reduced(gy, in_shape, axes, keepdims):
    """Reshape a reduction's gradient so it broadcasts against the input again."""
    if not keepdims:
        shape = [1 if i in axes else n for i, n in enumerate(in_shape)]
        gy = gy.reshape(shape)
    return gy


class Sum(Function):
    """y = sum of x over axes;  dy/dx = 1 at every summed element. Tutorial 02."""

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        self.axes = _normalize_axis(self.axis, x.ndim)
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        gy = _expand_reduced(gy, self.in_shape, self.axes, self.keepdims)
        return self.xp.broadcast_to(gy, self.in_shape).copy()


class Mean(Function):
    """y = mean of x over axes (n elements);  dy/dx = 1/n. Tutorial 02."""

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        self.axes = _normalize_axis(self.axis, x.ndim)
        self.count = numel(x.shape[a] for a in self.axes)
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        gy = _expand_reduced(gy, self.in_shape, self.axes, self.keepdims)
        return self.xp.broadcast_to(gy / self.count, self.in_shape).copy()


class Max(Function):
    """y = max of x over axes;  dy/dx = 1 at the maximum (shared evenly among ties, as torch.amax)."""

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.axes = _normalize_axis(self.axis, x.ndim)
        y = x.max(axis=self.axes, keepdims=True)
        is_max = (x == y).astype(x.dtype)
        self.share = is_max / is_max.sum(axis=self.axes, keepdims=True)
        return y if self.keepdims else y.reshape(
            [n for i, n in enumerate(x.shape) if i not in self.axes])

    def backward(self, gy):
        gy = _expand_reduced(gy, self.share.shape, self.axes, self.keepdims)
        return gy * self.share


def sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (None: all axes), as numpy.sum (Sum).

    >>> tinyae.sum(tinyae.tensor([[1.0, 2.0], [3.0, 4.0]]), axis=0)
    tensor([4., 6.], dtype=float32)
    """
    return Sum(axis, keepdims).apply(x)


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis`` (None: all axes), as numpy.mean (Mean).

    >>> tinyae.mean(tinyae.tensor([[1.0, 2.0], [3.0, 4.0]]), axis=1)
    tensor([1.5, 3.5], dtype=float32)
    """
    return Mean(axis, keepdims).apply(x)


def max(x, axis=None, keepdims=False):
    """Maximum over ``axis`` (None: all axes), as numpy.max or torch.amax (Max).

    >>> tinyae.max(tinyae.tensor([[1.0, 5.0], [3.0, 4.0]]), axis=1)
    tensor([5., 4.], dtype=float32)
    """
    return Max(axis, keepdims).apply(x)


# ---------------------------------------------------------------- shape operations
class Reshape(Function):
    """y = x with a new shape;  the gradient is reshaped back."""

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape an array of shape {tuple(x.shape)} "
                             f"({x.size} elements) into shape {tuple(self.shape)}") from None

    def backward(self, gy):
        return gy.reshape(self.in_shape)


class Transpose(Function):
    """y = x with its axes permuted;  the gradient is permuted back by the inverse permutation."""

    def __init__(self, axes=None):
        self.axes = axes

    def forward(self, x):
        axes = tuple(range(x.ndim))[::-1] if self.axes is None else tuple(
            a % x.ndim for a in self.axes)
        if sorted(axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {self.axes} are not a permutation of the "
                             f"{x.ndim} axes of shape {tuple(x.shape)}")
        self.perm = axes
        return self.xp.transpose(x, axes)

    def backward(self, gy):
        inverse = [0] * len(self.perm)
        for i, a in enumerate(self.perm):
            inverse[a] = i
        return self.xp.transpose(gy, inverse)


def _host_index(index):
    """Turn Tensors inside an index into their arrays."""
    if isinstance(index, tuple):
        return tuple(_host_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    return index


class GetItem(Function):
    """y = x[index] (slices, integer arrays, boolean masks);  dL/dx = zeros with dL/dy
    added at the indexed places (repeated indices add up). Tutorial 02."""

    def __init__(self, index):
        self.index = _host_index(index)

    def forward(self, x):
        self.in_shape, self.dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, gy):
        gx = self.xp.zeros(self.in_shape, dtype=gy.dtype)
        backend.scatter_add(gx, self.index, gy)
        return gx


class Concatenate(Function):
    """y = concatenate(xs, axis);  each input's gradient is its slice of dL/dy."""

    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        try:
            return self.xp.concatenate(xs, axis=self.axis)
        except ValueError:
            shapes = [tuple(x.shape) for x in xs]
            raise ValueError(f"concatenate: shapes {shapes} differ outside axis "
                             f"{self.axis}") from None

    def backward(self, gy):
        cuts = []
        total = 0
        for n in self.sizes[:-1]:
            total += n
            cuts.append(total)
        return tuple(self.xp.split(gy, cuts, axis=self.axis))


class Stack(Function):
    """y = stack(xs, axis);  each input's gradient is its index along the new axis."""

    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *xs):
        shapes = {tuple(x.shape) for x in xs}
        if len(shapes) > 1:
            raise ValueError(f"stack: all shapes must be equal, got {sorted(shapes)}")
        return self.xp.stack(xs, axis=self.axis)

    def backward(self, gy):
        n = gy.shape[self.axis]
        return tuple(self.xp.take(gy, i, axis=self.axis) for i in range(n))


class Pad(Function):
    """y = x padded with a constant;  dL/dx is dL/dy with the padding cut off."""

    def __init__(self, pad_width, value=0.0):
        self.pad_width, self.value = pad_width, value

    def forward(self, x):
        width = self.pad_width
        if isinstance(width, int):
            width = [(width, width)] * x.ndim
        width = [(int(a), int(b)) for a, b in width]
        if len(width) != x.ndim:
            raise ValueError(f"pad: pad_width has {len(width)} pairs for an array of "
                             f"{x.ndim} dimensions (shape {tuple(x.shape)})")
        self.slices = tuple(slice(a, a + n) for (a, _), n in zip(width, x.shape))
        return self.xp.pad(x, width, mode="constant", constant_values=self.value)

    def backward(self, gy):
        return gy[self.slices]


def reshape(x, *shape):
    """x with a new shape of the same size; one entry may be -1 (Reshape).

    >>> tinyae.reshape(tinyae.tensor([1.0, 2.0, 3.0, 4.0]), 2, 2).shape
    (2, 2)
    """
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Reshape(shape).apply(x)


def transpose(x, *axes):
    """x with its axes permuted (default: reversed), as torch.permute (Transpose).

    >>> tinyae.transpose(tinyae.tensor([[1.0, 2.0, 3.0]])).shape
    (3, 1)
    """
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return Transpose(axes or None).apply(x)


permute = transpose  # torch's name for the same op


def getitem(x, index):
    """x[index]: slices, integer arrays and boolean masks, as NumPy indexing (GetItem).

    >>> tinyae.getitem(tinyae.tensor([1.0, 2.0, 3.0]), slice(1, None))
    tensor([2., 3.], dtype=float32)
    """
    return GetItem(index).apply(x)


def concatenate(tensors, axis=0):
    """Join tensors along an existing ``axis``, as torch.cat (Concatenate).

    >>> tinyae.concatenate([tinyae.tensor([1.0]), tinyae.tensor([2.0, 3.0])])
    tensor([1., 2., 3.], dtype=float32)
    """
    tensors = list(tensors)
    like = next((t for t in tensors if isinstance(t, Tensor)), None)
    return Concatenate(axis).apply(*[as_tensor(t, like) for t in tensors])


def stack(tensors, axis=0):
    """Join tensors of equal shape along a new ``axis``, as torch.stack (Stack).

    >>> tinyae.stack([tinyae.tensor([1.0, 2.0]), tinyae.tensor([3.0, 4.0])]).shape
    (2, 2)
    """
    tensors = list(tensors)
    like = next((t for t in tensors if isinstance(t, Tensor)), None)
    return Stack(axis).apply(*[as_tensor(t, like) for t in tensors])


def pad(x, pad_width, value=0.0):
    """Constant padding; ``pad_width`` as in numpy.pad (an int, or one (before, after) per axis).

    >>> tinyae.pad(tinyae.tensor([1.0]), 1, value=9.0)
    tensor([9., 1., 9.], dtype=float32)
    """
    return Pad(pad_width, value).apply(x)


def flatten(x, start_dim=1):
    """Keep the first ``start_dim`` axes, merge the rest (as torch.flatten).

    >>> tinyae.flatten(tinyae.tensor([[[1.0, 2.0], [3.0, 4.0]]])).shape
    (1, 4)
    """
    return reshape(x, tuple(x.shape[:start_dim]) + (-1,))


# ---------------------------------------------------------------- operators on Tensor
def _install_operators():
    T = Tensor
    T.__add__ = lambda a, b: add(a, b)
    T.__radd__ = lambda a, b: add(b, a)
    T.__sub__ = lambda a, b: sub(a, b)
    T.__rsub__ = lambda a, b: sub(as_tensor(b, a), a)
    T.__mul__ = lambda a, b: mul(a, b)
    T.__rmul__ = lambda a, b: mul(b, a)
    T.__truediv__ = lambda a, b: div(a, b)
    T.__rtruediv__ = lambda a, b: div(as_tensor(b, a), a)
    T.__neg__ = lambda a: neg(a)
    T.__pow__ = lambda a, p: pow(a, p)
    T.__matmul__ = lambda a, b: matmul(a, b)
    T.__rmatmul__ = lambda a, b: matmul(as_tensor(b, a), a)
    T.__getitem__ = lambda a, index: getitem(a, index)
    T.sum = lambda a, axis=None, keepdims=False: sum(a, axis, keepdims)
    T.mean = lambda a, axis=None, keepdims=False: mean(a, axis, keepdims)
    T.max = lambda a, axis=None, keepdims=False: max(a, axis, keepdims)
    T.reshape = lambda a, *shape: reshape(a, *shape)
    T.transpose = lambda a, *axes: transpose(a, *axes)
    T.permute = lambda a, *axes: transpose(a, *axes)
    T.T = property(lambda a: transpose(a))
    T.exp = lambda a: exp(a)
    T.log = lambda a: log(a)
    T.sqrt = lambda a: sqrt(a)
    T.tanh = lambda a: tanh(a)
    T.sigmoid = lambda a: sigmoid(a)
    T.relu = lambda a: relu(a)
    T.clip = lambda a, lo=None, hi=None: clip(a, lo, hi)
    T.flatten = lambda a, start_dim=1: flatten(a, start_dim)


_install_operators()


# ---------------------------------------------------------------- softmax and log-softmax
class Softmax(Function):
    """y = exp(x - max x) / sum(exp(x - max x)) along ``axis``;
    dL/dx = y * (dL/dy - sum(dL/dy * y)) (the sum along ``axis``). Tutorial 05.

    Subtracting the maximum first changes nothing mathematically (it cancels in
    the ratio) and keeps exp from overflowing.

    >>> import tinyae
    >>> tinyae.softmax(tinyae.tensor([[0.0, 0.0], [1000.0, 0.0]])).numpy()
    array([[0.5, 0.5],
           [1. , 0. ]], dtype=float32)
    """

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        _check_axis("softmax", x, self.axis)
        shifted = x - x.max(axis=self.axis, keepdims=True)
        e = self.xp.exp(shifted)
        self.y = e / e.sum(axis=self.axis, keepdims=True)
        return self.y

    def backward(self, gy):
        y = self.y
        return y * (gy - (gy * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """y = x - max x - log(sum(exp(x - max x))) along ``axis`` (= log softmax(x));
    dL/dx = dL/dy - softmax(x) * sum(dL/dy) (the sum along ``axis``). Tutorial 05.

    Computed from the shifted values, never as log(softmax(x)), which is -inf
    wherever softmax underflows to 0.

    >>> import tinyae
    >>> tinyae.log_softmax(tinyae.tensor([[0.0, 0.0], [100.0, 0.0]])).numpy()
    array([[  -0.6931472,   -0.6931472],
           [   0.       , -100.       ]], dtype=float32)
    """

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        _check_axis("log_softmax", x, self.axis)
        xp = self.xp
        shifted = x - x.max(axis=self.axis, keepdims=True)
        self.y = shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))
        return self.y

    def backward(self, gy):
        return gy - self.xp.exp(self.y) * gy.sum(axis=self.axis, keepdims=True)


def _check_axis(op, x, axis):
    ndim = len(x.shape)
    if not isinstance(axis, int) or not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis!r} does not exist for a tensor of shape "
                         f"{tuple(x.shape)} (give an int in [{-ndim}, {ndim - 1}])")


def softmax(x, axis=-1):
    """Softmax along ``axis`` (PyTorch's ``dim``): positive values that sum to 1.

    dx = y * (gy - sum(gy * y, axis)), with y = softmax(x) (tutorial 05).

    >>> tinyae.softmax(tinyae.tensor([0.0, 0.0]))
    tensor([0.5, 0.5], dtype=float32)
    """
    return Softmax(axis).apply(x)


def log_softmax(x, axis=-1):
    """The logarithm of softmax along ``axis`` (PyTorch's ``dim``), computed stably.

    dx = gy - softmax(x) * sum(gy, axis) (tutorial 05).

    >>> tinyae.log_softmax(tinyae.tensor([0.0, 0.0]))
    tensor([-0.6931472, -0.6931472], dtype=float32)
    """
    return LogSoftmax(axis).apply(x)


# ---------------------------------------------------------------- comparisons (masks)
# A comparison is a step function: its derivative is 0 wherever it exists, so the mask
# it returns is a constant, outside the graph (requires_grad=False), as in PyTorch.
# To select with it, multiply: ``x * (x > 0)`` is differentiable in x.
def _compare(op, a, b):
    """The boolean Tensor ``a (op) b`` elementwise (broadcast), never part of a graph."""
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    a, b = as_tensor(a, like), as_tensor(b, like)
    _broadcast_shapes(op, a, b)
    xp = backend.get_array_module(a.data, b.data)
    return Tensor(getattr(xp, op)(a.data, b.data), requires_grad=False)


def eq(a, b):
    """a == b elementwise, as a boolean mask (not differentiable).

    >>> import tinyae
    >>> tinyae.eq(tinyae.tensor([1.0, 2.0]), 2.0).numpy()
    array([False,  True])
    """
    return _compare("equal", a, b)


def ne(a, b):
    """a != b elementwise, as a boolean mask (not differentiable).

    >>> tinyae.ne(tinyae.tensor([1.0, 2.0]), 2.0).numpy()
    array([ True, False])
    """
    return _compare("not_equal", a, b)


def lt(a, b):
    """a < b elementwise, as a boolean mask (not differentiable); also ``a < b``.

    >>> tinyae.lt(tinyae.tensor([1.0, 2.0]), 2.0).numpy()
    array([ True, False])
    """
    return _compare("less", a, b)


def le(a, b):
    """a <= b elementwise, as a boolean mask (not differentiable); also ``a <= b``.

    >>> tinyae.le(tinyae.tensor([1.0, 2.0]), 2.0).numpy()
    array([ True,  True])
    """
    return _compare("less_equal", a, b)


def gt(a, b):
    """a > b elementwise, as a boolean mask (not differentiable); also ``a > b``.

    >>> import tinyae
    >>> x = tinyae.tensor([-1.0, 0.0, 3.0], requires_grad=True)
    >>> (x > 0).numpy()
    array([False, False,  True])
    >>> y = (x * (x > 0)).sum()     # the mask is a constant: dy/dx = mask
    >>> y.backward(); x.grad
    array([0., 0., 1.], dtype=float32)
    """
    return _compare("greater", a, b)


def ge(a, b):
    """a >= b elementwise, as a boolean mask (not differentiable); also ``a >= b``.

    >>> tinyae.ge(tinyae.tensor([1.0, 2.0]), 2.0).numpy()
    array([False,  True])
    """
    return _compare("greater_equal", a, b)


def _install_comparison_operators():
    """<, <=, >, >= on Tensor, and the methods eq/ne/lt/le/gt/ge.

    ``==`` and ``!=`` are left as identity, unlike PyTorch: tinyae keeps tensors in
    sets and dicts and finds them with ``in`` (parameters, optimizer state, the
    graph walk), which all rely on ``==`` meaning "the same tensor". Use
    ``x.eq(y)`` / ``tinyae.eq(x, y)`` for the elementwise mask."""
    T = Tensor
    T.__lt__ = lambda a, b: lt(a, b)
    T.__le__ = lambda a, b: le(a, b)
    T.__gt__ = lambda a, b: gt(a, b)
    T.__ge__ = lambda a, b: ge(a, b)
    T.eq, T.ne = (lambda a, b: eq(a, b)), (lambda a, b: ne(a, b))
    T.lt, T.le = (lambda a, b: lt(a, b)), (lambda a, b: le(a, b))
    T.gt, T.ge = (lambda a, b: gt(a, b)), (lambda a, b: ge(a, b))
    T.softmax = lambda a, axis=-1: softmax(a, axis)
    T.log_softmax = lambda a, axis=-1: log_softmax(a, axis)
    T.__bool__ = _truth_value


def _truth_value(tensor):
    """``if x > 0:`` works for a one-element tensor and is an error for more, as in
    PyTorch and NumPy (without it Python would fall back on ``len`` and call any
    non-empty mask true)."""
    if tensor.size != 1:
        raise ValueError(f"the truth value of a tensor of shape {tensor.shape} is ambiguous; "
                         "use (mask).numpy().any() or .all(), or compare a one-element tensor")
    return bool(tensor.item())


_install_comparison_operators()
