"""A stand-in for CuPy, backed by NumPy, that fails where the real one fails.

CI has no GPU, yet most mistakes in GPU code are not about the GPU: they are
host/device mistakes, a NumPy call on device data that CuPy refuses. This
module lets the whole test suite run on the ``cupy`` backend without a device
(``TINYAE_FAKE_CUPY=1 TINYAE_BACKEND=cupy pytest``; tests/conftest.py puts this
folder first on ``sys.path``), and it is a short lesson in what moving to a GPU
changes:

* Device arrays are not NumPy arrays. ``cupy.ndarray`` wraps a NumPy array and
  refuses every *implicit* conversion, exactly where CuPy refuses it:
  ``numpy.asarray(x)``, ``np.testing`` on ``x``, ``numpy.savez``, indexing a
  NumPy array by a device mask, a NumPy ufunc or function mixing host and
  device arrays. All raise ``TypeError`` ("Implicit conversion to a NumPy array
  is not allowed. Please use `.get()` ...").
* Copies to the host are explicit and allowed: ``x.get()``, ``cupy.asnumpy(x)``,
  ``float(x)``, ``int(x)``, ``bool(x)``, ``x.item()``, ``x.tolist()``
  (on a real GPU each one waits for the device: a synchronisation).
* Reductions return 0-d device arrays, not NumPy scalars.
* CUDA code cannot run here. ``ElementwiseKernel``, ``ReductionKernel`` and
  ``RawKernel`` keep their source (tests/test_gpu_sources.py compiles it with
  nvcc) and raise ``RealDeviceRequired`` when called; the emulated test run
  therefore selects the reference kernels (``TINYAE_KERNELS=reference``), and a
  ``gpu``-marked test that needs a real kernel is skipped with that message.
* ``cupy.random`` draws NumPy's streams, so numbers differ from real CuPy's.

Every operation that would be a device kernel on a GPU (a ufunc, a reduction,
a copy, a fill, an assignment; not a view, not an empty allocation) is counted
while ``count_launches()`` is active: ``benchmarks/compare.py --count-launches``
uses it to count kernel launches per training step.

What is not emulated: streams, memory pools, asynchrony, and the exact set of
functions CuPy implements (any NumPy function is accepted here).
"""
import collections
import contextlib
import types
import unittest

import numpy
from numpy.lib.mixins import NDArrayOperatorsMixin

__version__ = "0.0-emulated"
EMULATED = True

_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
             "Please use `.get()` to construct a NumPy array explicitly.")
# Functions that only look at metadata or allocate without writing: no kernel.
_NO_KERNEL = {"empty", "empty_like", "shape", "ndim", "size", "result_type",
              "may_share_memory", "shares_memory", "iscomplexobj", "isrealobj"}


class RealDeviceRequired(unittest.SkipTest):
    """Raised for what only a real GPU can do (run CUDA C): a test that meets it is skipped
    (at once: Hypothesis does not retry a skip). tests/conftest.py fails the test instead
    when it is not marked ``gpu``."""


# ------------------------------------------------------------ launch counting
_counter = [None]   # a Counter while count_launches() is active
_fusing = [0]       # inside a cupy.fuse'd function: one launch for the whole call


@contextlib.contextmanager
def count_launches():
    """Count would-be device kernels by name: ``with count_launches() as c: ...; sum(c.values())``.

    "to_device" and "to_host" count the copies between host and device.
    """
    previous, _counter[0] = _counter[0], collections.Counter()
    try:
        yield _counter[0]
    finally:
        _counter[0] = previous


def _count(name):
    if _counter[0] is not None and not _fusing[0]:
        _counter[0][name] += 1


def _count_new(name, result, inputs):
    """Count ``name`` if it produced an array that is not a view of an input."""
    if _counter[0] is None or name in _NO_KERNEL:
        return
    for out in (result if isinstance(result, (tuple, list)) else (result,)):
        if isinstance(out, numpy.generic) or isinstance(out, numpy.ndarray) and not any(
                isinstance(a, numpy.ndarray) and numpy.may_share_memory(out, a) for a in inputs):
            _count(name)
            return


