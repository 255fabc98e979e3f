"""``Module``: the base class of layers and models, and ``Sequential``.

A Module owns parameters (``Parameter`` tensors that an optimizer updates),
buffers (tensors it keeps but does not train, like batch norm's running
statistics) and submodules. Assigning one to an attribute registers it, as in
PyTorch, so names follow the attribute path::

    class Encoder(Module):
        def __init__(self):
            super().__init__()
            self.conv = Conv2d(1, 16, 3)      # parameters "conv.weight", "conv.bias"
            self.bn = BatchNorm2d(16)         # buffers "bn.running_mean", ...

        def forward(self, x):
            return relu(self.bn(self.conv(x)))

``state_dict()`` and ``load_state_dict()`` use the same names and layouts as
PyTorch, so weights move both ways (``{k: v.numpy() for k, v in torch_sd.items()}``).
"""
import collections
import contextlib

from .. import backend
from ..autograd import Parameter, Tensor, no_grad

LoadResult = collections.namedtuple("LoadResult", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of every layer and model: subclasses set attributes in ``__init__``
    (after ``super().__init__()``) and compute in ``forward``; call the module itself.

    Example::

        model = Sequential(Dense(784, 32), ReLU(), Dense(32, 784))
        y = model(x)
        model.eval()                          # dropout off, batch norm on running stats
        weights = model.state_dict()
    """

    def __init__(self):
        # object.__setattr__: these registries must exist before __setattr__ can use them.
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "output_shape", None)  # of the last forward, for repr

    # --- registration ---------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before "
                                 "assigning attributes")
        if isinstance(value, Parameter):
            registry = self._parameters
        elif isinstance(value, Module):
            registry = self._modules
        elif name in self._buffers:                            # new value of a buffer
            registry = self._buffers
        elif name in self._parameters and value is None:      # e.g. bias=False
            registry = self._parameters
        elif name in self._parameters and isinstance(value, Tensor):
            raise TypeError(f"{type(self).__name__}.{name} is a parameter: assign a "
                            f"Parameter(...), or change its values through .data")
        else:
            for known in (self._parameters, self._buffers, self._modules):
                known.pop(name, None)
            object.__setattr__(self, name, value)
            return
        for known in (self._parameters, self._buffers, self._modules):
            if known is not registry:
                known.pop(name, None)
        self.__dict__.pop(name, None)
        registry[name] = value

    def __getattr__(self, name):  # only called when normal lookup fails
        for registry in ("_parameters", "_buffers", "_modules"):
            values = self.__dict__.get(registry, {})
            if name in values:
                return values[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __delattr__(self, name):
        for registry in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__[registry]:
                del self.__dict__[registry][name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name, value):
        """Keep ``value`` (a Tensor, or None) as state that is saved but not trained."""
        if value is not None and not isinstance(value, Tensor):
            value = Tensor(backend.to_backend(value))
        self.__dict__.pop(name, None)
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        self._buffers[name] = value

    # --- calling ---------------------------------------------------------------
    def forward(self, *inputs):
        """The computation of this module; subclasses define it (call the module, not forward)."""
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *inputs, **kwargs):
        """``forward(*inputs)`` after checking each input is a Tensor or an array whose dtype
        matches this layer's parameters; records the output's shape for ``repr``."""
        for x in inputs:
            self._check_input_type(x)
        output = self.forward(*inputs, **kwargs)
        if isinstance(output, Tensor):
            self.output_shape = output.shape
        return output

    def _check_input_type(self, x):
        """Refuse what PyTorch refuses: a Python list (or any non-array) as a layer's input,
        and a floating input whose dtype differs from the layer's own parameters' (it
        would silently turn the output and the weights' gradients into another dtype)."""
        if isinstance(x, (list, tuple)):
            raise TypeError(f"{type(self).__name__} takes a Tensor (or a NumPy/CuPy array), "
                            f"got a {type(x).__name__}. Convert it first: tinyae.tensor(x)")
        if not hasattr(x, "dtype"):
            return  # an option some forward takes (None, a flag, a name)
        own = next((p for p in self._parameters.values() if p is not None), None)
        if own is not None and x.dtype.kind == "f" and x.dtype != own.dtype:
            raise TypeError(f"{type(self).__name__}: the input is {x.dtype} but the layer's "
                            f"parameters are {own.dtype}. Convert the input "
                            f"(x.astype('{own.dtype}')) or build the layer with "
                            f"dtype='{x.dtype}'")

    # --- traversal -------------------------------------------------------------
    def named_modules(self, prefix=""):
        """(name, module) for this module and every submodule, depth first."""
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(prefix + name if not prefix
                                               else f"{prefix}.{name}")

    def modules(self):
        """This module and every submodule, depth first."""
        for _, module in self.named_modules():
            yield module

    def children(self):
        """The direct submodules."""
        return iter(child for child in self._modules.values() if child is not None)

    def named_parameters(self, prefix=""):
        """(name, Parameter) pairs, each parameter once, named like PyTorch ("0.weight")."""
        seen = set()
        for module_name, module in self.named_modules(prefix):
            for name, param in module._parameters.items():
                if param is not None and id(param) not in seen:
                    seen.add(id(param))
                    yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self):
        """Every Parameter of this module and its submodules (give them to an optimizer)."""
        for _, param in self.named_parameters():
            yield param

    def named_buffers(self, prefix=""):
        """(name, buffer) for every buffer of this module and its submodules."""
        for module_name, module in self.named_modules(prefix):
            for name, buffer in module._buffers.items():
                if buffer is not None:
                    yield (f"{module_name}.{name}" if module_name else name), buffer

    def buffers(self):
        """Every buffer (state saved but not trained, e.g. batch norm's running mean)."""
        for _, buffer in self.named_buffers():
            yield buffer

    def num_parameters(self):
        """How many trainable numbers this module holds."""
        return sum(param.size for param in self.parameters())

    # --- modes and gradients -----------------------------------------------------
    def train(self, mode=True):
        """Training mode (dropout active, batch norm on batch statistics); returns self."""
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self):
        """Evaluation mode: ``train(False)``; returns self."""
        return self.train(False)

    def zero_grad(self):
        """Forget every parameter's gradient (before the next backward)."""
        for param in self.parameters():
            param.grad = None

    def to(self, name):
        """Move every parameter, gradient and buffer to backend ``name`` ("numpy" or
        "cupy"), in place; returns self."""
        if name not in backend.BACKENDS:
            raise ValueError(f"unknown backend {name!r}; choose one of {backend.BACKENDS}")
        for tensor in list(self.parameters()) + list(self.buffers()):
            tensor.data = backend.to_backend(tensor.data, name)
            if tensor.grad is not None:
                tensor.grad = backend.to_backend(tensor.grad, name)
            tensor.grad_buffer = None   # an optimizer's flat buffer stays where it was
        return self

    # --- saving and loading ----------------------------------------------------
    def state_dict(self):
        """An ordered dict name -> backend array of every parameter and buffer, as in
        PyTorch (per module: parameters, then buffers, then submodules).

        The arrays are the module's own, not copies: copy them to keep a snapshot.
        """
        state = collections.OrderedDict()
        for module_name, module in self.named_modules():
            prefix = f"{module_name}." if module_name else ""
            for registry in (module._parameters, module._buffers):
                for name, tensor in registry.items():
                    if tensor is not None:
                        state[prefix + name] = tensor.data
        return state

    def load_state_dict(self, state, strict=True):
        """Copy the arrays of ``state`` (NumPy, CuPy or Tensors, by name) into this module's
        parameters and buffers, keeping their dtype and backend.

        A PyTorch state dict loads after ``{k: v.numpy() for k, v in sd.items()}``.
        A shape mismatch is always an error; a missing or unexpected name is one when
        ``strict`` (otherwise they are returned as ``(missing_keys, unexpected_keys)``).
        """
        own = {}
        for module_name, module in self.named_modules():
            prefix = f"{module_name}." if module_name else ""
            for registry in (module._parameters, module._buffers):
                for name, tensor in registry.items():
                    if tensor is not None:
                        own[prefix + name] = tensor
        missing = [key for key in own if key not in state]
        unexpected = [key for key in state if key not in own]
        problems = []
        for key, tensor in own.items():
            if key not in state:
                continue
            value = state[key]
            value = value.data if isinstance(value, Tensor) else value
            if not hasattr(value, "shape"):  # a list or a number
                value = backend.to_backend(value, tensor.backend)
            shape = tuple(int(n) for n in value.shape)
            if shape != tensor.shape:
                problems.append(f"size mismatch for {key!r}: the state dict has shape "
                                f"{shape}, this model expects {tensor.shape}")
        if strict:
            if missing:
                problems.append(f"missing keys: {', '.join(map(repr, missing))}")
            if unexpected:
                problems.append(f"unexpected keys: {', '.join(map(repr, unexpected))}")
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__}: "
                             + "; ".join(problems)
                             + ". Check that the model was built with the same arguments"
                             + (" (or pass strict=False to skip missing/unexpected keys)"
                                if strict and (missing or unexpected) else ""))
        for key, tensor in own.items():
            if key in state:
                value = state[key]
                value = value.data if isinstance(value, Tensor) else value
                value = backend.to_backend(value, tensor.backend)
                tensor.data[...] = value.astype(tensor.dtype, copy=False)
        return LoadResult(missing, unexpected)

    # --- printing --------------------------------------------------------------
    def extra_repr(self):
        """The arguments shown inside ``Name(...)``; layers override it."""
        return ""

    def __repr__(self):
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._modules:
            return head + ")"
        lines = [head]
        for name, child in self._modules.items():
            text = repr(child).replace("\n", "\n  ")
            if child is not None and not child._modules:  # a container annotates itself
                text += _annotation(child)
            lines.append(f"  ({name}): {text}")
        return "\n".join(lines) + "\n)" + _annotation(self, total=True)


