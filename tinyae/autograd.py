"""Reverse-mode automatic differentiation: ``Tensor``, ``Function`` and ``backward``.

A ``Tensor`` wraps a backend array. Every operation on tensors is a
``Function``: its ``forward`` computes on raw arrays and its ``backward`` maps
the output's gradient to one gradient per input. Calling a function records it
as the output's ``creator``, so the tensors and functions form a graph;
``loss.backward()`` walks that graph once in reverse topological order and
applies the chain rule at each node (tutorial 01).

After ``backward`` the graph is released (functions drop their inputs and saved
arrays), so memory stays flat however many steps a training loop runs.
"""
import contextlib
import math
import weakref

from . import backend

_grad_enabled = [True]


@contextlib.contextmanager
def no_grad():
    """Record no graph inside the block (evaluation, sampling, optimizer updates)."""
    previous = _grad_enabled[0]
    _grad_enabled[0] = False
    try:
        yield
    finally:
        _grad_enabled[0] = previous


def is_grad_enabled():
    """False inside ``no_grad()``: operations then record no graph."""
    return _grad_enabled[0]


def _default_float(array):
    """float32 unless ``array`` already is floating (then keep its dtype)."""
    return array.dtype if array.dtype.kind == "f" else "float32"


class Tensor:
    """An n-d array on the active backend, with an optional gradient.

    Attributes: ``data`` (backend array), ``grad`` (backend array or None),
    ``requires_grad``, ``creator`` (the Function that made it, None for leaves),
    ``grad_buffer`` (None, or the array the gradient is kept in: an optimizer that
    updates all its parameters at once keeps their gradients side by side, and
    backward writes each into its slot; see ``Function.gradient_buffer``).

    Example::

        x = tinyae.tensor([[1.0, 2.0]], requires_grad=True)
        y = (x * x).sum()
        y.backward()
        x.grad  # array([[2., 4.]], dtype=float32)
    """

    __array_priority__ = 1000  # so ndarray (op) Tensor defers to Tensor's reflected ops

    def __init__(self, data, requires_grad=False):
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.creator = None
        self.name = None
        self.grad_buffer = None
        self._graph_released = False

    # --- basic properties -------------------------------------------------
    @property
    def shape(self):
        """The shape as a tuple of ints."""
        return tuple(self.data.shape)

    @property
    def dtype(self):
        """The data's dtype (float32 unless asked otherwise)."""
        return self.data.dtype

    @property
    def ndim(self):
        """The number of axes."""
        return self.data.ndim

    @property
    def size(self):
        """The number of elements, a Python int."""
        return int(self.data.size)

    @property
    def backend(self):
        """The backend that holds the data: "numpy" or "cupy"."""
        return backend.backend_of(self.data)

    def __len__(self):
        return self.shape[0]

    def __repr__(self):
        text = repr(backend.to_numpy(self.data)).replace("array", "tensor", 1)
        extra = ", requires_grad=True" if self.requires_grad else ""
        if self.creator is not None:
            extra += f", creator={type(self.creator).__name__}"
        return text[:-1] + extra + ")" if extra else text

    def numpy(self):
        """The values as a host NumPy array (copied from the GPU when needed)."""
        return backend.to_numpy(self.data)

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.size != 1:
            raise ValueError(f"item() needs a tensor of one element, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def detach(self):
        """The same data, cut from the graph (no creator, no gradient)."""
        return Tensor(self.data, requires_grad=False)

    def to(self, name):
        """A copy of this tensor on backend ``name`` ("numpy" or "cupy")."""
        out = Tensor(backend.to_backend(self.data, name), requires_grad=self.requires_grad)
        return out

    def astype(self, dtype):
        """This tensor converted to ``dtype`` (differentiable: the gradient converts back)."""
        from .ops import astype
        return astype(self, dtype)

    def zero_grad(self):
        """Forget this tensor's gradient."""
        self.grad = None

    # --- backward ---------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        ``grad`` is the seed, d(final)/d(self); it defaults to 1 for a scalar.
        The graph is released afterwards unless ``retain_graph=True``.
        """
        if self._graph_released:
            raise RuntimeError(
                "backward() through a graph that was already released by an earlier "
                "backward(). Recompute the forward pass, or pass retain_graph=True to "
                "the first backward() if you need to go through the graph twice.")
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: none of its inputs "
                "had requires_grad=True (or it was computed under no_grad()).")
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.size != 1:
                raise RuntimeError(
                    f"backward() on a non-scalar tensor of shape {self.shape} needs a seed "
                    "gradient of the same shape: call backward(grad) or reduce the tensor "
                    "to a scalar first (e.g. .sum() or .mean()).")
            grad = xp.ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else grad
            grad = xp.asarray(grad, dtype=self.dtype)
            if tuple(grad.shape) != self.shape:
                raise ValueError(
                    f"backward(): seed gradient has shape {tuple(grad.shape)}, "
                    f"expected the tensor's shape {self.shape}")
        run_backward(self, grad, retain_graph)


def _topological_order(root):
    """Functions reachable from ``root``, each after every function that uses its output."""
    order, visited = [], set()
    stack = [(root.creator, False)] if root.creator is not None else []
    while stack:
        fn, children_done = stack.pop()
        if children_done:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        visited.add(id(fn))
        stack.append((fn, True))
        for x in fn.inputs:
            if x._graph_released:
                raise RuntimeError(
                    "backward() reached a tensor whose graph was released by an earlier "
                    "backward(). Pass retain_graph=True to the first backward() when two "
                    "losses share part of a graph, or add the losses and call backward once.")
            if x.creator is not None and id(x.creator) not in visited:
                stack.append((x.creator, False))
    order.reverse()  # from the root towards the leaves
    return order


def run_backward(root, seed, retain_graph=False):
    """The reverse walk: chain rule at each function, gradients summed per tensor.

    ``pending`` maps a tensor's id to (tensor, gradient so far); holding the
    tensor keeps it alive until its creator has used the gradient, even after
    the function that consumed it has been released.
    """
    if root.creator is None:  # a leaf: its gradient is the seed itself
        _accumulate_leaf(root, seed)
        return
    pending = {id(root): (root, seed)}
    for fn in _topological_order(root):
        gys = []
        for i, ref in enumerate(fn.outputs):
            y = ref()
            entry = pending.pop(id(y), None) if y is not None else None
            gys.append(entry[1] if entry is not None else None)
        if any(g is not None for g in gys):
            gys = [g if g is not None else fn.zeros_like_output(i) for i, g in enumerate(gys)]
            gxs = fn.backward(*gys)
            if not isinstance(gxs, tuple):
                gxs = (gxs,)
            for x, gx in zip(fn.inputs, gxs):
                if gx is None or not x.requires_grad:
                    continue
                if x.creator is None:
                    _accumulate_leaf(x, gx)
                elif id(x) in pending:
                    pending[id(x)] = (x, pending[id(x)][1] + gx)
                else:
                    pending[id(x)] = (x, gx)
        if not retain_graph:
            fn.release()


def _accumulate_leaf(x, gx):
    """x.grad = gx, or x.grad + gx when it has one; in ``x.grad_buffer`` when x has one.

    The first gradient is copied (gx may be another tensor's gradient too), unless a
    backward wrote it straight into the buffer; later ones are added in place there
    (unless a backward added it there itself: then gx is the buffer).
    """
    if tuple(gx.shape) != x.shape:  # defensive: every backward returns the input's shape
        raise RuntimeError(f"internal error: gradient of shape {tuple(gx.shape)} for a "
                           f"tensor of shape {x.shape}")
    buffer = x.grad_buffer
    if x.grad is None and buffer is not None:
        if gx is not buffer:
            buffer[...] = gx
        x.grad = buffer
    elif x.grad is None:
        x.grad = gx.copy()
    elif x.grad is buffer:
        if gx is not buffer:
            buffer += gx
    else:
        x.grad = x.grad + gx


class Function:
    """One differentiable operation: ``forward`` on arrays, ``backward`` on gradients.

    Subclasses implement ``forward(self, *arrays)`` returning an array (or a
    tuple of arrays) and ``backward(self, *grad_outputs)`` returning one
    gradient per input (None where an input needs none). What backward needs
    is kept on ``self`` in forward; ``release`` drops it after backward.
    """

    def __call__(self, *inputs):
        return self.apply(*inputs)

    def apply(self, *inputs):
        """Run ``forward`` on the inputs' arrays; record the graph when a gradient is needed."""
        tensors = [x for x in inputs if isinstance(x, Tensor)]
        like = tensors[0] if tensors else None
        inputs = [as_tensor(x, like) for x in inputs]
        arrays = [x.data for x in inputs]
        xp = backend.get_array_module(*arrays)  # raises on mixed backends
        self.xp = xp
        outputs = self.forward(*arrays)
        single = not isinstance(outputs, tuple)
        if single:
            outputs = (outputs,)
        needs_grad = _grad_enabled[0] and any(x.requires_grad for x in inputs)
        results = [Tensor(y, requires_grad=needs_grad) for y in outputs]
        if needs_grad:
            self.inputs = inputs
            self.outputs = [weakref.ref(y) for y in results]
            self._output_meta = [(y.shape, y.dtype) for y in outputs]
            for y in results:
                y.creator = self
        return results[0] if single else tuple(results)

    def needs_grad(self, i):
        """Whether input ``i`` wants a gradient: backward may return None for it, unworked."""
        return self.inputs[i].requires_grad

    def gradient_buffer(self, i, accumulate=False):
        """The array to write input ``i``'s gradient into (``out=``), or None for a new one.

        That is the input's ``grad_buffer`` while it holds no gradient yet: a parameter's
        slot in its optimizer's flat gradient array, which run_backward then takes as it
        is, with no copy. With ``accumulate``, also once the slot holds the gradient: the
        caller adds to it (``x.grad`` is not None then). Never for an input given twice.
        """
        x = self.inputs[i]
        if x.creator is not None or sum(y is x for y in self.inputs) > 1:
            return None
        if x.grad is None or (accumulate and x.grad is x.grad_buffer):
            return x.grad_buffer
        return None

    def zeros_like_output(self, i):
        """A zero gradient for output ``i`` (an output the loss does not depend on)."""
        shape, dtype = self._output_meta[i]
        return self.xp.zeros(shape, dtype=dtype)

    def release(self):
        """Forget inputs and saved arrays; mark the outputs' graph as released."""
        for ref in self.outputs:
            y = ref()
            if y is not None:
                y.creator = None
                y._graph_released = True
        self.inputs = ()
        keep = {"xp", "inputs", "outputs", "_output_meta"}
        for key in [k for k in vars(self) if k not in keep]:
            delattr(self, key)

    def forward(self, *xs):
        """The output array(s) from the input arrays; subclasses define it."""
        raise NotImplementedError

    def backward(self, *gys):
        """One gradient per input from the gradients of the outputs; subclasses define it."""
        raise NotImplementedError


def as_tensor(x, like=None):
    """``x`` as a Tensor; a Python number or host array takes ``like``'s dtype and backend.

    Python scalars never upcast: ``float32_tensor * 0.5`` stays float32.
    """
    if isinstance(x, Tensor):
        return x
    if like is not None:
        xp = backend.get_array_module(like.data)
        if isinstance(x, (bool, int, float)):
            return Tensor(xp.asarray(x, dtype=like.dtype))
        if backend.backend_of(x) != backend.backend_of(like.data) and hasattr(x, "shape"):
            raise backend.BackendError(
                f"an operation got a {backend.backend_of(x)} array and a "
                f"{backend.backend_of(like.data)} tensor; move them to one backend first.")
        return Tensor(xp.asarray(x))
    return tensor(x)


def tensor(data, requires_grad=False, dtype=None):
    """A new Tensor on the active backend.

    Python numbers and lists become float32 unless ``dtype`` says otherwise;
    floating arrays keep their dtype (so float64 stays float64 for gradient checks).
    The data is always copied (as ``torch.tensor`` does). Only numbers are taken:
    an array of objects or strings (``[1, None]``) is refused with a TypeError
    rather than turned into NaN.
    """
    if isinstance(data, Tensor):
        data = data.data
    xp = backend.xp()
    python_values = not hasattr(data, "dtype")  # numbers and lists: float32, as in torch
    moved = python_values or backend.backend_of(data) != backend.get_backend()
    if moved:
        data = backend.to_backend(data, backend.get_backend())
    if data.dtype.kind not in "biuf":
        raise TypeError(f"tinyae.tensor takes numbers (bool, int or float), got an array of "
                        f"dtype {data.dtype}; convert it first (a None or a string cannot "
                        "become a number)")
    if dtype is None:
        dtype = "float32" if python_values else _default_float(data)
    # Always a copy, like torch.tensor: an optimizer step must never change the caller's array.
    # Data moved to the GPU above is a copy already.
    if moved and backend.get_backend() == "cupy":
        return Tensor(xp.asarray(data, dtype=dtype), requires_grad=requires_grad)
    return Tensor(xp.array(data, dtype=dtype, copy=True), requires_grad=requires_grad)


class Parameter(Tensor):
    """A Tensor that a Module owns and an optimizer updates (requires_grad=True).

    From a Tensor it shares that tensor's data (as ``torch.nn.Parameter``); from
    anything else it is ``tensor(data)``: a copy on the active backend, float32
    for numbers and lists, floating arrays keeping their dtype. The caller's array
    is never updated in place.

    Example::

        w = Parameter([1.0, 2.0])       # float32, on the active backend
    """

    def __init__(self, data, requires_grad=True):
        data = data.data if isinstance(data, Tensor) else tensor(data).data
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter(" + super().__repr__() + ")"


def numel(shape):
    """Number of elements of ``shape`` as a Python int (never a NumPy scalar,
    which would upcast float32 arithmetic under NumPy 2's promotion rules)."""
    return int(math.prod(shape))