# ------------------------------------------------------------ host <-> device
def _host(value, name):
    """``value`` with device arrays unwrapped; a NumPy array here is a host/device mix."""
    if type(value) is ndarray:
        return value._array
    if isinstance(value, numpy.ndarray):
        if value.ndim == 0:          # CuPy takes a 0-d host array as a scalar
            return value[()]
        raise TypeError(f"Unsupported type {type(value)} in cupy.{name}: a NumPy array met a "
                        "device array. Move it first: cupy.asarray(x) or x.get().")
    if isinstance(value, (list, tuple)):
        return type(value)(_host(v, name) for v in value)
    if isinstance(value, dict):
        return {k: _host(v, name) for k, v in value.items()}
    return value


def _device(value):
    """NumPy results as device arrays; NumPy scalars become 0-d arrays, as in CuPy."""
    if isinstance(value, (numpy.ndarray, numpy.generic)):
        return ndarray(numpy.asarray(value))
    if isinstance(value, tuple):
        return tuple(_device(v) for v in value)
    if isinstance(value, list):
        return [_device(v) for v in value]
    return value


def _leaves(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from _leaves(a)
        elif isinstance(a, numpy.ndarray):
            yield a


def _call(name, function, args, kwargs, owner=None):
    """Run a NumPy function (or ``owner``'s method) on unwrapped device arrays; wrap its result.

    With ``out=`` the kernel writes into that device array: one launch, and the array
    itself is returned, as CuPy returns it."""
    out = kwargs.get("out")
    args, kwargs = _host(args, name), _host(kwargs, name)
    result = function(*args, **kwargs)
    if type(out) is ndarray:
        _count(name)
        return out
    _count_new(name, result, [owner] + list(_leaves(args)) + list(_leaves(kwargs.values())))
    return _device(result)


# ------------------------------------------------------------------ ndarray
class ndarray(NDArrayOperatorsMixin):
    """A device array: a NumPy array that refuses to be read as one implicitly."""

    __slots__ = ("_array",)
    __array_priority__ = 100

    def __init__(self, array):
        self._array = array

    # Explicit copies to the host (each a synchronisation on a real GPU).
    def get(self, stream=None, order="C", out=None):
        _count("to_host")
        return numpy.array(self._array, order=order)

    def __array__(self, dtype=None, copy=None):
        raise TypeError(_IMPLICIT)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        name = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
        outs = kwargs.get("out")
        result = _call(name, getattr(ufunc, method), inputs, kwargs)
        if method == "at" or outs is not None:   # written in place
            _count(name)
            return None if method == "at" else (outs[0] if len(outs) == 1 else outs)
        return result

    def __array_function__(self, function, types_, args, kwargs):
        return _call(function.__name__, function, args, kwargs)

    def _defers_to(self, other):
        """CuPy's rule: an operand of higher __array_priority__ (a tinyae Tensor) takes the operator."""
        return (not isinstance(other, (ndarray, numpy.ndarray, numpy.generic))
                and getattr(other, "__array_priority__", 0) > self.__array_priority__)

    def _scalar(self, convert):
        _count("to_host")
        return convert(self._array)

    def __float__(self):
        return self._scalar(float)

    def __int__(self):
        return self._scalar(int)

    def __index__(self):
        if self._array.ndim != 0:
            raise TypeError("only integer scalar arrays can be converted to a scalar index")
        return self._scalar(lambda a: a.__index__())

    def __complex__(self):
        return self._scalar(complex)

    def __bool__(self):
        return self._scalar(bool)

    def item(self, *args):
        return self._scalar(lambda a: a.item(*args))

    def tolist(self):
        return self._scalar(lambda a: a.tolist())

    # Indexing: views stay views; gathers and assignments are kernels.
    @staticmethod
    def _index(key):
        """Device index arrays unwrapped; a host index array is copied over, as CuPy does."""
        keys = key if isinstance(key, tuple) else (key,)
        plain = []
        for k in keys:
            if type(k) is ndarray:
                k = k._array
            elif isinstance(k, numpy.ndarray):
                _count("to_device")
            plain.append(k)
        return tuple(plain) if isinstance(key, tuple) else plain[0]

    def __getitem__(self, key):
        result = self._array[self._index(key)]
        _count_new("getitem", result, [self._array])
        return _device(result)

    def __setitem__(self, key, value):
        if isinstance(value, numpy.ndarray):
            _count("to_device")
        else:
            value = _host(value, "__setitem__")
        _count("setitem")
        self._array[self._index(key)] = value

    def __len__(self):
        return len(self._array)

    def __iter__(self):
        return (_device(row) for row in self._array)

    def __repr__(self):
        return repr(self._array)

    def __str__(self):
        return str(self._array)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __format__(self, spec):
        return format(self.get()[()] if self._array.ndim == 0 else self.get(), spec)

    def __reduce__(self):
        return asarray, (self.get(),)

    __hash__ = None

    # Everything else (shape, dtype, sum, reshape, astype, T, ...) is NumPy's.
    def __getattr__(self, name):
        if name.startswith("__") or name == "_array":   # never __array_interface__ & co.
            raise AttributeError(name)
        value = getattr(self._array, name)
        if callable(value):
            method = value

            def on_device(*args, **kwargs):
                return _call(name, method, args, kwargs, owner=self._array)
            return on_device
        return _device(value) if isinstance(value, numpy.ndarray) else value

    def __setattr__(self, name, value):
        if name in ("shape", "strides"):
            setattr(self._array, name, value)
        else:
            object.__setattr__(self, name, value)


def _deferring(operator):
    def binary(self, other):
        return NotImplemented if self._defers_to(other) else operator(self, other)
    binary.__name__ = operator.__name__
    return binary


for _name in ("add", "sub", "mul", "matmul", "truediv", "floordiv", "mod", "pow", "eq", "ne",
              "lt", "le", "gt", "ge", "and", "or", "xor"):
    for _dunder in (f"__{_name}__", f"__r{_name}__"):
        if hasattr(NDArrayOperatorsMixin, _dunder):
            setattr(ndarray, _dunder, _deferring(getattr(NDArrayOperatorsMixin, _dunder)))


# ------------------------------------------------------------ the module API
def asarray(a, dtype=None, order=None, **kwargs):
    """Host data (NumPy array, list, scalar) or a device array as a device array."""
    if type(a) is ndarray:
        return _call("asarray", numpy.asarray, (a,), dict(dtype=dtype, order=order, **kwargs))
    _count("to_device")
    return ndarray(numpy.array(_host(a, "asarray") if not isinstance(a, numpy.ndarray) else a,
                               dtype=dtype, order=order or "K"))


def array(obj, dtype=None, copy=True, order="K", **kwargs):
    if type(obj) is not ndarray:
        _count("to_device")
        obj = obj if isinstance(obj, numpy.ndarray) else _host(obj, "array")
        return ndarray(numpy.array(obj, dtype=dtype, order=order, **kwargs))
    return _call("array", numpy.array, (obj,), dict(dtype=dtype, copy=copy, order=order, **kwargs))


def ascontiguousarray(a, dtype=None):
    return asarray(a, dtype=dtype, order="C") if type(a) is not ndarray else _call(
        "ascontiguousarray", numpy.ascontiguousarray, (a,), dict(dtype=dtype))


asanyarray = asarray


def asnumpy(a, stream=None, out=None):
    """A host NumPy array holding ``a`` (a device array or host data)."""
    return a.get() if type(a) is ndarray else numpy.asarray(a)


def get_array_module(*args):
    return _this if any(type(a) is ndarray for a in args) else numpy


def fuse(*args, **kwargs):
    """``cupy.fuse``: one kernel for the whole function; here it runs as Python, counted once."""
    def decorate(function):
        def fused(*call_args, **call_kwargs):
            _count(getattr(function, "__name__", "fused"))
            _fusing[0] += 1
            try:
                return function(*call_args, **call_kwargs)
            finally:
                _fusing[0] -= 1
        return fused
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return decorate(args[0])
    return decorate


class _Kernel:
    """A CUDA kernel: its source is kept; running it needs a real GPU."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        self.name = kwargs.get("name") or next(
            (a for a in reversed(args) if isinstance(a, str) and a.isidentifier()), "kernel")

    def __call__(self, *args, **kwargs):
        raise RealDeviceRequired(
            f"{type(self).__name__} {self.name!r}: the emulated cupy cannot run CUDA C. "
            "Run it on a GPU, or select the reference kernels (TINYAE_KERNELS=reference).")


class ElementwiseKernel(_Kernel):
    """(in_params, out_params, operation, name, ...)"""


class ReductionKernel(_Kernel):
    """(in_params, out_params, map_expr, reduce_expr, post_map_expr, identity, name, ...)"""


class RawKernel(_Kernel):
    """(code, name, ...)"""


class RawModule(_Kernel):
    """(code=..., ...)"""


def _gemm(transa, transb, a, b, out=None, alpha=1.0, beta=0.0):
    raise RealDeviceRequired("cupy.cublas.gemm: the emulated cupy has no cuBLAS. Run it on a "
                             "GPU, or select the reference kernels (TINYAE_KERNELS=reference).")


cublas = types.ModuleType("cupy.cublas", "cuBLAS calls: they need a real device.")
cublas.gemm = _gemm


def __getattr__(name):
    """Any other NumPy name: types and constants as they are, functions on device arrays."""
    value = getattr(numpy, name)
    if isinstance(value, type) or not callable(value):
        return value
    if isinstance(value, numpy.ufunc):
        return _UFunc(value)

    def on_device(*args, **kwargs):
        return _call(name, value, args, kwargs)
    on_device.__name__ = name
    return on_device


class _UFunc:
    """A NumPy ufunc that, like CuPy's, takes device arrays and scalars but no host arrays."""

    def __init__(self, ufunc):
        self._ufunc, self.__name__ = ufunc, ufunc.__name__

    def __call__(self, *args, **kwargs):
        return _call(self.__name__, self._ufunc, args, kwargs)

    def __getattr__(self, method):
        function = getattr(self._ufunc, method)
        if not callable(function):
            return function
        return lambda *args, **kwargs: _call(f"{self.__name__}.{method}", function, args, kwargs)


# ------------------------------------------------------------------ random
class _RandomSource:
    """A NumPy Generator or RandomState whose draws land on the device."""

    def __init__(self, source):
        self._source = source

    def __getattr__(self, name):
        method = getattr(self._source, name)
        if not callable(method):
            return method

        def draw(*args, **kwargs):
            return _call(f"random.{name}", method, args, kwargs)
        return draw


def _default_rng(seed=None):
    return _RandomSource(numpy.random.default_rng(seed))


def _random_state(seed=None):
    return _RandomSource(numpy.random.RandomState(seed))


_global_random = [_random_state()]


def _seed(seed=None):
    _global_random[0] = _random_state(seed)


def _random_getattr(name):
    return getattr(_global_random[0], name)


random = types.ModuleType("cupy.random", "Device random numbers (NumPy's streams here).")
random.default_rng, random.RandomState, random.seed = _default_rng, _random_state, _seed
random.Generator = _RandomSource
random.__getattr__ = _random_getattr


# ------------------------------------------------------------------- cuda
class _Device:
    def __init__(self, device=0):
        self.id = int(device)

    def synchronize(self):
        """Nothing to wait for: the emulation computes as it goes."""

    def use(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _MemoryPool:
    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_all_blocks(self):
        pass


_runtime = types.ModuleType("cupy.cuda.runtime", "One emulated device.")
_runtime.getDeviceCount = lambda: 1
_runtime.getDeviceProperties = lambda device: {"name": b"emulated (NumPy)", "totalGlobalMem": 0}
_runtime.driverGetVersion = lambda: 0
_runtime.runtimeGetVersion = lambda: 0
_runtime.deviceSynchronize = lambda: None

cuda = types.ModuleType("cupy.cuda", "Stubs for the device queries tinyae makes.")
cuda.runtime, cuda.Device, cuda.MemoryPool = _runtime, _Device, _MemoryPool
cuda.is_available = lambda: True
cuda.get_device_id = lambda: 0

get_default_memory_pool = _MemoryPool
get_default_pinned_memory_pool = _MemoryPool

import sys as _sys  # noqa: E402

_this = _sys.modules[__name__]
_sys.modules.setdefault("cupy.random", random)
_sys.modules.setdefault("cupy.cuda", cuda)
_sys.modules.setdefault("cupy.cuda.runtime", _runtime)