@contextlib.contextmanager
def evaluating(model):
    """Eval mode and no graph inside the block (evaluation, sampling, embedding); the
    model's previous mode afterwards. Yields the model.

    Example::

        with nn.evaluating(model):
            codes = model.encode(x)
    """
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            yield model
    finally:
        model.train(was_training)


def _annotation(module, total=False):
    """'  # output (N, ...), 1,234 parameters' for the layer listing in repr."""
    parts = []
    if module.output_shape is not None:
        parts.append(f"output {module.output_shape}")
    count = module.num_parameters()
    if count or total:
        parts.append(f"{count:,} parameters" + (" in total" if total else ""))
    return "  # " + ", ".join(parts) if parts else ""


# Below Module: layers.py imports Module from this file.
from .layers import BatchNorm1d, BatchNorm2d, Dense, LeakyReLU, ReLU, Sigmoid, Tanh  # noqa: E402

# The pairs of consecutive layers that Sequential runs as one op: a Dense or a BatchNorm
# applies the activation after it inside its own op (the ``activation`` of
# functional.linear and functional.batch_norm), the same result with one kernel fewer
# (Dense) or one array fewer kept for backward (BatchNorm). Exact types only, so a
# subclass with its own forward always runs on its own. Both layers stay children of
# Sequential with their indices, so parameter names and state_dict keys are those of
# PyTorch's nn.Sequential. A LeakyReLU fuses only with negative_slope > 0.
_FUSED_NAMES = {ReLU: "relu", LeakyReLU: "leaky_relu", Sigmoid: "sigmoid", Tanh: "tanh"}
FUSIONS = {(layer, activation): name
           for layer in (Dense, BatchNorm1d, BatchNorm2d)
           for activation, name in _FUSED_NAMES.items()}


class Sequential(Module):
    """Layers applied one after the other; indexable (``model[0]``, ``model[1:]``),
    iterable and sized. Parameter names start with the index: "0.weight".

    Example::

        model = Sequential(Conv2d(1, 8, 3, padding=1), ReLU(), Flatten(), Dense(8 * 28 * 28, 10))
    """

    def __init__(self, *layers):
        super().__init__()
        for index, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: item {index} is a {type(layer).__name__}, "
                                "not a Module")
            setattr(self, str(index), layer)

    def forward(self, x):
        """Each layer on the output of the one before; the pairs in ``FUSIONS`` in one pass."""
        layers = list(self._modules.values())
        i = 0
        while i < len(layers):
            layer = layers[i]
            following = layers[i + 1] if i + 1 < len(layers) else None
            fused = FUSIONS.get((type(layer), type(following)))
            slope = getattr(following, "negative_slope", 0.01)
            if fused == "leaky_relu" and slope <= 0:
                fused = None  # the fused backward reads the sign off y: right only for slope > 0
            if fused is not None:
                x = layer(x, activation=fused, negative_slope=slope)
                following.output_shape = x.shape  # for repr: the activation's output is this
                i += 2
            else:
                x = layer(x)
                i += 1
        return x

    def __getitem__(self, index):
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*layers[index])
        return layers[index]

    def __iter__(self):
        return iter(self._modules.values())

    def __len__(self):
        return len(self._modules)

    def append(self, layer):
        """Add ``layer`` at the end; returns self."""
        setattr(self, str(len(self)), layer)
        return self
